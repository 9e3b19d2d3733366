package charttest

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// valueSets are the renders every policy test runs over: the defaults, each CI value file,
// and the dev cluster's values that skaffold's dev profile uses.
var valueSets = map[string][]string{
	"defaults":       nil,
	"keda":           {"../boxscore/ci/keda-values.yaml"},
	"keda-operator":  {"../boxscore/ci/keda-operator-values.yaml"},
	"ingress":        {"../boxscore/ci/ingress-values.yaml"},
	"postgresql":     {"../boxscore/ci/postgresql-values.yaml"},
	"redshift":       {"../boxscore/ci/redshift-values.yaml"},
	"redshift-iam":   {"../boxscore/ci/redshift-iam-values.yaml"},
	"minimal":        {"../boxscore/ci/minimal-values.yaml"},
	"api-keys":       {"../boxscore/ci/api-keys-values.yaml"},
	"cert-manager":   {"../boxscore/ci/cert-manager-values.yaml"},
	"oidc":           {"../boxscore/ci/oidc-values.yaml"},
	"iam":            {"../boxscore/ci/iam-values.yaml"},
	"alerts":         {"../boxscore/ci/alerts-values.yaml"},
	"dev":            {"../../k8s/dev/values-dev.yaml"},
	"eks":            {"../../k8s/eks/values-eks.yaml"},
	"redshift+keda":  {"../boxscore/ci/redshift-values.yaml", "../boxscore/ci/keda-values.yaml"},
	"ingress+pinned": {"../boxscore/ci/ingress-values.yaml", "../boxscore/ci/minimal-values.yaml"},
	"extractor":      {"../boxscore/ci/extractor-values.yaml"},
	// The extractor with the gateway open to anyone, no NetworkPolicies, existing accounts.
	"extractor+minimal": {"../boxscore/ci/extractor-values.yaml", "../boxscore/ci/minimal-values.yaml"},
	// The extractor in a dev cluster without producer authentication: no key to send.
	"extractor+dev": {"../boxscore/ci/extractor-values.yaml", "../../k8s/dev/values-dev.yaml"},
}

var components = []string{"ingest-gateway", "shard-consumer", "transformer", "loader"}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := LoadChart()
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

func render(t *testing.T, ch *chart.Chart, files []string, overrides map[string]any) *Render {
	t.Helper()
	vals, err := ReadValueFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	if overrides != nil {
		vals = chartutil.CoalesceTables(overrides, vals)
	}
	r, err := RenderChart(ch, vals)
	if err != nil {
		t.Fatalf("render %v: %v", files, err)
	}
	return r
}

func TestLintStrict(t *testing.T) {
	for name, files := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals, err := ReadValueFiles(files...)
			if err != nil {
				t.Fatal(err)
			}
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = Release.Namespace
			result := lint.Run([]string{ChartDir}, vals)
			for _, msg := range result.Messages {
				t.Logf("lint: %s", msg)
			}
			if len(result.Errors) > 0 || result.TotalChartsLinted != 1 {
				t.Fatalf("helm lint --strict: %d charts linted, errors: %v", result.TotalChartsLinted, result.Errors)
			}
		})
	}
}

// TestRenderedObjectsHoldPolicies renders every value set, decodes every object strictly
// (RenderChart fails on an unknown field) and checks what an operator relies on.
func TestRenderedObjectsHoldPolicies(t *testing.T) {
	ch := loadChart(t)
	for name, files := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := render(t, ch, files, nil)
			deployments := Of[*appsv1.Deployment](r)
			if len(deployments) != len(components) {
				t.Fatalf("got %d Deployments, want one per component (%d)", len(deployments), len(components))
			}
			checkUniqueNames(t, r)
			for _, d := range deployments {
				checkWorkload(t, r, d)
			}
			checkReferences(t, r)
			checkServices(t, r)
			checkScaling(t, r)
			checkNetworkPolicies(t, r)
			checkIngressAndMonitors(t, r)
			checkExtractor(t, r)
			if !strings.Contains(r.Notes, "/v1/stats") || !strings.Contains(r.Notes, "curl") {
				t.Errorf("NOTES.txt does not tell how to send the first event:\n%s", r.Notes)
			}
		})
	}
}

