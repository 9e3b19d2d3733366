package charttest

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// extractorSecretKey is the Secret key reference of BOXSCORE_API_KEY, or nil.
func extractorSecretKey(c corev1.Container) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == "BOXSCORE_API_KEY" && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

func valueString(r *Render, path string) string {
	v, err := r.Values.PathValue(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(v)
}

// checkExtractor holds in every value set: no CronJob unless extractor.enabled; when enabled,
// one CronJob that never overlaps, hardened like the services, posting to the release's own
// gateway with the producer key from the Secret the values name, and a NetworkPolicy that
// lets it reach DNS, the Stats API on public addresses and the gateway pods only.
func checkExtractor(t *testing.T, r *Render) {
	cronJobs := Of[*batchv1.CronJob](r)
	if enabled, _ := r.Values.PathValue("extractor.enabled"); enabled != true {
		if len(cronJobs) != 0 {
			t.Errorf("extractor.enabled is false, yet %d CronJobs", len(cronJobs))
		}
		return
	}
	if len(cronJobs) != 1 {
		t.Fatalf("extractor.enabled: %d CronJobs, want 1", len(cronJobs))
	}
	cj := cronJobs[0]
	where := "CronJob " + cj.Name
	if cj.Spec.Schedule != valueString(r, "extractor.schedule") {
		t.Errorf("%s: schedule %q, want the values' %q", where, cj.Spec.Schedule, valueString(r, "extractor.schedule"))
	}
	if _, err := cron.ParseStandard(cj.Spec.Schedule); err != nil || strings.Contains(cj.Spec.Schedule, "TZ") {
		t.Errorf("%s: schedule %q would be refused by the API server: %v", where, cj.Spec.Schedule, err)
	}
	if cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != valueString(r, "extractor.timeZone") {
		t.Errorf("%s: timeZone %v, want the values' %q", where, cj.Spec.TimeZone, valueString(r, "extractor.timeZone"))
	} else if _, err := time.LoadLocation(*cj.Spec.TimeZone); err != nil {
		t.Errorf("%s: timeZone %q: %v", where, *cj.Spec.TimeZone, err)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("%s: concurrencyPolicy %q, want Forbid: two runs at once would double the load on the source", where, cj.Spec.ConcurrencyPolicy)
	}
	if cj.Spec.StartingDeadlineSeconds == nil || cj.Spec.SuccessfulJobsHistoryLimit == nil || cj.Spec.FailedJobsHistoryLimit == nil {
		t.Errorf("%s: startingDeadlineSeconds and both history limits must be set: %+v", where, cj.Spec)
	}
	job := cj.Spec.JobTemplate.Spec
	if job.BackoffLimit == nil || job.ActiveDeadlineSeconds == nil || *job.ActiveDeadlineSeconds <= 0 {
		t.Errorf("%s: backoffLimit %v and activeDeadlineSeconds %v must bound every run", where, job.BackoffLimit, job.ActiveDeadlineSeconds)
	}
	pod := job.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("%s: restartPolicy %q is not allowed in a Job", where, pod.RestartPolicy)
	}
	if !selects(map[string]string{"app.kubernetes.io/component": "extractor", "app.kubernetes.io/instance": Release.Name}, job.Template.Labels) {
		t.Errorf("%s: pod labels %v do not name the extractor component of the release", where, job.Template.Labels)
	}
	checkPodHardened(t, where, pod)
	if !strings.Contains(r.Notes, "create job --from=cronjob/"+cj.Name+" ") {
		t.Errorf("NOTES.txt does not tell how to run %s now:\n%s", cj.Name, r.Notes)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", where, len(pod.Containers))
	}
	c := pod.Containers[0]
	checkImage(t, where, c.Image)

	// References: the ServiceAccount, pull secrets and the key's Secret exist or are the user's.
	secrets, serviceAccounts := userProvided(r)
	if create, _ := r.Values.PathValue("extractor.serviceAccount.create"); create == false {
		serviceAccounts = append(serviceAccounts, valueString(r, "extractor.serviceAccount.name"))
	}
	if sa := pod.ServiceAccountName; sa == "" || (find[*corev1.ServiceAccount](r, sa) == nil && !slices.Contains(serviceAccounts, sa)) {
		t.Errorf("%s: ServiceAccount %q is neither rendered nor user-provided", where, sa)
	} else if account := find[*corev1.ServiceAccount](r, sa); account != nil && (account.AutomountServiceAccountToken == nil || *account.AutomountServiceAccountToken) {
		t.Errorf("%s: ServiceAccount %s mounts a token", where, sa)
	}
	for _, ps := range pod.ImagePullSecrets {
		if !slices.Contains(secrets, ps.Name) {
			t.Errorf("%s: imagePullSecret %q not in values", where, ps.Name)
		}
	}

	// The run: the league mode of extract, posting, with the values' settings.
	args := map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(a, "=")
		args[name] = value
	}
	if len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "extract" {
		t.Errorf("%s: command %v args %v, want the image's entrypoint with `extract ...`", where, c.Command, c.Args)
	}
	for flag, path := range map[string]string{
		"--date": "extractor.date", "--look-back": "extractor.lookBack", "--time-zone": "extractor.timeZone",
		"--game-type": "extractor.gameType", "--concurrency": "extractor.concurrency", "--rate-limit": "extractor.rateLimit",
		"--timeout": "extractor.requestTimeout",
	} {
		if got, want := args[flag], valueString(r, path); got != want {
			t.Errorf("%s: %s=%q, want %s %q", where, flag, got, path, want)
		}
	}
	if team := valueString(r, "extractor.team"); args["--team"] != team {
		t.Errorf("%s: --team=%q, want %q", where, args["--team"], team)
	}
	if _, ok := args["--post"]; !ok {
		t.Errorf("%s: args %v do not --post", where, c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	checkExtractorTelemetry(t, r, where, c)
	// The key: from the values' Secret when the gateway authenticates; never a plain value.
	if v, ok := env["BOXSCORE_API_KEY"]; ok && v != "" {
		t.Errorf("%s: BOXSCORE_API_KEY is a plain value in the pod spec", where)
	}
	keysOn, _ := r.Values.PathValue("auth.apiKeys.enabled")
	ref := extractorSecretKey(c)
	switch {
	case keysOn == true:
		if ref == nil || ref.Name != valueString(r, "extractor.apiKey.existingSecret") || ref.Key != valueString(r, "extractor.apiKey.secretKey") {
			t.Errorf("%s: BOXSCORE_API_KEY from %+v, want extractor.apiKey's Secret and key", where, ref)
		}
	case ref != nil:
		t.Errorf("%s: BOXSCORE_API_KEY from Secret %s, but the gateway takes no API keys", where, ref.Name)
	}
	checkGatewayTarget(t, r, where, env["BOXSCORE_GATEWAY_URL"])
	checkGoMemLimit(t, where, c)
	checkExtractorNetworkPolicy(t, r, env["BOXSCORE_MLB_API_URL"])
}

// checkExtractorTelemetry: the CronJob's pod gets the telemetry variables the CLI reads
// through pkg/telemetry: its name, pod and namespace, the extractor's sampler, and the
// services' OTLP endpoint and protocol exactly when telemetry.otlpEndpoint is set.
func checkExtractorTelemetry(t *testing.T, r *Render, where string, c corev1.Container) {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for name, field := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"} {
		if e := env[name]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("%s: %s is not the pod's %s: %+v", where, name, field, e)
		}
	}
	want := map[string]string{
		"OTEL_SERVICE_NAME":       "boxscore-extractor",
		"OTEL_TRACES_SAMPLER":     valueString(r, "extractor.tracesSampler"),
		"OTEL_TRACES_SAMPLER_ARG": valueString(r, "extractor.tracesSamplerArg"),
	}
	if endpoint := valueString(r, "telemetry.otlpEndpoint"); endpoint != "" {
		want["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
		want["OTEL_EXPORTER_OTLP_PROTOCOL"] = valueString(r, "telemetry.otlpProtocol")
	}
	for name, value := range want {
		if e, ok := env[name]; !ok || e.Value != value {
			t.Errorf("%s: %s=%q (set %t), want %q", where, name, e.Value, ok, value)
		}
	}
	attrs := env["OTEL_RESOURCE_ATTRIBUTES"].Value
	for _, part := range []string{"service.namespace=boxscore", "service.instance.id=$(POD_NAME)", "k8s.pod.name=$(POD_NAME)", "k8s.namespace.name=$(POD_NAMESPACE)", "k8s.cronjob.name=" + Of[*batchv1.CronJob](r)[0].Name} {
		if !slices.Contains(strings.Split(attrs, ","), part) {
			t.Errorf("%s: OTEL_RESOURCE_ATTRIBUTES %q lacks %s", where, attrs, part)
		}
	}
	// $(POD_NAME) is expanded only from variables defined before it.
	if i, j := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAME" }),
		slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OTEL_RESOURCE_ATTRIBUTES" }); i < 0 || j < i {
		t.Errorf("%s: POD_NAME (%d) must come before OTEL_RESOURCE_ATTRIBUTES (%d)", where, i, j)
	}
	for name := range env {
		if _, ok := want[name]; strings.HasPrefix(name, "OTEL_") && !ok && name != "OTEL_RESOURCE_ATTRIBUTES" {
			t.Errorf("%s: sets %s, which the chart's telemetry values do not ask for", where, name)
		}
	}
}

