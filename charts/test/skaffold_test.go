package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

// The skaffold module (github.com/GoogleContainerTools/skaffold/v2) is not on the module proxy
// this project uses, and its JSON schema cannot be downloaded here: skaffold.yaml is decoded
// strictly into these types, the subset of the skaffold/v4beta11 schema the file uses (field
// names as in skaffold's pkg/skaffold/schema/latest). An unknown or misspelt field fails.
// What this cannot check is listed in docs/kubernetes.md.
type skaffoldConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Build    skaffoldBuild     `json:"build"`
	Deploy   skaffoldDeploy    `json:"deploy"`
	Profiles []skaffoldProfile `json:"profiles"`
}

type skaffoldBuild struct {
	TagPolicy struct {
		GitCommit *struct {
			Variant string `json:"variant"`
		} `json:"gitCommit"`
	} `json:"tagPolicy"`
	Artifacts []skaffoldArtifact `json:"artifacts"`
	Local     *struct {
		Push *bool `json:"push"`
	} `json:"local"`
}

type skaffoldArtifact struct {
	Image   string `json:"image"`
	Context string `json:"context"`
	Ko      *struct {
		FromImage    string   `json:"fromImage"`
		Main         string   `json:"main"`
		Env          []string `json:"env"`
		Flags        []string `json:"flags"`
		Ldflags      []string `json:"ldflags"`
		Dependencies struct {
			Paths  []string `json:"paths"`
			Ignore []string `json:"ignore"`
		} `json:"dependencies"`
	} `json:"ko"`
	Docker *struct {
		Dockerfile string `json:"dockerfile"`
	} `json:"docker"`
}

type skaffoldDeploy struct {
	Helm struct {
		Releases []struct {
			Name              string            `json:"name"`
			ChartPath         string            `json:"chartPath"`
			Namespace         string            `json:"namespace"`
			CreateNamespace   *bool             `json:"createNamespace"`
			Wait              bool              `json:"wait"`
			ValuesFiles       []string          `json:"valuesFiles"`
			SetValueTemplates map[string]string `json:"setValueTemplates"`
		} `json:"releases"`
	} `json:"helm"`
	Kubectl *struct {
		DefaultNamespace string `json:"defaultNamespace"`
	} `json:"kubectl"`
}

type skaffoldProfile struct {
	Name    string `json:"name"`
	Patches []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	} `json:"patches"`
}

func loadSkaffold(t *testing.T) skaffoldConfig {
	t.Helper()
	data, err := os.ReadFile("../../skaffold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg skaffoldConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatalf("skaffold.yaml does not decode strictly: %v", err)
	}
	return cfg
}

// cliImage is the boxscore CLI's artifact, the image of the extractor CronJob.
const cliImage = "boxscore"