func checkUniqueNames(t *testing.T, r *Render) {
	seen := map[string]bool{}
	for _, o := range r.Objects {
		key := o.Kind + "/" + o.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if o.Name == "" {
			t.Errorf("%s from %s has no name", o.Kind, o.Source)
		}
	}
}

// envOf resolves a container's environment: its ConfigMap envFrom first, then env (which
// wins, as in Kubernetes). Values from Secrets or the downward API resolve to "".
func envOf(t *testing.T, r *Render, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm := find[*corev1.ConfigMap](r, from.ConfigMapRef.Name)
		if cm == nil {
			t.Errorf("container %s: envFrom ConfigMap %q is not rendered", c.Name, from.ConfigMapRef.Name)
			continue
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func find[T interface{ GetName() string }](r *Render, name string) T {
	var zero T
	for _, o := range Of[T](r) {
		if o.GetName() == name {
			return o
		}
	}
	return zero
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("address %q: port: %v", addr, err)
	}
	return int32(n)
}

// listenEnv are the variables holding a service's own listen addresses (pkg/server and the
// gateway's public HTTP API); every other *_ADDR is a client address.
var listenEnv = []string{"BOXSCORE_GRPC_ADDR", "BOXSCORE_ADMIN_ADDR", "BOXSCORE_HTTP_ADDR"}

func checkWorkload(t *testing.T, r *Render, d *appsv1.Deployment) {
	spec := d.Spec.Template.Spec
	component := d.Spec.Template.Labels["app.kubernetes.io/component"]
	if !slices.Contains(components, component) {
		t.Errorf("Deployment %s: component label %q", d.Name, component)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Deployment %s: selector %s=%s does not select its own pods", d.Name, k, v)
		}
	}
	if _, ok := d.Spec.Template.Annotations["checksum/config"]; !ok {
		t.Errorf("Deployment %s: no checksum/config annotation", d.Name)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("Deployment %s: pod securityContext must set runAsNonRoot and seccomp RuntimeDefault: %+v", d.Name, psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("Deployment %s: automountServiceAccountToken must be false", d.Name)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("Deployment %s: %d containers, want 1", d.Name, len(spec.Containers))
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		where := d.Name + "/" + c.Name
		// Resources.
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			t.Errorf("%s: needs cpu and memory requests and a memory limit: %+v", where, c.Resources)
		}
		// Security.
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", where)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: root filesystem must be read-only", where)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: allowPrivilegeEscalation must be false", where)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: must drop ALL capabilities and add none", where)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s: privileged", where)
		case sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot:
			t.Errorf("%s: runAsNonRoot false", where)
		}
		// Image.
		checkImage(t, where, c.Image)
		// Ports: the container's ports are exactly the ports the service listens on.
		env := envOf(t, r, c)
		var listening, declared []int32
		for _, name := range listenEnv {
			if addr, ok := env[name]; ok {
				listening = append(listening, portOf(t, addr))
				if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" {
					t.Errorf("%s: %s=%s listens on %s only: unreachable from the Service", where, name, addr, host)
				}
			}
		}
		namedPorts := map[string]int32{}
		for _, p := range c.Ports {
			declared = append(declared, p.ContainerPort)
			namedPorts[p.Name] = p.ContainerPort
		}
		slices.Sort(listening)
		slices.Sort(declared)
		if len(listening) < 2 || !slices.Equal(listening, declared) {
			t.Errorf("%s: container ports %v differ from the listen addresses %v", where, declared, listening)
		}
		// Probes, on those ports.
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness and liveness probes are required", where)
		} else {
			for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
				checkProbe(t, where+" "+kind, p, namedPorts)
			}
			if c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: liveness must be GET /healthz (never readiness: a down dependency must not restart pods)", where)
			}
		}
		// Shutdown: Kubernetes must not SIGKILL a drain that keeps to its timeout.
		timeout, err := time.ParseDuration(env["BOXSCORE_SHUTDOWN_TIMEOUT"])
		if err != nil {
			t.Errorf("%s: BOXSCORE_SHUTDOWN_TIMEOUT: %v", where, err)
		} else if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= timeout {
			t.Errorf("%s: terminationGracePeriodSeconds %v must exceed BOXSCORE_SHUTDOWN_TIMEOUT %s", where, spec.TerminationGracePeriodSeconds, timeout)
		}
		// Client addresses are dns:/// targets of rendered headless Services and their gRPC
		// ports (TestGRPCBackendsBehindHeadlessServices checks what they select).
		for _, name := range []string{"BOXSCORE_TRANSFORMER_ADDR", "BOXSCORE_LOADER_ADDR"} {
			addr, ok := env[name]
			if !ok {
				continue
			}
			svc, port, err := targetService(r, addr)
			if err != nil {
				t.Errorf("%s: %s=%s: %v", where, name, addr, err)
				continue
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("%s: %s=%s: Service %s is not headless: the client would see one address, one pod", where, name, addr, svc.Name)
			}
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port && p.Name == "grpc" }) {
				t.Errorf("%s: %s=%s: Service %s has no grpc port %d", where, name, addr, svc.Name, port)
			}
		}
		for _, name := range []string{"POD_NAME", "POD_NAMESPACE", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"} {
			if _, ok := env[name]; !ok {
				t.Errorf("%s: %s is not set", where, name)
			}
		}
	}
}