// checkPodHardened: what checkWorkload requires of the services' pods, for a Job's pod.
func checkPodHardened(t *testing.T, where string, spec corev1.PodSpec) {
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext must set runAsNonRoot and seccomp RuntimeDefault: %+v", where, psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", where)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: shares a host namespace", where)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		in := where + "/" + c.Name
		req, lim := c.Resources.Requests, c.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			t.Errorf("%s: needs cpu and memory requests and a memory limit: %+v", in, c.Resources)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", in)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: root filesystem must be read-only", in)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: allowPrivilegeEscalation must be false", in)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: must drop ALL capabilities and add none", in)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s: privileged", in)
		case sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot:
			t.Errorf("%s: runAsNonRoot false", in)
		}
	}
}

// checkGatewayTarget: the URL names a rendered Service of the release, on a port that
// selects the gateway's http container port.
func checkGatewayTarget(t *testing.T, r *Render, where, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Path != "" {
		t.Errorf("%s: BOXSCORE_GATEWAY_URL %q: want http://<gateway Service>:<port> (%v)", where, raw, err)
		return
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Errorf("%s: BOXSCORE_GATEWAY_URL %q has no port", where, raw)
		return
	}
	svc := find[*corev1.Service](r, u.Hostname())
	if svc == nil {
		t.Errorf("%s: BOXSCORE_GATEWAY_URL %q: no Service %q rendered", where, raw, u.Hostname())
		return
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port })
	if i < 0 || svc.Spec.Ports[i].TargetPort.StrVal != "http" {
		t.Errorf("%s: Service %s has no port %d to the http container port", where, svc.Name, port)
	}
	deployments := selectedDeployments(r, svc.Spec.Selector)
	if len(deployments) != 1 || deployments[0].Spec.Template.Labels["app.kubernetes.io/component"] != "ingest-gateway" {
		t.Errorf("%s: Service %s does not select the gateway's pods", where, svc.Name)
	}
}

