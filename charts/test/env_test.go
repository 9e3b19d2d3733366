package charttest

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// sharedConfig are the pkg/ config structs each service embeds (see each services/*/main.go).
var sharedConfig = map[string][]string{
	"ingest-gateway": {"pkg/server", "pkg/telemetry", "pkg/stream"},
	"shard-consumer": {"pkg/server", "pkg/telemetry", "pkg/stream", "pkg/postgres"},
	"transformer":    {"pkg/server", "pkg/telemetry"},
	"loader":         {"pkg/server", "pkg/telemetry", "pkg/postgres"},
}

var envTag = regexp.MustCompile(`env:"(BOXSCORE_[A-Z0-9_]+)"`)

// sourceEnv lists the BOXSCORE_* variables a service's config structs declare.
func sourceEnv(t *testing.T, component string) []string {
	t.Helper()
	var vars []string
	for _, dir := range append([]string{"services/" + component}, sharedConfig[component]...) {
		err := filepath.WalkDir(filepath.Join("../..", dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range envTag.FindAllStringSubmatch(string(data), -1) {
				vars = append(vars, m[1])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(vars)
	return slices.Compact(vars)
}

// schemaConfigKeys lists what values.schema.json lets a user set in components.<name>.config.
func schemaConfigKeys(t *testing.T, component string) []string {
	data, err := os.ReadFile(filepath.Join(ChartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Components struct {
				Properties map[string]struct {
					Properties struct {
						Config struct {
							Properties map[string]any `json:"properties"`
						} `json:"config"`
					} `json:"properties"`
				} `json:"properties"`
			} `json:"components"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range schema.Properties.Components.Properties[component].Properties.Config.Properties {
		keys = append(keys, k)
	}
	return keys
}

// TestEveryFlagIsReachable: the chart sets only variables the services read, and every
// BOXSCORE_* variable a service reads is either set by the chart from other values or can be
// set through components.<name>.config, which the schema checks.
func TestEveryFlagIsReachable(t *testing.T) {
	ch := loadChart(t)
	chartSet := map[string]map[string]bool{}
	// The value sets, and settings that no value set needs but a value turns into a variable.
	renders := []struct {
		files     []string
		overrides map[string]any
	}{
		{overrides: map[string]any{"default": map[string]any{"grpcClients": []any{"shard-consumer"}}}},
		{files: valueSets["redshift"], overrides: map[string]any{"warehouse": map[string]any{"redshift": map[string]any{
			"s3Endpoint": "http://s3.dev:9000", "iam": map[string]any{"enabled": true, "clusterId": "boxscore-dw"},
		}}}},
	}
	for _, files := range valueSets {
		renders = append(renders, struct {
			files     []string
			overrides map[string]any
		}{files: files})
	}
	for _, rc := range renders {
		r := render(t, ch, rc.files, rc.overrides)
		for _, d := range Of[*appsv1.Deployment](r) {
			component := d.Spec.Template.Labels["app.kubernetes.io/component"]
			if chartSet[component] == nil {
				chartSet[component] = map[string]bool{}
			}
			for name := range envOf(t, r, d.Spec.Template.Spec.Containers[0]) {
				if strings.HasPrefix(name, "BOXSCORE_") {
					chartSet[component][name] = true
				}
			}
		}
	}
	for _, component := range components {
		declared := sourceEnv(t, component)
		if len(declared) < 4 {
			t.Fatalf("%s: found only %v in its sources: is the layout different?", component, declared)
		}
		configurable := schemaConfigKeys(t, component)
		for name := range chartSet[component] {
			if !slices.Contains(declared, name) {
				t.Errorf("%s: the chart sets %s, which the service does not read", component, name)
			}
		}
		for _, name := range configurable {
			if !slices.Contains(declared, name) {
				t.Errorf("%s: the schema offers config %s, which the service does not read", component, name)
			}
		}
		for _, name := range declared {
			if !chartSet[component][name] && !slices.Contains(configurable, name) {
				t.Errorf("%s: %s is read by the service but neither set by the chart nor settable in components.%s.config", component, name, component)
			}
		}
	}
}