func checkImage(t *testing.T, where, image string) {
	if i := strings.Index(image, "@"); i >= 0 {
		if !strings.HasPrefix(image[i+1:], "sha256:") || len(image[i+1:]) != len("sha256:")+64 {
			t.Errorf("%s: image %q: malformed digest", where, image)
		}
		return
	}
	lastSegment := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(lastSegment, ":")
	if i < 0 {
		t.Errorf("%s: image %q has no tag (that means latest)", where, image)
		return
	}
	if tag := lastSegment[i+1:]; tag == "" || tag == "latest" {
		t.Errorf("%s: image %q: tag %q", where, image, tag)
	}
}

func checkProbe(t *testing.T, where string, p *corev1.Probe, ports map[string]int32) {
	if p == nil {
		return
	}
	switch {
	case p.GRPC != nil:
		if p.GRPC.Port != ports["grpc"] {
			t.Errorf("%s: gRPC probe on port %d, the gRPC port is %d", where, p.GRPC.Port, ports["grpc"])
		}
	case p.HTTPGet != nil:
		port := p.HTTPGet.Port
		if port.StrVal != "admin" && port.IntValue() != int(ports["admin"]) {
			t.Errorf("%s: HTTP probe on port %s, not the admin port", where, port.String())
		}
		if p.HTTPGet.Path != "/healthz" && p.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: HTTP probe on %s", where, p.HTTPGet.Path)
		}
	default:
		t.Errorf("%s: probe is neither gRPC nor HTTP", where)
	}
}

// userProvided lists what the values say the user creates: Secrets and ServiceAccounts the
// chart references but never renders (docs/kubernetes.md, "What you create").
func userProvided(r *Render) (secrets, serviceAccounts []string) {
	get := func(path string) string {
		v, err := r.Values.PathValue(path)
		if err != nil {
			return ""
		}
		s, _ := v.(string)
		return s
	}
	secrets = append(secrets, get("warehouse.existingSecret.name"), get("leaseStore.existingSecret.name"),
		get("migrations.existingSecret.name"), get("migrations.leaseExistingSecret.name"),
		get("warehouse.caBundle.secret"), get("leaseStore.caBundle.secret"))
	if enabled, _ := r.Values.PathValue("auth.apiKeys.enabled"); enabled == true {
		if keys, _ := r.Values.PathValue("auth.apiKeys.keys"); keys == nil || len(keys.([]any)) == 0 {
			secrets = append(secrets, get("auth.apiKeys.existingSecret"))
		}
	}
	if enabled, _ := r.Values.PathValue("tls.enabled"); enabled == true {
		if cm, _ := r.Values.PathValue("tls.certManager.enabled"); cm != true {
			for _, c := range components {
				secrets = append(secrets, get("tls.existingSecrets."+c))
			}
		}
	}
	if list, ok := r.Values["imagePullSecrets"].([]any); ok {
		for _, s := range list {
			if m, ok := s.(map[string]any); ok {
				secrets = append(secrets, fmt.Sprint(m["name"]))
			}
		}
	}
	for _, ing := range Of[*networkingv1.Ingress](r) {
		for _, tls := range ing.Spec.TLS {
			secrets = append(secrets, tls.SecretName)
		}
	}
	for _, c := range components {
		if create, _ := r.Values.PathValue("components." + c + ".serviceAccount.create"); create == false {
			serviceAccounts = append(serviceAccounts, get("components."+c+".serviceAccount.name"))
		}
	}
	return secrets, serviceAccounts
}