// privateRanges are what the default Stats API egress must never reach: the VPC and the
// cluster (RFC 1918, shared CGNAT space), loopback and link-local (the instance metadata).
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("::1/128"),
}

// ipBlockAllows reports whether an address falls in the block's CIDR and none of its excepts.
func ipBlockAllows(t *testing.T, b *networkingv1.IPBlock, addr netip.Addr) bool {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		t.Errorf("ipBlock cidr %q: %v", b.CIDR, err)
		return false
	}
	if !cidr.Contains(addr) {
		return false
	}
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			t.Errorf("ipBlock except %q: %v", e, err)
			return false
		}
		if !cidr.Contains(p.Addr()) || p.Bits() < cidr.Bits() {
			t.Errorf("ipBlock except %s is not inside %s: the API server refuses it", e, b.CIDR)
		}
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

func checkExtractorNetworkPolicy(t *testing.T, r *Render, statsAPI string) {
	if enabled, _ := r.Values.PathValue("networkPolicy.enabled"); enabled != true {
		return
	}
	var np *networkingv1.NetworkPolicy
	for _, p := range Of[*networkingv1.NetworkPolicy](r) {
		if p.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] == "extractor" {
			np = p
		}
	}
	if np == nil {
		t.Fatal("extractor.enabled with networkPolicy.enabled: no NetworkPolicy selects the extractor")
	}
	where := "NetworkPolicy " + np.Name
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Ingress) != 0 {
		t.Errorf("%s: must deny all ingress and restrict egress: %+v", where, np.Spec)
	}
	apiURL, err := url.Parse(statsAPI)
	if err != nil {
		t.Fatalf("BOXSCORE_MLB_API_URL %q: %v", statsAPI, err)
	}
	apiPort := 443
	if p := apiURL.Port(); p != "" {
		apiPort, _ = strconv.Atoi(p)
	}
	gateway := find[*corev1.Service](r, "bx-boxscore-ingest-gateway")
	gatewayPort := int(gateway.Spec.Ports[slices.IndexFunc(gateway.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http" })].Port)
	cidrs, _ := r.Values.PathValue("extractor.statsApiCidrs")
	otlpPort := 0
	if endpoint := valueString(r, "telemetry.otlpEndpoint"); endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Port() == "" {
			t.Fatalf("telemetry.otlpEndpoint %q: want a URL with a port (%v)", endpoint, err)
		}
		otlpPort, _ = strconv.Atoi(u.Port())
	}
	var dns, statsAPIRule, gatewayRule, collectorRule bool
	for _, rule := range np.Spec.Egress {
		ps := ports(rule.Ports)
		switch {
		case slices.Equal(ps, []int{53, 53}):
			dns = len(rule.To) == 1 && rule.To[0].NamespaceSelector != nil && rule.To[0].PodSelector != nil
		case slices.Equal(ps, []int{apiPort}) && len(rule.To) > 0 && rule.To[0].IPBlock != nil:
			statsAPIRule = true
			var allowedPublic bool
			for _, peer := range rule.To {
				if peer.IPBlock == nil {
					t.Errorf("%s: the Stats API rule allows a pod or namespace peer: %+v", where, peer)
					continue
				}
				if cidrs != nil && len(cidrs.([]any)) > 0 {
					if !slices.Contains(cidrs.([]any), any(peer.IPBlock.CIDR)) {
						t.Errorf("%s: Stats API peer %s is not in extractor.statsApiCidrs %v", where, peer.IPBlock.CIDR, cidrs)
					}
					continue
				}
				for _, private := range privateRanges {
					for _, addr := range []netip.Addr{private.Addr(), private.Addr().Next()} {
						if private.Contains(addr) && ipBlockAllows(t, peer.IPBlock, addr) {
							t.Errorf("%s: the Stats API rule allows %s (in %s)", where, addr, private)
						}
					}
				}
				for _, public := range []string{"23.45.67.89", "151.101.1.1", "2600:1406::1"} {
					if ipBlockAllows(t, peer.IPBlock, netip.MustParseAddr(public)) {
						allowedPublic = true
					}
				}
			}
			if (cidrs == nil || len(cidrs.([]any)) == 0) && !allowedPublic {
				t.Errorf("%s: the Stats API rule allows no public address", where)
			}
		case slices.Equal(ps, []int{gatewayPort}) && len(rule.To) == 1 && rule.To[0].PodSelector != nil && rule.To[0].IPBlock == nil:
			gatewayRule = rule.To[0].NamespaceSelector == nil &&
				selects(rule.To[0].PodSelector.MatchLabels, deploymentOf(t, r, "ingest-gateway").Spec.Template.Labels) &&
				len(selectedDeployments(r, rule.To[0].PodSelector.MatchLabels)) == 1
		case otlpPort != 0 && slices.Equal(ps, []int{otlpPort}) && len(rule.To) == 0:
			// The collector, as the services reach it: its port, any address.
			collectorRule = true
		default:
			t.Errorf("%s: egress rule beyond DNS, the Stats API, the gateway and the OTLP collector: %+v", where, rule)
		}
	}
	if !dns || !statsAPIRule || !gatewayRule {
		t.Errorf("%s: DNS %v, Stats API (port %d) %v, gateway pods (port %d) %v: want all three", where, dns, apiPort, statsAPIRule, gatewayPort, gatewayRule)
	}
	if collectorRule != (otlpPort != 0) {
		t.Errorf("%s: egress to the OTLP collector %v, want it exactly when telemetry.otlpEndpoint is set (port %d)", where, collectorRule, otlpPort)
	}
	// The gateway lets the extractor in: its ingress is open, or names the extractor's pods.
	gatewayPolicy := find[*networkingv1.NetworkPolicy](r, "bx-boxscore-ingest-gateway")
	podLabels := Of[*batchv1.CronJob](r)[0].Spec.JobTemplate.Spec.Template.Labels
	admitted := false
	for _, rule := range gatewayPolicy.Spec.Ingress {
		if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.StrVal == "http" }) {
			continue
		}
		if len(rule.From) == 0 {
			admitted = true
		}
		for _, peer := range rule.From {
			if peer.PodSelector != nil && peer.NamespaceSelector == nil && peer.IPBlock == nil && selects(peer.PodSelector.MatchLabels, podLabels) {
				admitted = true
			}
		}
	}
	if !admitted {
		t.Errorf("NetworkPolicy %s: the gateway does not admit the extractor's pods on http", gatewayPolicy.Name)
	}
}

