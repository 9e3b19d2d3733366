// Package charttest renders the Boxscore Helm chart with the pinned Helm SDK and decodes every
// object strictly into its Kubernetes API type, so the tests can check policies on typed
// objects rather than on text. It exists only for its tests.
package charttest

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ChartDir is the chart under test, relative to this package.
const ChartDir = "../boxscore"

// Release is the release name and namespace every render uses.
var Release = chartutil.ReleaseOptions{Name: "bx", Namespace: "boxscore", IsInstall: true}

// Object is one rendered manifest, decoded strictly.
type Object struct {
	Source string // template file it came from
	Kind   string
	Name   string
	Typed  any // pointer to the k8s.io/api (or CRD) type of Kind
}

// Render is the result of one helm template.
type Render struct {
	Values  chartutil.Values // the coalesced values the templates saw
	Objects []Object
	Notes   string
	// ConfigMapText is each ConfigMap's rendered data, by name (checksum checks).
	ConfigMapText map[string]string
}

// LoadChart loads the chart from disk (honouring .helmignore), as helm does.
func LoadChart() (*chart.Chart, error) {
	return loader.Load(ChartDir)
}

// ReadValueFiles merges value files left to right, as repeated -f flags do.
func ReadValueFiles(paths ...string) (map[string]any, error) {
	merged := map[string]any{}
	for _, p := range paths {
		v, err := chartutil.ReadValuesFile(p)
		if err != nil {
			return nil, fmt.Errorf("read values %s: %w", p, err)
		}
		merged = chartutil.CoalesceTables(v.AsMap(), merged)
	}
	return merged, nil
}

// RenderChart validates values against values.schema.json, renders every template and
// decodes each object strictly (unknown fields are errors).
func RenderChart(ch *chart.Chart, userValues map[string]any) (*Render, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	kube, err := chartutil.ParseKubeVersion("v1.33.0")
	if err != nil {
		return nil, err
	}
	caps.KubeVersion = *kube
	values, err := chartutil.ToRenderValues(ch, userValues, Release, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, values)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	out := &Render{ConfigMapText: map[string]string{}}
	if v, ok := values["Values"].(chartutil.Values); ok {
		out.Values = v
	} else if m, ok := values["Values"].(map[string]any); ok {
		out.Values = m
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		text := files[name]
		base := filepath.Base(name)
		if base == "NOTES.txt" {
			out.Notes = text
			continue
		}
		if strings.HasPrefix(base, "_") {
			continue
		}
		for _, doc := range splitDocuments(text) {
			obj, err := decodeStrict(name, doc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if cm, ok := obj.Typed.(*corev1.ConfigMap); ok {
				out.ConfigMapText[cm.Name] = doc
			}
			out.Objects = append(out.Objects, obj)
		}
	}
	return out, errors.Join(errs...)
}

func splitDocuments(text string) []string {
	var docs []string
	for _, part := range strings.Split("\n"+text, "\n---") {
		trimmed := strings.TrimSpace(part)
		if trimmed == "" || isOnlyComments(trimmed) {
			continue
		}
		docs = append(docs, part)
	}
	return docs
}

func isOnlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// ScaledObject is the subset of KEDA's keda.sh/v1alpha1 ScaledObject the chart renders: the
// KEDA API module is not available here, so unknown fields still fail the strict decode.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

// TriggerAuthentication is the subset of KEDA's keda.sh/v1alpha1 TriggerAuthentication used.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		PodIdentity struct {
			Provider      string `json:"provider"`
			IdentityOwner string `json:"identityOwner"`
		} `json:"podIdentity"`
	} `json:"spec"`
}

// Certificate is the subset of cert-manager's cert-manager.io/v1 Certificate the chart renders
// (the cert-manager module is not a dependency here), so unknown fields still fail the strict
// decode. Field names as in cert-manager's pkg/apis/certmanager/v1.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName  string   `json:"secretName"`
		CommonName  string   `json:"commonName"`
		DNSNames    []string `json:"dnsNames"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		Usages      []string `json:"usages"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

func newTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "cert-manager.io/v1/Certificate":
		return &Certificate{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "batch/v1/Job":
		return &batchv1.Job{}, nil
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}, nil
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	case "keda.sh/v1alpha1/ScaledObject":
		return &ScaledObject{}, nil
	case "keda.sh/v1alpha1/TriggerAuthentication":
		return &TriggerAuthentication{}, nil
	}
	return nil, fmt.Errorf("no Go type registered for %s %s: add it to newTyped", apiVersion, kind)
}

func decodeStrict(source, doc string) (Object, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		return Object{}, fmt.Errorf("%s: not YAML: %w\n%s", source, err, doc)
	}
	typed, err := newTyped(head.APIVersion, head.Kind)
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", source, err)
	}
	// UnmarshalStrict rejects unknown and duplicate fields.
	if err := yaml.UnmarshalStrict(bytes.TrimSpace([]byte(doc)), typed); err != nil {
		return Object{}, fmt.Errorf("%s: %s %q does not decode strictly: %w", source, head.Kind, head.Metadata.Name, err)
	}
	return Object{Source: source, Kind: head.Kind, Name: head.Metadata.Name, Typed: typed}, nil
}

// Of returns the rendered objects of type T.
func Of[T any](r *Render) []T {
	var out []T
	for _, o := range r.Objects {
		if v, ok := o.Typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