// userConfigMaps lists the ConfigMaps the values say the user creates (CA bundles).
func userConfigMaps(r *Render) []string {
	var out []string
	for _, path := range []string{"warehouse.caBundle.configMap", "leaseStore.caBundle.configMap"} {
		if v, err := r.Values.PathValue(path); err == nil {
			if s, _ := v.(string); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// chartSecrets lists the Secrets the release itself provides: rendered ones, and those
// cert-manager writes for its rendered Certificates.
func chartSecrets(r *Render) []string {
	var out []string
	for _, s := range Of[*corev1.Secret](r) {
		out = append(out, s.Name)
	}
	for _, c := range Of[*Certificate](r) {
		out = append(out, c.Spec.SecretName)
	}
	return out
}

func checkReferences(t *testing.T, r *Render) {
	secrets, serviceAccounts := userProvided(r)
	secrets = append(secrets, chartSecrets(r)...)
	configMaps := userConfigMaps(r)
	for _, d := range Of[*appsv1.Deployment](r) {
		spec := d.Spec.Template.Spec
		sa := spec.ServiceAccountName
		if sa == "" || (find[*corev1.ServiceAccount](r, sa) == nil && !slices.Contains(serviceAccounts, sa)) {
			t.Errorf("Deployment %s: ServiceAccount %q is neither rendered nor user-provided in values", d.Name, sa)
		}
		for _, ps := range spec.ImagePullSecrets {
			if !slices.Contains(secrets, ps.Name) {
				t.Errorf("Deployment %s: imagePullSecret %q not in values", d.Name, ps.Name)
			}
		}
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && find[*corev1.ConfigMap](r, v.ConfigMap.Name) == nil && !slices.Contains(configMaps, v.ConfigMap.Name) {
				t.Errorf("Deployment %s: volume ConfigMap %q neither rendered nor user-provided in values", d.Name, v.ConfigMap.Name)
			}
			if v.Secret != nil && !slices.Contains(secrets, v.Secret.SecretName) {
				t.Errorf("Deployment %s: volume Secret %q is neither the release's nor user-provided in values", d.Name, v.Secret.SecretName)
			}
		}
		for _, c := range spec.Containers {
			for _, from := range c.EnvFrom {
				if from.SecretRef != nil && !slices.Contains(secrets, from.SecretRef.Name) {
					t.Errorf("%s/%s: envFrom Secret %q is not user-provided in values", d.Name, c.Name, from.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if ref := e.ValueFrom.SecretKeyRef; ref != nil && (ref.Name == "" || !slices.Contains(secrets, ref.Name)) {
					t.Errorf("%s/%s: env %s from Secret %q, which is not user-provided in values", d.Name, c.Name, e.Name, ref.Name)
				}
				if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
					if cm := find[*corev1.ConfigMap](r, ref.Name); cm == nil || cm.Data[ref.Key] == "" {
						t.Errorf("%s/%s: env %s from ConfigMap %s key %s, not rendered", d.Name, c.Name, e.Name, ref.Name, ref.Key)
					}
				}
			}
		}
	}
}

func checkServices(t *testing.T, r *Render) {
	for _, svc := range Of[*corev1.Service](r) {
		selected := selectedDeployments(r, svc.Spec.Selector)
		if len(selected) != 1 {
			t.Errorf("Service %s: selector %v selects the pods of %d Deployments, want 1", svc.Name, svc.Spec.Selector, len(selected))
			continue
		}
		d := selected[0]
		if component := d.Spec.Template.Labels["app.kubernetes.io/component"]; !strings.HasPrefix(svc.Name, d.Name) {
			t.Errorf("Service %s selects the %s pods but is not named after their Deployment %s", svc.Name, component, d.Name)
		}
		container := d.Spec.Template.Spec.Containers[0]
		for _, p := range svc.Spec.Ports {
			if !slices.ContainsFunc(container.Ports, func(cp corev1.ContainerPort) bool {
				return cp.Name == p.TargetPort.StrVal && cp.ContainerPort == p.Port
			}) {
				t.Errorf("Service %s: port %s %d -> %s matches no container port", svc.Name, p.Name, p.Port, p.TargetPort.String())
			}
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP && !strings.HasSuffix(svc.Name, "-ingest-gateway") {
			t.Errorf("Service %s: type %s, internal services must be ClusterIP", svc.Name, svc.Spec.Type)
		}
	}
	for _, pdb := range Of[*policyv1.PodDisruptionBudget](r) {
		if d := find[*appsv1.Deployment](r, pdb.Name); d == nil || !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("PodDisruptionBudget %s selects no Deployment's pods", pdb.Name)
		}
	}
}

// selectedDeployments are the Deployments whose pods a Service selector selects.
func selectedDeployments(r *Render, selector map[string]string) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range Of[*appsv1.Deployment](r) {
		if selects(selector, d.Spec.Template.Labels) {
			out = append(out, d)
		}
	}
	return out
}

// targetService resolves a gRPC target the chart gives a client, dns:///<host>:<port>, to the
// rendered Service it names: <host> is the Service's name, or its name.<namespace>[.svc...].
func targetService(r *Render, target string) (*corev1.Service, int32, error) {
	hostPort, ok := strings.CutPrefix(target, "dns:///")
	if !ok {
		return nil, 0, fmt.Errorf("not a dns:/// target: gRPC would resolve it once and pick the first address")
	}
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, 0, err
	}
	port, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		return nil, 0, fmt.Errorf("port: %w", err)
	}
	name, rest, qualified := strings.Cut(strings.TrimSuffix(host, "."), ".")
	if qualified && rest != Release.Namespace && !strings.HasPrefix(rest, Release.Namespace+".svc") {
		return nil, 0, fmt.Errorf("host %s is not in the release namespace %s", host, Release.Namespace)
	}
	svc := find[*corev1.Service](r, name)
	if svc == nil {
		return nil, 0, fmt.Errorf("names no rendered Service (%s)", name)
	}
	return svc, int32(port), nil
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkScaling: a Deployment has spec.replicas exactly when no autoscaler owns it, and the
// shard-consumer follows the shard count when nothing else decides.
func checkScaling(t *testing.T, r *Render) {
	owned := map[string]string{}
	for _, hpa := range Of[*autoscalingv2.HorizontalPodAutoscaler](r) {
		owned[hpa.Spec.ScaleTargetRef.Name] = "HPA"
		if strings.HasSuffix(hpa.Spec.ScaleTargetRef.Name, "-shard-consumer") {
			t.Errorf("HPA %s on the shard-consumer: it scales with shards, not CPU", hpa.Name)
		}
		if len(hpa.Spec.Metrics) == 0 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HPA %s: not on CPU", hpa.Name)
		}
	}
	for _, so := range Of[*ScaledObject](r) {
		if _, dup := owned[so.Spec.ScaleTargetRef.Name]; dup {
			t.Errorf("%s is owned by an HPA and KEDA at once", so.Spec.ScaleTargetRef.Name)
		}
		owned[so.Spec.ScaleTargetRef.Name] = "KEDA"
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "aws-kinesis-stream" {
			t.Fatalf("ScaledObject %s: want one aws-kinesis-stream trigger: %+v", so.Name, so.Spec.Triggers)
		}
		md := so.Spec.Triggers[0].Metadata
		stream, _ := r.Values.PathValue("stream.name")
		per, _ := r.Values.PathValue("stream.shardsPerReplica")
		if md["streamName"] != fmt.Sprint(stream) || md["shardCount"] != fmt.Sprint(per) || md["awsRegion"] == "" {
			t.Errorf("ScaledObject %s: trigger metadata %v, want stream %v and shardCount %v", so.Name, md, stream, per)
		}
		if ref := so.Spec.Triggers[0].AuthenticationRef; ref != nil && find[*TriggerAuthentication](r, ref.Name) == nil {
			t.Errorf("ScaledObject %s: TriggerAuthentication %s not rendered", so.Name, ref.Name)
		}
	}
	for target := range owned {
		if find[*appsv1.Deployment](r, target) == nil {
			t.Errorf("autoscaler targets %s, which is not rendered", target)
		}
	}
	for _, d := range Of[*appsv1.Deployment](r) {
		_, isOwned := owned[d.Name]
		if isOwned == (d.Spec.Replicas != nil) {
			t.Errorf("Deployment %s: replicas %v with autoscaler %q: exactly one of them must decide", d.Name, d.Spec.Replicas, owned[d.Name])
		}
	}
}