// TestExtractorDisabledByDefault: the defaults render no CronJob, ServiceAccount or policy of it.
func TestExtractorDisabledByDefault(t *testing.T) {
	r := render(t, loadChart(t), nil, nil)
	for _, o := range r.Objects {
		if strings.HasSuffix(o.Name, "-extractor") || o.Kind == "CronJob" {
			t.Errorf("%s %s rendered with extractor.enabled false", o.Kind, o.Name)
		}
	}
}

// TestExtractorCredential: the key comes from the Secret the values name; the chart refuses
// to render without one while the gateway authenticates, or when it takes OIDC tokens only;
// an insecure release without authentication sends none.
func TestExtractorCredential(t *testing.T) {
	ch := loadChart(t)
	on := map[string]any{"enabled": true}
	r := render(t, ch, nil, map[string]any{"extractor": map[string]any{"enabled": true, "apiKey": map[string]any{"existingSecret": "my-key", "secretKey": "token"}}})
	ref := extractorSecretKey(Of[*batchv1.CronJob](r)[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0])
	if ref == nil || ref.Name != "my-key" || ref.Key != "token" {
		t.Errorf("BOXSCORE_API_KEY from %+v, want Secret my-key key token", ref)
	}
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"no secret": {map[string]any{"extractor": map[string]any{"enabled": true, "apiKey": map[string]any{"existingSecret": ""}}}, "extractor.apiKey.existingSecret is required"},
		"oidc only": {map[string]any{"extractor": on, "auth": map[string]any{
			"apiKeys": map[string]any{"enabled": false}, "oidc": map[string]any{"issuer": "https://idp.example.com", "audience": "boxscore"},
		}}, "the extractor authenticates with an API key"},
		"no gateway": {map[string]any{"extractor": on, "components": map[string]any{"ingest-gateway": map[string]any{"enabled": false}}}, "needs components.ingest-gateway.enabled"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(ch, tc.vals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
	r = render(t, ch, valueSets["dev"], map[string]any{"extractor": on})
	if ref := extractorSecretKey(Of[*batchv1.CronJob](r)[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0]); ref != nil {
		t.Errorf("dev values (no producer authentication): BOXSCORE_API_KEY from Secret %s, which nobody creates", ref.Name)
	}
}

// TestExtractorStatsAPICidrs: given CIDRs replace the default public range; another API port
// follows the URL.
func TestExtractorStatsAPICidrs(t *testing.T) {
	r := render(t, loadChart(t), valueSets["extractor"], map[string]any{"extractor": map[string]any{
		"statsApiCidrs": []any{"203.0.113.0/24"}, "statsApiUrl": "https://stats-proxy.example.com:8443",
	}})
	checkExtractor(t, r)
	np := find[*networkingv1.NetworkPolicy](r, "bx-boxscore-extractor")
	var peers []string
	for _, rule := range np.Spec.Egress {
		if slices.Equal(ports(rule.Ports), []int{8443}) {
			for _, p := range rule.To {
				peers = append(peers, p.IPBlock.CIDR)
			}
		}
	}
	if !slices.Equal(peers, []string{"203.0.113.0/24"}) {
		t.Errorf("egress on 8443 to %v, want only 203.0.113.0/24", peers)
	}
}

// TestExtractorArgsAreFlagsOfTheCLI: every flag the CronJob passes is a flag of `boxscore
// extract`, and every variable it sets is one the CLI reads, read from the CLI's sources.
func TestExtractorArgsAreFlagsOfTheCLI(t *testing.T) {
	flags, envs := extractFlags(t)
	r := render(t, loadChart(t), valueSets["extractor"], nil)
	c := Of[*batchv1.CronJob](r)[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	for _, a := range c.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !slices.Contains(flags, name) {
			t.Errorf("arg %s: `boxscore extract` has no flag --%s (flags: %v)", a, name, flags)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "BOXSCORE_") && !slices.Contains(envs, e.Name) {
			t.Errorf("env %s: the CLI reads no such variable (reads %v)", e.Name, envs)
		}
	}
	// The CLI sets up OpenTelemetry through pkg/telemetry, which reads the OTEL_* variables:
	// the CronJob must pass them (checkExtractorTelemetry says which). If the CLI stops, the
	// CronJob must stop too.
	readsOTel := false
	err := filepath.WalkDir("../../cmd/boxscore", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), "pkg/telemetry\"") || strings.Contains(string(data), "go.opentelemetry.io/otel/sdk") {
			readsOTel = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	setsOTel := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return strings.HasPrefix(e.Name, "OTEL_") })
	if readsOTel != setsOTel {
		t.Errorf("the CLI sets up OpenTelemetry: %v; the CronJob passes OTEL_* variables: %v; want both or neither", readsOTel, setsOTel)
	}
}