func TestSkaffoldConfig(t *testing.T) {
	cfg := loadSkaffold(t)
	if cfg.APIVersion != "skaffold/v4beta11" || cfg.Kind != "Config" {
		t.Fatalf("apiVersion %q kind %q", cfg.APIVersion, cfg.Kind)
	}
	var images []string
	for _, a := range cfg.Build.Artifacts {
		images = append(images, a.Image)
		if a.Ko == nil {
			t.Errorf("artifact %s: not built with ko", a.Image)
			continue
		}
		if a.Context != "." {
			t.Errorf("artifact %s: context %q, want the repository root so go.work resolves", a.Image, a.Context)
		}
		if _, err := os.Stat(filepath.Join("../..", a.Ko.Main, "main.go")); err != nil {
			t.Errorf("artifact %s: main %s: %v", a.Image, a.Ko.Main, err)
		}
		if !strings.Contains(a.Ko.FromImage, "distroless") || !strings.HasSuffix(a.Ko.FromImage, ":nonroot") {
			t.Errorf("artifact %s: base %q is not distroless nonroot", a.Image, a.Ko.FromImage)
		}
		if !slices.ContainsFunc(a.Ko.Ldflags, func(f string) bool { return strings.Contains(f, "pkg/buildinfo.Version=") }) {
			t.Errorf("artifact %s: the version is not stamped", a.Image)
		}
	}
	slices.Sort(images)
	want := append(slices.Clone(components), cliImage)
	slices.Sort(want)
	if !slices.Equal(images, want) {
		t.Errorf("artifacts %v, want the four services and the CLI %v", images, want)
	}
	if len(cfg.Deploy.Helm.Releases) != 1 {
		t.Fatalf("want one helm release, got %d", len(cfg.Deploy.Helm.Releases))
	}
	rel := cfg.Deploy.Helm.Releases[0]
	if rel.ChartPath != "charts/boxscore" {
		t.Errorf("chartPath %q", rel.ChartPath)
	}
	// Every image is injected into its component, and only known value paths are set.
	ch := loadChart(t)
	for _, image := range images {
		v := strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(image)
		for field, tmpl := range map[string]string{
			"repository": "{{.IMAGE_REPO_" + v + "}}",
			"tag":        "{{.IMAGE_TAG_" + v + "}}@{{.IMAGE_DIGEST_" + v + "}}",
		} {
			key := "components." + image + ".image." + field
			if image == cliImage {
				key = "extractor.image." + field
			}
			if rel.SetValueTemplates[key] != tmpl {
				t.Errorf("setValueTemplates[%s] = %q, want %q", key, rel.SetValueTemplates[key], tmpl)
			}
		}
	}
	overrides := map[string]any{}
	digest := "sha256:" + strings.Repeat("ab", 32)
	for key := range rel.SetValueTemplates {
		setPath(overrides, strings.Split(key, "."), "registry.example/x:abc123@"+digest)
		if strings.HasSuffix(key, ".repository") {
			setPath(overrides, strings.Split(key, "."), "registry.example/x")
		}
	}
	// What skaffold would pass renders and passes the schema (a misspelt path would not),
	// and reaches the CronJob when the extractor is on.
	setPath(overrides, []string{"extractor", "enabled"}, true)
	r, err := RenderChart(ch, overrides)
	if err != nil {
		t.Errorf("chart with skaffold's injected values: %v", err)
	} else if cronJobs := Of[*batchv1.CronJob](r); len(cronJobs) != 1 || !strings.HasPrefix(cronJobs[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image, "registry.example/x:") ||
		!strings.HasSuffix(cronJobs[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image, "@"+digest) {
		t.Errorf("extractor CronJob does not run skaffold's CLI image: %+v", cronJobs)
	}
	profiles := map[string]bool{}
	for _, p := range cfg.Profiles {
		profiles[p.Name] = true
		for _, patch := range p.Patches {
			if patch.Op != "add" && patch.Op != "replace" && patch.Op != "remove" {
				t.Errorf("profile %s: patch op %q", p.Name, patch.Op)
			}
			checkPatchValue(t, p.Name, patch.Path, patch.Value)
		}
	}
	if !profiles["dev"] || !profiles["eks"] {
		t.Errorf("profiles %v, want dev and eks", profiles)
	}
}

// checkPatchValue decodes a profile patch strictly into the type of the path it patches and
// checks that the files it names exist.
func checkPatchValue(t *testing.T, profile, path string, raw []byte) {
	strict := func(into any) {
		if err := yaml.UnmarshalStrict(raw, into); err != nil {
			t.Errorf("profile %s: patch %s: %v", profile, path, err)
		}
	}
	exists := func(p string) {
		if _, err := os.Stat(filepath.Join("../..", p)); err != nil {
			t.Errorf("profile %s: patch %s names %s: %v", profile, path, p, err)
		}
	}
	switch {
	case path == "/build/artifacts/-":
		var a skaffoldArtifact
		strict(&a)
		if a.Docker != nil {
			exists(filepath.Join(a.Context, a.Docker.Dockerfile))
		}
	case regexp.MustCompile(`^/deploy/helm/releases/0/valuesFiles$`).MatchString(path):
		var files []string
		strict(&files)
		for _, f := range files {
			exists(f)
		}
	case path == "/manifests":
		var m struct {
			Kustomize struct {
				Paths []string `json:"paths"`
			} `json:"kustomize"`
		}
		strict(&m)
		for _, p := range m.Kustomize.Paths {
			exists(filepath.Join(p, "kustomization.yaml"))
		}
	case path == "/deploy/kubectl":
		var k struct {
			DefaultNamespace string `json:"defaultNamespace"`
		}
		strict(&k)
	case path == "/build/local":
		var l struct {
			Push *bool `json:"push"`
		}
		strict(&l)
	default:
		t.Errorf("profile %s: patch path %s has no type in this test: add it", profile, path)
	}
}

func setPath(m map[string]any, path []string, value any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
}

// koConfig is the subset of ko's .ko.yaml the repository uses (field names as in ko's
// pkg/commands/options/build.go); decoded strictly, so a misspelt field fails.
type koConfig struct {
	DefaultBaseImage string    `json:"defaultBaseImage"`
	DefaultPlatforms []string  `json:"defaultPlatforms"`
	Builds           []koBuild `json:"builds"`
}

type koBuild struct {
	ID      string   `json:"id"`
	Dir     string   `json:"dir"`
	Main    string   `json:"main"`
	Env     []string `json:"env"`
	Flags   []string `json:"flags"`
	Ldflags []string `json:"ldflags"`
}

// TestKoBuildsMatchSkaffold: `make images` (ko) and skaffold build the same programs with the
// same build flags, the CLI of the extractor CronJob included.
func TestKoBuildsMatchSkaffold(t *testing.T) {
	data, err := os.ReadFile("../../.ko.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ko koConfig
	if err := yaml.UnmarshalStrict(data, &ko); err != nil {
		t.Fatalf(".ko.yaml: %v", err)
	}
	koFlags := map[string][]string{}
	for _, b := range ko.Builds {
		if b.Dir != "." {
			t.Errorf(".ko.yaml build %s: dir %q, want the repository root", b.ID, b.Dir)
		}
		koFlags[b.Main] = b.Flags
	}
	for _, a := range loadSkaffold(t).Build.Artifacts {
		flags, ok := koFlags[a.Ko.Main]
		if !ok {
			t.Errorf("skaffold builds %s (%s), .ko.yaml does not", a.Image, a.Ko.Main)
			continue
		}
		if !slices.Equal(flags, a.Ko.Flags) {
			t.Errorf("%s: .ko.yaml flags %v, skaffold's %v", a.Ko.Main, flags, a.Ko.Flags)
		}
		delete(koFlags, a.Ko.Main)
	}
	for main := range koFlags {
		t.Errorf(".ko.yaml builds %s, skaffold does not", main)
	}
	cli := slices.IndexFunc(ko.Builds, func(b koBuild) bool { return b.Main == "./cmd/boxscore" })
	if cli < 0 || !slices.Contains(ko.Builds[cli].Flags, "-tags=timetzdata") {
		t.Errorf("the CLI's build does not embed the time zone database: --time-zone would fail on an image without one")
	}
}