func ports(rules []networkingv1.NetworkPolicyPort) []int {
	var out []int
	for _, p := range rules {
		if p.Port != nil && p.Port.IntValue() != 0 {
			out = append(out, p.Port.IntValue())
		}
	}
	return out
}

func checkNetworkPolicies(t *testing.T, r *Render) {
	policies := Of[*networkingv1.NetworkPolicy](r)
	if enabled, _ := r.Values.PathValue("networkPolicy.enabled"); enabled != true {
		if len(policies) != 0 {
			t.Errorf("networkPolicy.enabled is false, yet %d NetworkPolicies", len(policies))
		}
		return
	}
	want := len(components)
	if enabled, _ := r.Values.PathValue("extractor.enabled"); enabled == true {
		want++ // checkExtractor checks the extractor's
	}
	if len(policies) != want {
		t.Fatalf("%d NetworkPolicies, want one per component (and the extractor's): %d", len(policies), want)
	}
	warehousePort, _ := r.Values.PathValue("warehouse.port")
	engine, _ := r.Values.PathValue("warehouse.engine")
	release := map[string]string{"app.kubernetes.io/instance": Release.Name}
	for _, np := range policies {
		component := np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"]
		if component == "extractor" {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("NetworkPolicy %s: must restrict both ingress and egress", np.Name)
		}
		for _, rule := range np.Spec.Ingress {
			fromOutside := len(rule.From) == 0
			for _, peer := range rule.From {
				if peer.PodSelector == nil || peer.NamespaceSelector != nil || !selects(release, peer.PodSelector.MatchLabels) {
					fromOutside = true
				}
			}
			onlyAdmin := len(rule.Ports) == 1 && rule.Ports[0].Port != nil && rule.Ports[0].Port.StrVal == "admin"
			if fromOutside && component != "ingest-gateway" && !onlyAdmin {
				t.Errorf("NetworkPolicy %s: %s takes traffic from outside the release: %+v", np.Name, component, rule)
			}
		}
		for _, rule := range np.Spec.Egress {
			for _, port := range ports(rule.Ports) {
				if port == 443 && component != "ingest-gateway" && component != "shard-consumer" && (component != "loader" || engine != "redshift") {
					t.Errorf("NetworkPolicy %s: %s may reach AWS (443)", np.Name, component)
				}
				if port == int(toInt(warehousePort)) && component != "loader" && component != "shard-consumer" {
					t.Errorf("NetworkPolicy %s: %s may reach the warehouse port %d", np.Name, component, port)
				}
			}
		}
		var egress []int
		for _, rule := range np.Spec.Egress {
			egress = append(egress, ports(rule.Ports)...)
		}
		if !slices.Contains(egress, 53) {
			t.Errorf("NetworkPolicy %s: no DNS egress", np.Name)
		}
		if component == "loader" && !slices.Contains(egress, int(toInt(warehousePort))) {
			t.Errorf("NetworkPolicy %s: the loader cannot reach the warehouse port %v", np.Name, warehousePort)
		}
		if component == "loader" && engine == "redshift" && !slices.Contains(egress, 443) {
			t.Errorf("NetworkPolicy %s: a Redshift loader cannot reach S3 and the credentials API (443)", np.Name)
		}
	}
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return i
	}
	i, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return i
}