// TestExtractorExportsToTheCollector: with telemetry.otlpEndpoint set, the CronJob's runs
// export to it (endpoint, protocol, the extractor's own sampler) and may reach it.
func TestExtractorExportsToTheCollector(t *testing.T) {
	r := render(t, loadChart(t), valueSets["extractor"], map[string]any{
		"telemetry": map[string]any{"otlpEndpoint": "http://otel-collector.observability:4317", "otlpProtocol": "grpc", "tracesSampler": "parentbased_traceidratio", "tracesSamplerArg": "0.05"},
		"extractor": map[string]any{"tracesSampler": "traceidratio", "tracesSamplerArg": "0.5"},
	})
	checkExtractor(t, r)
	c := Of[*batchv1.CronJob](r)[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://otel-collector.observability:4317" || env["OTEL_EXPORTER_OTLP_PROTOCOL"] != "grpc" ||
		env["OTEL_TRACES_SAMPLER"] != "traceidratio" || env["OTEL_TRACES_SAMPLER_ARG"] != "0.5" {
		t.Errorf("OTEL_* of the CronJob %v: want the collector over grpc, the extractor's sampler traceidratio 0.5", env)
	}
	np := find[*networkingv1.NetworkPolicy](r, "bx-boxscore-extractor")
	if !slices.ContainsFunc(np.Spec.Egress, func(rule networkingv1.NetworkPolicyEgressRule) bool {
		return slices.Equal(ports(rule.Ports), []int{4317})
	}) {
		t.Errorf("NetworkPolicy %s: no egress on 4317 to the collector: %+v", np.Name, np.Spec.Egress)
	}
	// Without an endpoint, nothing to export to and no egress for it (checkExtractor in the
	// value sets), and every run is sampled by default.
	r = render(t, loadChart(t), valueSets["extractor"], nil)
	checkExtractor(t, r)
	if got := valueString(r, "extractor.tracesSampler"); got != "parentbased_always_on" {
		t.Errorf("extractor.tracesSampler defaults to %q, want parentbased_always_on: a run a day is worth its trace", got)
	}
}

// extractFlags reads the long flag names of extract.Command (and the structs it embeds) as
// kong names them: a name:"..." tag, else the field name in kebab case; and the env tags.
func extractFlags(t *testing.T) (flags, envs []string) {
	t.Helper()
	dirs := []string{"../../cmd/boxscore/internal/extract", "../../cmd/boxscore/internal/credential"}
	structs := map[string]*ast.StructType{}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if ts, ok := n.(*ast.TypeSpec); ok {
					if st, ok := ts.Type.(*ast.StructType); ok {
						structs[filepath.Base(dir)+"."+ts.Name.Name] = st
					}
				}
				return true
			})
		}
	}
	var walk func(st *ast.StructType)
	walk = func(st *ast.StructType) {
		for _, f := range st.Fields.List {
			tag := ""
			if f.Tag != nil {
				tag, _ = strconv.Unquote(f.Tag.Value)
			}
			st := reflect.StructTag(tag)
			if len(f.Names) == 0 { // embedded: credential.Flags
				if sel, ok := f.Type.(*ast.SelectorExpr); ok {
					if inner := structs[fmt.Sprint(sel.X)+"."+sel.Sel.Name]; inner != nil {
						walk(inner)
					}
				}
				continue
			}
			if tag == "" || st.Get("kong") == "-" || !unicode.IsUpper(rune(f.Names[0].Name[0])) {
				continue
			}
			name := st.Get("name")
			if name == "" {
				name = kebab(f.Names[0].Name)
			}
			flags = append(flags, name)
			if env := st.Get("env"); env != "" {
				envs = append(envs, env)
			}
		}
	}
	cmd := structs["extract.Command"]
	if cmd == nil {
		t.Fatal("no type Command in cmd/boxscore/internal/extract: has the CLI moved?")
	}
	walk(cmd)
	if len(flags) < 10 {
		t.Fatalf("found only flags %v: is the layout different?", flags)
	}
	return flags, envs
}

