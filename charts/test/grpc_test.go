package charttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// grpcBackends are the components the consumer dials, and the variable that holds each address.
var grpcBackends = map[string]string{
	"transformer": "BOXSCORE_TRANSFORMER_ADDR",
	"loader":      "BOXSCORE_LOADER_ADDR",
}

// TestGRPCBackendsBehindHeadlessServices: the consumer reaches the transformer and the loader
// through headless Services with dns:/// targets, so its round_robin client sees (and calls)
// every ready pod. Through a ClusterIP Service it would see one virtual IP, hold one connection
// and send all its work to whichever pod kube-proxy picked for it.
func TestGRPCBackendsBehindHeadlessServices(t *testing.T) {
	ch := loadChart(t)
	// Long enough that "<fullname>-transformer-headless" must be cut to fit 63 characters.
	longName := strings.Repeat("x", 45)
	cases := map[string]struct {
		files     []string
		overrides map[string]any
		prefix    string // the resources' name prefix
	}{
		"other ports": {overrides: map[string]any{"components": map[string]any{
			"transformer": map[string]any{"ports": map[string]any{"grpc": 7002}},
			"loader":      map[string]any{"ports": map[string]any{"grpc": 7003}},
		}}, prefix: "bx-boxscore"},
		"longest fullname": {overrides: map[string]any{"fullnameOverride": longName}, prefix: longName},
	}
	for name, files := range valueSets {
		cases[name] = struct {
			files     []string
			overrides map[string]any
			prefix    string
		}{files: files, prefix: "bx-boxscore"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := render(t, ch, tc.files, tc.overrides)
			checkUniqueNames(t, r)
			consumer := deploymentOf(t, r, "shard-consumer")
			env := envOf(t, r, consumer.Spec.Template.Spec.Containers[0])
			for backend, variable := range grpcBackends {
				d := deploymentOf(t, r, backend)
				grpcPort := containerPort(t, d, "grpc")

				headless := headlessServiceOf(t, r, backend)
				if headless == nil {
					continue
				}
				if !strings.HasPrefix(headless.Name, tc.prefix) {
					t.Errorf("headless Service %s: not named after the release (%s)", headless.Name, tc.prefix)
				}
				if errs := validation.IsDNS1035Label(headless.Name); len(errs) > 0 {
					t.Errorf("headless Service name %q: %v", headless.Name, errs)
				}
				if headless.Spec.Type != "" && headless.Spec.Type != corev1.ServiceTypeClusterIP {
					t.Errorf("Service %s: type %s", headless.Name, headless.Spec.Type)
				}
				if headless.Spec.PublishNotReadyAddresses {
					t.Errorf("Service %s publishes pods that are not ready: a draining pod would still get calls", headless.Name)
				}
				// It selects the backend's pods, and only them.
				for _, other := range Of[*appsv1.Deployment](r) {
					if got, want := selects(headless.Spec.Selector, other.Spec.Template.Labels), other.Name == d.Name; got != want {
						t.Errorf("Service %s (selector %v) selects the pods of %s: %v, want %v", headless.Name, headless.Spec.Selector, other.Name, got, want)
					}
				}
				// The gRPC port alone, onto the container's gRPC port.
				if len(headless.Spec.Ports) != 1 {
					t.Errorf("Service %s: ports %+v, want the gRPC port alone", headless.Name, headless.Spec.Ports)
				} else if p := headless.Spec.Ports[0]; p.Name != "grpc" || p.Port != grpcPort || p.TargetPort.StrVal != "grpc" || p.Protocol != corev1.ProtocolTCP {
					t.Errorf("Service %s: port %+v, want grpc %d -> grpc/TCP", headless.Name, p, grpcPort)
				}
				// The consumer dials it by dns:///.
				want := fmt.Sprintf("dns:///%s:%d", headless.Name, grpcPort)
				if got := env[variable]; got != want {
					t.Errorf("consumer %s=%q, want %q", variable, got, want)
				}
				// The ClusterIP Service stays, for metrics and port-forward, with the admin port.
				if svc := find[*corev1.Service](r, d.Name); svc == nil || svc.Spec.ClusterIP == corev1.ClusterIPNone ||
					!slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "admin" }) {
					t.Errorf("the ClusterIP Service %s with the admin port is gone: %+v", d.Name, svc)
				}
				// A ServiceMonitor selecting it by labels finds no port to scrape there, so no
				// pod is scraped twice.
				for _, sm := range Of[*monitoringv1.ServiceMonitor](r) {
					if !selects(sm.Spec.Selector.MatchLabels, headless.Labels) {
						continue
					}
					for _, ep := range sm.Spec.Endpoints {
						if slices.ContainsFunc(headless.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
							t.Errorf("ServiceMonitor %s scrapes port %s of the headless Service %s too", sm.Name, ep.Port, headless.Name)
						}
					}
				}
			}
			// Headless Services for the gRPC backends only.
			for _, svc := range Of[*corev1.Service](r) {
				if svc.Spec.ClusterIP != corev1.ClusterIPNone {
					continue
				}
				if _, ok := grpcBackends[svc.Labels["app.kubernetes.io/component"]]; !ok {
					t.Errorf("headless Service %s for %s, which no component dials", svc.Name, svc.Labels["app.kubernetes.io/component"])
				}
			}
		})
	}
}

// TestGRPCMaxConnectionAge: every gRPC server ages its connections out (so clients re-resolve
// and find new pods), 30s unless the values say otherwise, per component or for all.
func TestGRPCMaxConnectionAge(t *testing.T) {
	ch := loadChart(t)
	age := func(r *Render, component string) string {
		return envOf(t, r, deploymentOf(t, r, component).Spec.Template.Spec.Containers[0])["BOXSCORE_GRPC_MAX_CONNECTION_AGE"]
	}
	r := render(t, ch, nil, nil)
	for _, c := range components {
		if got := age(r, c); got != "30s" {
			t.Errorf("%s: BOXSCORE_GRPC_MAX_CONNECTION_AGE=%q by default, want 30s", c, got)
		}
	}
	r = render(t, ch, nil, map[string]any{
		"default":    map[string]any{"grpc": map[string]any{"maxConnectionAge": "2m"}},
		"components": map[string]any{"loader": map[string]any{"grpc": map[string]any{"maxConnectionAge": "0"}}},
	})
	for c, want := range map[string]string{"transformer": "2m", "ingest-gateway": "2m", "loader": "0"} {
		if got := age(r, c); got != want {
			t.Errorf("%s: BOXSCORE_GRPC_MAX_CONNECTION_AGE=%q, want %q", c, got, want)
		}
	}
}

func deploymentOf(t *testing.T, r *Render, component string) *appsv1.Deployment {
	t.Helper()
	for _, d := range Of[*appsv1.Deployment](r) {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == component {
			return d
		}
	}
	t.Fatalf("no Deployment of component %s", component)
	return nil
}

func headlessServiceOf(t *testing.T, r *Render, component string) *corev1.Service {
	t.Helper()
	var found []*corev1.Service
	for _, svc := range Of[*corev1.Service](r) {
		if svc.Labels["app.kubernetes.io/component"] == component && svc.Spec.ClusterIP == corev1.ClusterIPNone {
			found = append(found, svc)
		}
	}
	if len(found) != 1 {
		t.Errorf("%s: %d headless Services, want 1", component, len(found))
		return nil
	}
	return found[0]
}

func containerPort(t *testing.T, d *appsv1.Deployment, name string) int32 {
	t.Helper()
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("Deployment %s has no container port %s", d.Name, name)
	return 0
}