func checkIngressAndMonitors(t *testing.T, r *Render) {
	for _, ing := range Of[*networkingv1.Ingress](r) {
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				svc := find[*corev1.Service](r, p.Backend.Service.Name)
				if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == p.Backend.Service.Port.Name }) {
					t.Errorf("Ingress %s: backend %s:%s not rendered", ing.Name, p.Backend.Service.Name, p.Backend.Service.Port.Name)
				}
			}
		}
	}
	for _, sm := range Of[*monitoringv1.ServiceMonitor](r) {
		svc := find[*corev1.Service](r, sm.Name)
		if svc == nil || !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
			t.Errorf("ServiceMonitor %s selects no Service", sm.Name)
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == ep.Port }) {
				t.Errorf("ServiceMonitor %s: port %q not on Service %s", sm.Name, ep.Port, svc.Name)
			}
		}
	}
}

func TestSchemaRejectsTypos(t *testing.T) {
	ch := loadChart(t)
	cases := map[string]map[string]any{
		"top-level key":           {"strem": map[string]any{"name": "x"}},
		"component key":           {"components": map[string]any{"loader": map[string]any{"replica": 3}}},
		"default key":             {"default": map[string]any{"resources": map[string]any{"limit": map[string]any{"memory": "1Gi"}}}},
		"config variable":         {"components": map[string]any{"shard-consumer": map[string]any{"config": map[string]any{"BOXSCORE_LEASE_FAILOVER": "10s"}}}},
		"other service's setting": {"components": map[string]any{"transformer": map[string]any{"config": map[string]any{"BOXSCORE_POLL_INTERVAL": "1s"}}}},
		"latest tag":              {"components": map[string]any{"transformer": map[string]any{"image": map[string]any{"tag": "latest"}}}},
		"warehouse engine":        {"warehouse": map[string]any{"engine": "mysql"}},
		"port out of range":       {"components": map[string]any{"loader": map[string]any{"ports": map[string]any{"grpc": 70000}}}},
		"bad duration":            {"components": map[string]any{"ingest-gateway": map[string]any{"config": map[string]any{"BOXSCORE_PUBLISH_RETRY_BUDGET": "10 seconds"}}}},
		"keda on the gateway":     {"components": map[string]any{"ingest-gateway": map[string]any{"keda": map[string]any{"enabled": true}}}},
		"bad connection age":      {"default": map[string]any{"grpc": map[string]any{"maxConnectionAge": "30 seconds"}}},
		"alert threshold key":     {"prometheusRule": map[string]any{"alerts": map[string]any{"consumerLag": map[string]any{"treshold": 60}}}},
		"unknown alert":           {"prometheusRule": map[string]any{"alerts": map[string]any{"consumerLagg": map[string]any{"enabled": false}}}},
		"slo not a bucket":        {"prometheusRule": map[string]any{"alerts": map[string]any{"freshnessBurn": map[string]any{"sloSeconds": 45}}}},
		"alert severity":          {"prometheusRule": map[string]any{"alerts": map[string]any{"gateway5xx": map[string]any{"severity": "page"}}}},
		"runbook url anchor":      {"prometheusRule": map[string]any{"runbookBaseUrl": "https://example.com/ops.md#alerts"}},
		"severity in alertLabels": {"prometheusRule": map[string]any{"alertLabels": map[string]any{"severity": "page"}}},
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(ch, vals)
			if err == nil || !strings.Contains(err.Error(), "schema") {
				t.Fatalf("values %v rendered (err %v); the schema must reject them", vals, err)
			}
		})
	}
	// And a valid override passes, so the cases above fail for their typo alone.
	if _, err := RenderChart(ch, map[string]any{"components": map[string]any{"loader": map[string]any{"replicas": 3}}}); err != nil {
		t.Fatalf("a valid override is rejected: %v", err)
	}
}