var kebabBoundary = regexp.MustCompile(`([a-z0-9])([A-Z])`)

func kebab(s string) string { return strings.ToLower(kebabBoundary.ReplaceAllString(s, "$1-$2")) }

// schedulePatterns are the extractor.schedule patterns of values.schema.json, compiled as the
// Helm SDK's validator does (Go regexp).
func schedulePatterns(t *testing.T) []*regexp.Regexp {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(ChartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Extractor struct {
				Properties struct {
					Schedule struct {
						AnyOf []struct {
							Pattern string `json:"pattern"`
						} `json:"anyOf"`
					} `json:"schedule"`
				} `json:"properties"`
			} `json:"extractor"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	var out []*regexp.Regexp
	for _, p := range schema.Properties.Extractor.Properties.Schedule.AnyOf {
		out = append(out, regexp.MustCompile(p.Pattern))
	}
	if len(out) != 2 {
		t.Fatalf("extractor.schedule: %d patterns, want the five fields and the macros", len(out))
	}
	return out
}

func scheduleAccepted(patterns []*regexp.Regexp, s string) bool {
	return slices.ContainsFunc(patterns, func(p *regexp.Regexp) bool { return p.MatchString(s) })
}

// kubernetesAccepts is the API server's CronJob schedule validation with spec.timeZone set:
// robfig/cron's standard parser, and no TZ in the schedule.
func kubernetesAccepts(s string) bool {
	_, err := cron.ParseStandard(s)
	return err == nil && !strings.Contains(s, "TZ")
}

var (
	goodSchedules = []string{
		"0 6 * * *", "30 6,14 * * *", "*/15 * * * *", "0 9-17/2 * * MON-FRI", "0 0 1 jan,jul ?",
		"5 4 * * sun", "59 23 31 12 6", "0 0 ? * 0", "00 06 01 01 *", "0   6  *  *   *",
		"@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@annually", "@midnight",
	}
	badSchedules = []string{
		"", "0 6 * *", "0 0 6 * * *", "60 6 * * *", "0 24 * * *", "0 6 32 * *", "0 6 0 * *",
		"0 6 * 13 *", "0 6 * 0 *", "0 6 * * 7", "*/0 * * * *", "0 6 * * MON-FRI;", "0 6 L * *",
		"0 6 * * 1#2", "@dialy", "@every 1h", "TZ=UTC 0 6 * * *", "CRON_TZ=America/New_York 0 6 * * *",
		" 0 6 * * *", "0 6 * * * ", "0 6 * * FOO", "0,6 * * * *,", "-1 6 * * *", "0 6 * JANUARY *",
	}
)

// TestScheduleSchemaAgreesWithKubernetes: the schema accepts the good schedules and rejects
// the bad ones, and never accepts what the API server would refuse (robfig/cron, which
// Kubernetes validates CronJob schedules with), here or on thousands of random schedules.
func TestScheduleSchemaAgreesWithKubernetes(t *testing.T) {
	patterns := schedulePatterns(t)
	for _, s := range goodSchedules {
		if !scheduleAccepted(patterns, s) {
			t.Errorf("schedule %q: the schema rejects it", s)
		}
		if !kubernetesAccepts(s) {
			t.Errorf("schedule %q: the API server would refuse it: not a good example", s)
		}
	}
	for _, s := range badSchedules {
		if scheduleAccepted(patterns, s) {
			t.Errorf("schedule %q: the schema accepts it", s)
		}
	}
	// Random five-field schedules, from parts both valid and not.
	parts := []string{"*", "?", "0", "5", "07", "12", "23", "24", "31", "32", "59", "60", "7", "1-5", "5-1", "0-59/5",
		"*/0", "*/10", "MON", "mon-fri", "JAN", "dec", "SUN-SAT", "1,2", "L", "W", "#", "-", ",", "1/2", "3-4/0"}
	rng := rand.New(rand.NewPCG(15, 8))
	accepted := 0
	for range 20000 {
		fields := make([]string, 5)
		for i := range fields {
			fields[i] = parts[rng.IntN(len(parts))]
		}
		s := strings.Join(fields, " ")
		if !scheduleAccepted(patterns, s) {
			continue
		}
		accepted++
		// "5-1" (a descending range) is the one form the schema cannot order-check.
		if !kubernetesAccepts(s) && !strings.Contains(s, "5-1") {
			t.Errorf("schedule %q: the schema accepts it, the API server would refuse it", s)
		}
	}
	if accepted < 100 {
		t.Errorf("only %d random schedules accepted: the test proves little", accepted)
	}
}

// TestSchemaRejectsBadExtractorValues: bad schedules, time zones and numbers fail helm
// install on the schema.
func TestSchemaRejectsBadExtractorValues(t *testing.T) {
	ch := loadChart(t)
	ext := func(key string, v any) map[string]any {
		return map[string]any{"extractor": map[string]any{"enabled": true, key: v}}
	}
	cases := map[string]map[string]any{
		"unknown key":        ext("scheduel", "0 6 * * *"),
		"time zone Local":    ext("timeZone", "Local"),
		"time zone offset":   ext("timeZone", "+05:00"),
		"time zone lower":    ext("timeZone", "america/new_york"),
		"time zone spaces":   ext("timeZone", "America/New York"),
		"date":               ext("date", "2024-04-11"),
		"look-back negative": ext("lookBack", -1),
		"look-back huge":     ext("lookBack", 400),
		"concurrency zero":   ext("concurrency", 0),
		"rate limit zero":    ext("rateLimit", 0),
		"rate limit string":  ext("rateLimit", "5"),
		"team":               ext("team", "Dodgers"),
		"game type":          ext("gameType", "X"),
		"allow concurrency":  ext("concurrencyPolicy", "Allow"),
		"deadline":           ext("activeDeadlineSeconds", 0),
		"history":            ext("successfulJobsHistoryLimit", -1),
		"request timeout":    ext("requestTimeout", "30 seconds"),
		"stats api url path": ext("statsApiUrl", "https://statsapi.mlb.com/api/v1"),
		"cidr":               ext("statsApiCidrs", []any{"statsapi.mlb.com"}),
		"key in values":      ext("apiKey", map[string]any{"value": "bx_secret"}),
		"sampler":            ext("tracesSampler", "sometimes"),
		"sampler ratio":      ext("tracesSamplerArg", "10%"),
		"sampler ratio > 1":  ext("tracesSamplerArg", "1.5"),
	}
	for _, s := range []string{"0 6 * *", "60 6 * * *", "0 6 * * 7", "@every 1h", "TZ=UTC 0 6 * * *", "@dialy", ""} {
		cases["schedule "+strconv.Quote(s)] = ext("schedule", s)
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(ch, vals)
			if err == nil || !strings.Contains(err.Error(), "schema") {
				t.Fatalf("values %v rendered (err %v); the schema must reject them", vals, err)
			}
		})
	}
	// Valid values pass, so the cases above fail for their fault alone.
	for _, tz := range []string{"America/New_York", "UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires", "America/Port-au-Prince"} {
		if _, err := time.LoadLocation(tz); err != nil {
			t.Fatalf("%s: %v", tz, err)
		}
		if _, err := RenderChart(ch, map[string]any{"extractor": map[string]any{"enabled": true, "timeZone": tz, "schedule": "@daily", "rateLimit": 0.5}}); err != nil {
			t.Errorf("time zone %s rejected: %v", tz, err)
		}
	}
}

// TestExtractorTeamsAreTheClubs: the schema's team list is the extractor's list of clubs.
func TestExtractorTeamsAreTheClubs(t *testing.T) {
	src, err := os.ReadFile("../../cmd/boxscore/internal/extract/teams.go")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)var clubAbbreviations = map\[int\]string\{(.*?)\n\}`).FindSubmatch(src)
	if block == nil {
		t.Fatal("clubAbbreviations not found in teams.go")
	}
	var clubs []string
	for _, m := range regexp.MustCompile(`[0-9]+: "([A-Z]+)"`).FindAllSubmatch(block[1], -1) {
		clubs = append(clubs, string(m[1]))
	}
	data, err := os.ReadFile(filepath.Join(ChartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Extractor struct {
				Properties struct {
					Team struct {
						Enum []string `json:"enum"`
					} `json:"team"`
				} `json:"properties"`
			} `json:"extractor"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(clubs), "")
	slices.Sort(want)
	got := slices.Clone(schema.Properties.Extractor.Properties.Team.Enum)
	slices.Sort(got)
	if len(clubs) != 30 || !slices.Equal(got, want) {
		t.Errorf("schema teams %v, want the 30 clubs of teams.go and \"\": %v", got, want)
	}
}