func TestRedshiftNeedsASeparateLeaseStore(t *testing.T) {
	ch := loadChart(t)
	_, err := RenderChart(ch, map[string]any{"warehouse": map[string]any{"engine": "redshift", "port": 5439, "redshift": map[string]any{
		"stagingUri": "s3://staging/loads/", "copyRoleArn": "arn:aws:iam::123456789012:role/copy",
	}}})
	if err == nil || !strings.Contains(err.Error(), "leaseStore.host is required") {
		t.Fatalf("redshift without a lease store: got %v", err)
	}
}

func TestConsumerReplicasFollowShards(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ shards, per, want int }{{4, 2, 2}, {5, 2, 3}, {1, 2, 1}, {16, 1, 16}, {3, 4, 1}} {
		r := render(t, ch, nil, map[string]any{"stream": map[string]any{"shards": tc.shards, "shardsPerReplica": tc.per}})
		d := find[*appsv1.Deployment](r, "bx-boxscore-shard-consumer")
		if d == nil || d.Spec.Replicas == nil || int(*d.Spec.Replicas) != tc.want {
			t.Errorf("%d shards, %d per replica: replicas %v, want %d", tc.shards, tc.per, d.Spec.Replicas, tc.want)
		}
	}
}

func TestChecksumFollowsConfig(t *testing.T) {
	ch := loadChart(t)
	checksum := func(overrides map[string]any) (string, string) {
		r := render(t, ch, nil, overrides)
		return find[*appsv1.Deployment](r, "bx-boxscore-loader").Spec.Template.Annotations["checksum/config"],
			find[*appsv1.Deployment](r, "bx-boxscore-transformer").Spec.Template.Annotations["checksum/config"]
	}
	loaderBefore, transformerBefore := checksum(nil)
	loaderAfter, transformerAfter := checksum(map[string]any{"warehouse": map[string]any{"schema": "other"}})
	if loaderBefore == loaderAfter {
		t.Error("changing the loader's warehouse schema left its checksum/config unchanged: pods would not roll")
	}
	if transformerBefore != transformerAfter {
		t.Error("a loader-only change rolled the transformer")
	}
}

func TestDashboards(t *testing.T) {
	ch := loadChart(t)
	var shipped []string
	for _, f := range ch.Files {
		if matched, _ := filepath.Match("dashboards/*.json", f.Name); matched {
			shipped = append(shipped, filepath.Base(f.Name))
		}
	}
	r := render(t, ch, nil, nil)
	cm := find[*corev1.ConfigMap](r, "bx-boxscore-dashboards")
	if len(shipped) == 0 && cm != nil {
		t.Error("no dashboard file, yet a dashboards ConfigMap")
	}
	if len(shipped) > 0 {
		if cm == nil || cm.Labels["grafana_dashboard"] != "1" {
			t.Fatalf("dashboards %v shipped but no ConfigMap labelled grafana_dashboard=1", shipped)
		}
		for _, name := range shipped {
			if cm.Data[name] == "" {
				t.Errorf("dashboard %s missing from the ConfigMap", name)
			}
		}
	}
	// With a dashboard added, it lands verbatim in the labelled ConfigMap.
	withOne := *ch
	withOne.Files = append(slices.Clone(ch.Files), &chart.File{Name: "dashboards/zz-test.json", Data: []byte(`{"title": "test", "panels": []}`)})
	r = render(t, &withOne, nil, nil)
	cm = find[*corev1.ConfigMap](r, "bx-boxscore-dashboards")
	if cm == nil || cm.Labels["grafana_dashboard"] != "1" || cm.Data["zz-test.json"] != `{"title": "test", "panels": []}` {
		t.Fatalf("added dashboard not rendered into the labelled ConfigMap: %+v", cm)
	}
}

func TestIRSAAnnotations(t *testing.T) {
	ch := loadChart(t)
	r := render(t, ch, []string{"../boxscore/ci/keda-values.yaml"}, nil)
	sa := find[*corev1.ServiceAccount](r, "bx-boxscore-shard-consumer")
	if sa == nil || sa.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/boxscore-shard-consumer" {
		t.Fatalf("shard-consumer ServiceAccount lacks its IRSA role: %+v", sa)
	}
	if sa := find[*corev1.ServiceAccount](r, "bx-boxscore-transformer"); sa == nil || sa.Annotations["eks.amazonaws.com/role-arn"] != "" {
		t.Errorf("transformer ServiceAccount: want one without an AWS role: %+v", sa)
	}
}
