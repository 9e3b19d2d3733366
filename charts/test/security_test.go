package charttest

import (
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// identities are the certificate CommonNames of the services (the shared contract).
var identities = map[string]string{
	"ingest-gateway": "ingest-gateway",
	"shard-consumer": "shard-consumer",
	"transformer":    "transformer",
	"loader":         "loader",
}

// TestSecurityHoldsInEveryValueSet renders every value set and checks what issue 12 promises
// on each workload: GOMEMLIMIT below the memory limit in every container (the Job's too),
// pprof and reflection off, TLS files and the API keys file inside mounted Secret directories
// (never subPath, so rotations reach the pods), the database CA where the URL says, and no
// gRPC readiness probe against a TLS port.
func TestSecurityHoldsInEveryValueSet(t *testing.T) {
	ch := loadChart(t)
	for name, files := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := render(t, ch, files, nil)
			insecure, _ := r.Values.PathValue("insecure")
			tlsOn, _ := r.Values.PathValue("tls.enabled")
			for _, d := range Of[*appsv1.Deployment](r) {
				spec := d.Spec.Template.Spec
				c := spec.Containers[0]
				where := d.Name + "/" + c.Name
				env := envOf(t, r, c)
				checkGoMemLimit(t, where, c)
				for _, v := range []string{"BOXSCORE_PPROF", "BOXSCORE_GRPC_REFLECTION"} {
					if env[v] != "false" {
						t.Errorf("%s: %s=%q, want false unless a value asks for it", where, v, env[v])
					}
				}
				if got, want := env["BOXSCORE_INSECURE"], strconv.FormatBool(insecure == true); got != want {
					t.Errorf("%s: BOXSCORE_INSECURE=%q, want %q (the values' insecure)", where, got, want)
				}
				for _, m := range c.VolumeMounts {
					if m.SubPath != "" || m.SubPathExpr != "" {
						t.Errorf("%s: volume %s mounted with subPath: the kubelet never updates it, rotations would not reach the pod", where, m.Name)
					}
				}
				if tlsOn == true {
					for _, v := range []string{"BOXSCORE_TLS_CERT_FILE", "BOXSCORE_TLS_KEY_FILE", "BOXSCORE_TLS_CA_FILE"} {
						checkFileFromSecret(t, where, v, env[v], c, spec.Volumes)
					}
					if c.ReadinessProbe != nil && c.ReadinessProbe.GRPC != nil {
						t.Errorf("%s: gRPC readiness probe on a TLS port: the kubelet probes in plaintext", where)
					}
				} else {
					if insecure != true {
						t.Errorf("%s: TLS off without insecure", where)
					}
					if _, ok := env["BOXSCORE_TLS_CERT_FILE"]; ok {
						t.Errorf("%s: TLS off, yet BOXSCORE_TLS_CERT_FILE is set", where)
					}
				}
				component := d.Spec.Template.Labels["app.kubernetes.io/component"]
				if component == "ingest-gateway" {
					_, keys := env["BOXSCORE_API_KEYS_FILE"]
					_, oidc := env["BOXSCORE_OIDC_ISSUER"]
					if !keys && !oidc && insecure != true {
						t.Errorf("%s: no producer authentication, and insecure is not set", where)
					}
					if keys {
						checkFileFromSecret(t, where, "BOXSCORE_API_KEYS_FILE", env["BOXSCORE_API_KEYS_FILE"], c, spec.Volumes)
					}
				}
				for _, v := range []string{"BOXSCORE_DATABASE_URL", "BOXSCORE_LEASE_DATABASE_URL"} {
					if u, ok := env[v]; ok {
						checkCAMounted(t, where, u, c, spec.Volumes, r)
						checkDatabaseVerified(t, where, u, insecure == true)
					}
				}
			}
			for _, job := range Of[*batchv1.Job](r) {
				for _, c := range append(slices.Clone(job.Spec.Template.Spec.InitContainers), job.Spec.Template.Spec.Containers...) {
					checkGoMemLimit(t, job.Name+"/"+c.Name, c)
					for _, e := range c.Env {
						if strings.HasPrefix(e.Name, "BOXSCORE_TLS_") {
							t.Errorf("%s/%s: %s: the Job serves no gRPC and must not wait for certificates", job.Name, c.Name, e.Name)
						}
					}
				}
			}
			for _, svc := range Of[*corev1.Service](r) {
				for _, p := range svc.Spec.Ports {
					if tlsOn == true && p.Name == "grpc" && p.AppProtocol != nil && *p.AppProtocol == "kubernetes.io/h2c" {
						t.Errorf("Service %s: port grpc announced as cleartext HTTP/2 while it serves TLS", svc.Name)
					}
				}
			}
		})
	}
}

// checkGoMemLimit: GOMEMLIMIT is a plain byte count below the container's memory limit, and
// not so far below that the heap is starved (at least half of it).
func checkGoMemLimit(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	limit := c.Resources.Limits.Memory()
	value, ok := "", false
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			value, ok = e.Value, true
		}
	}
	if !ok {
		t.Errorf("%s: no GOMEMLIMIT (memory limit %s)", where, limit)
		return
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		t.Errorf("%s: GOMEMLIMIT=%q is not a byte count: %v", where, value, err)
		return
	}
	if n >= limit.Value() || n < limit.Value()/2 {
		t.Errorf("%s: GOMEMLIMIT=%d, memory limit %d bytes: want below the limit, above half of it", where, n, limit.Value())
	}
}

// checkFileFromSecret: file is inside a read-only mount of a Secret volume of the container, as
// a key the Secret projects (a whole Secret projects every key).
func checkFileFromSecret(t *testing.T, where, variable, file string, c corev1.Container, volumes []corev1.Volume) {
	t.Helper()
	if file == "" {
		t.Errorf("%s: %s is not set", where, variable)
		return
	}
	m, v := mountOf(file, c, volumes)
	if m == nil || v == nil || v.Secret == nil {
		t.Errorf("%s: %s=%s is in no mounted Secret", where, variable, file)
		return
	}
	if !m.ReadOnly {
		t.Errorf("%s: %s mounted read-write", where, m.Name)
	}
	if items := v.Secret.Items; len(items) > 0 && !slices.ContainsFunc(items, func(i corev1.KeyToPath) bool { return i.Path == path.Base(file) }) {
		t.Errorf("%s: %s=%s: Secret %s projects no %s", where, variable, file, v.Secret.SecretName, path.Base(file))
	}
}

// mountOf finds the mount (and its volume) holding file directly.
func mountOf(file string, c corev1.Container, volumes []corev1.Volume) (*corev1.VolumeMount, *corev1.Volume) {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if path.Dir(file) != path.Clean(m.MountPath) {
			continue
		}
		for j := range volumes {
			if volumes[j].Name == m.Name {
				return m, &volumes[j]
			}
		}
	}
	return nil, nil
}

// checkCAMounted: a database URL's sslrootcert is a file the container has, from the CA
// bundle the values name.
func checkCAMounted(t *testing.T, where, rawURL string, c corev1.Container, volumes []corev1.Volume, r *Render) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Errorf("%s: database URL %q: %v", where, rawURL, err)
		return
	}
	file := u.Query().Get("sslrootcert")
	if file == "" {
		return
	}
	_, v := mountOf(file, c, volumes)
	switch {
	case v == nil:
		t.Errorf("%s: sslrootcert=%s is not mounted", where, file)
	case v.ConfigMap != nil:
		if !slices.Contains(userConfigMaps(r), v.ConfigMap.Name) || !slices.ContainsFunc(v.ConfigMap.Items, func(i corev1.KeyToPath) bool { return i.Path == path.Base(file) }) {
			t.Errorf("%s: sslrootcert=%s from ConfigMap %s %+v, not the values' CA bundle", where, file, v.ConfigMap.Name, v.ConfigMap.Items)
		}
	case v.Secret != nil:
		secrets, _ := userProvided(r)
		if !slices.Contains(secrets, v.Secret.SecretName) || !slices.ContainsFunc(v.Secret.Items, func(i corev1.KeyToPath) bool { return i.Path == path.Base(file) }) {
			t.Errorf("%s: sslrootcert=%s from Secret %s %+v, not the values' CA bundle", where, file, v.Secret.SecretName, v.Secret.Items)
		}
	default:
		t.Errorf("%s: sslrootcert=%s from volume %s, neither ConfigMap nor Secret", where, file, v.Name)
	}
}

// checkDatabaseVerified: without insecure a database URL verifies the server.
func checkDatabaseVerified(t *testing.T, where, rawURL string, insecure bool) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Errorf("%s: database URL %q: %v", where, rawURL, err)
		return
	}
	if mode := u.Query().Get("sslmode"); !insecure && mode != "verify-full" && mode != "verify-ca" {
		t.Errorf("%s: sslmode=%s without insecure", where, mode)
	}
}

func TestOpenReleasesNeedInsecure(t *testing.T) {
	ch := loadChart(t)
	cases := map[string]struct {
		values map[string]any
		want   string
	}{
		"auth off": {map[string]any{"auth": map[string]any{"apiKeys": map[string]any{"enabled": false}}}, "producer authentication is off"},
		"tls off":  {map[string]any{"tls": map[string]any{"enabled": false}}, "tls.enabled is false"},
		"sslmode require": {map[string]any{"warehouse": map[string]any{"sslMode": "require"}},
			"the loader's database sslMode is require"},
		"lease store sslmode disable": {map[string]any{"leaseStore": map[string]any{"host": "leases", "sslMode": "disable"}},
			"the shard-consumer's database sslMode is disable"},
		"grpc probe on tls": {map[string]any{"components": map[string]any{"loader": map[string]any{"readinessProbe": "grpc"}}},
			"kubelet's gRPC probe speaks plaintext"},
		"oidc without audience": {map[string]any{"auth": map[string]any{"oidc": map[string]any{"issuer": "https://idp.example.com"}}},
			"auth.oidc.audience is required"},
		"iam migrations without account": {map[string]any{"warehouse": map[string]any{"iamAuth": true}},
			"migrations.serviceAccountName is required"},
		"api keys without a Secret": {map[string]any{"auth": map[string]any{"apiKeys": map[string]any{"existingSecret": ""}}},
			"auth.apiKeys.existingSecret is required"},
		"tls without the loader's Secret": {map[string]any{"tls": map[string]any{"existingSecrets": map[string]any{"loader": ""}}},
			"tls.existingSecrets.loader is required"},
		"cert-manager without an issuer": {map[string]any{"tls": map[string]any{"certManager": map[string]any{"enabled": true, "issuerRef": map[string]any{"name": ""}}}},
			"tls.certManager.issuerRef.name is required"},
		"bad memory quantity": {map[string]any{"default": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "256MB"}}}},
			`memory quantity "256MB"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(ch, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	// With insecure: true the open settings render (a dev cluster) and the services are told.
	r := render(t, ch, nil, map[string]any{
		"insecure":  true,
		"auth":      map[string]any{"apiKeys": map[string]any{"enabled": false}},
		"tls":       map[string]any{"enabled": false},
		"warehouse": map[string]any{"sslMode": "disable"},
	})
	for _, d := range Of[*appsv1.Deployment](r) {
		env := envOf(t, r, d.Spec.Template.Spec.Containers[0])
		if env["BOXSCORE_INSECURE"] != "true" {
			t.Errorf("%s: BOXSCORE_INSECURE=%q with insecure: true", d.Name, env["BOXSCORE_INSECURE"])
		}
		for _, v := range []string{"BOXSCORE_API_KEYS_FILE", "BOXSCORE_TLS_CERT_FILE"} {
			if _, ok := env[v]; ok {
				t.Errorf("%s: %s set with it turned off", d.Name, v)
			}
		}
		if len(d.Spec.Template.Spec.Volumes) != 1 {
			t.Errorf("%s: volumes %+v, want /tmp alone", d.Name, d.Spec.Template.Spec.Volumes)
		}
	}
}

func TestAPIKeysSecret(t *testing.T) {
	ch := loadChart(t)
	// Defaults: the user's Secret, mounted as a directory and named by BOXSCORE_API_KEYS_FILE.
	r := render(t, ch, nil, nil)
	gateway := deploymentOf(t, r, "ingest-gateway")
	if got := volumeSecret(gateway, "api-keys"); got != "boxscore-api-keys" {
		t.Errorf("default keys Secret %q, want boxscore-api-keys", got)
	}
	if len(Of[*corev1.Secret](r)) != 0 {
		t.Errorf("the chart renders Secrets by default: %d", len(Of[*corev1.Secret](r)))
	}
	for _, component := range []string{"shard-consumer", "transformer", "loader"} {
		if got := volumeSecret(deploymentOf(t, r, component), "api-keys"); got != "" {
			t.Errorf("%s mounts the API keys (%s)", component, got)
		}
	}

	// Keys in values: the chart's Secret holds them as the gateway's keys file format.
	r = render(t, ch, []string{"../boxscore/ci/api-keys-values.yaml"}, nil)
	secret := find[*corev1.Secret](r, "bx-boxscore-api-keys")
	if secret == nil {
		t.Fatal("no bx-boxscore-api-keys Secret rendered from auth.apiKeys.keys")
	}
	var file struct {
		Keys []struct {
			Producer string   `json:"producer"`
			SHA256   string   `json:"sha256"`
			Scopes   []string `json:"scopes"`
			Sources  []string `json:"sources"`
			Quota    *struct {
				EventsPerSecond int64 `json:"eventsPerSecond"`
				BytesPerSecond  int64 `json:"bytesPerSecond"`
			} `json:"quota"`
		} `json:"keys"`
	}
	if err := yaml.UnmarshalStrict(secret.Data["keys.yaml"], &file); err != nil {
		t.Fatalf("keys.yaml does not decode strictly as the keys file: %v\n%s", err, secret.Data["keys.yaml"])
	}
	if len(file.Keys) != 3 || file.Keys[2].Producer != "ops.replay" || !slices.Equal(file.Keys[2].Scopes, []string{"ingest", "retract"}) ||
		!slices.Equal(file.Keys[2].Sources, []string{"replay"}) || file.Keys[2].Quota == nil || file.Keys[2].Quota.EventsPerSecond != 2000 {
		t.Errorf("keys file %+v differs from the values", file.Keys)
	}
	gateway = deploymentOf(t, r, "ingest-gateway")
	if got := volumeSecret(gateway, "api-keys"); got != secret.Name {
		t.Errorf("the gateway mounts %q, not the rendered %s", got, secret.Name)
	}
	env := envOf(t, r, gateway.Spec.Template.Spec.Containers[0])
	if env["BOXSCORE_DEFAULT_EVENTS_PER_SECOND"] != "0.5" || env["BOXSCORE_DEFAULT_BYTES_PER_SECOND"] != "1000000" {
		t.Errorf("default quota env %q/%q, want 0.5/1000000", env["BOXSCORE_DEFAULT_EVENTS_PER_SECOND"], env["BOXSCORE_DEFAULT_BYTES_PER_SECOND"])
	}

	// The schema takes hashes only: a key itself, or a hash in capitals, is refused.
	for name, entry := range map[string]map[string]any{
		"a key":         {"producer": "demo", "sha256": "bsk_" + strings.Repeat("A", 43), "scopes": []any{"ingest"}},
		"upper hex":     {"producer": "demo", "sha256": strings.Repeat("AB", 32), "scopes": []any{"ingest"}},
		"unknown scope": {"producer": "demo", "sha256": strings.Repeat("ab", 32), "scopes": []any{"admin"}},
		"bad producer":  {"producer": "Demo Team", "sha256": strings.Repeat("ab", 32), "scopes": []any{"ingest"}},
		"a plain field": {"producer": "demo", "sha256": strings.Repeat("ab", 32), "scopes": []any{"ingest"}, "key": "bsk_x"},
	} {
		_, err := RenderChart(ch, map[string]any{"auth": map[string]any{"apiKeys": map[string]any{"keys": []any{entry}}}})
		if err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: keys entry %v rendered (err %v); the schema must refuse it", name, entry, err)
		}
	}
}

func volumeSecret(d *appsv1.Deployment, volume string) string {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

func TestCertManagerCertificates(t *testing.T) {
	ch := loadChart(t)
	r := render(t, ch, []string{"../boxscore/ci/cert-manager-values.yaml"}, nil)
	certs := Of[*Certificate](r)
	if len(certs) != len(components) {
		t.Fatalf("%d Certificates, want one per component", len(certs))
	}
	consumerEnv := envOf(t, r, deploymentOf(t, r, "shard-consumer").Spec.Template.Spec.Containers[0])
	for _, component := range components {
		d := deploymentOf(t, r, component)
		secret := volumeSecret(d, "tls")
		var cert *Certificate
		for _, c := range certs {
			if c.Spec.SecretName == secret {
				cert = c
			}
		}
		if cert == nil {
			t.Errorf("%s mounts TLS Secret %q, which no Certificate writes", component, secret)
			continue
		}
		if cert.Spec.CommonName != identities[component] {
			t.Errorf("Certificate %s: commonName %q, want the identity %q", cert.Name, cert.Spec.CommonName, identities[component])
		}
		if !slices.Contains(cert.Spec.Usages, "server auth") || !slices.Contains(cert.Spec.Usages, "client auth") {
			t.Errorf("Certificate %s: usages %v, want server auth and client auth", cert.Name, cert.Spec.Usages)
		}
		if ref := cert.Spec.IssuerRef; ref.Name != "boxscore-internal-ca" || ref.Kind != "ClusterIssuer" || ref.Group != "cert-manager.io" {
			t.Errorf("Certificate %s: issuerRef %+v, not the values'", cert.Name, ref)
		}
		if cert.Spec.Duration != "720h" || cert.Spec.RenewBefore != "240h" || cert.Spec.PrivateKey.RotationPolicy != "Always" {
			t.Errorf("Certificate %s: duration %s renewBefore %s rotation %s", cert.Name, cert.Spec.Duration, cert.Spec.RenewBefore, cert.Spec.PrivateKey.RotationPolicy)
		}
		// Every name a client dials is in the certificate: the Service, and for the
		// consumer's backends the headless Service of its dns:/// target.
		if !slices.Contains(cert.Spec.DNSNames, d.Name) || !slices.Contains(cert.Spec.DNSNames, d.Name+"."+Release.Namespace+".svc") {
			t.Errorf("Certificate %s: dnsNames %v lack the Service %s", cert.Name, cert.Spec.DNSNames, d.Name)
		}
		if variable, ok := grpcBackends[component]; ok {
			svc, _, err := targetService(r, consumerEnv[variable])
			if err != nil || !slices.Contains(cert.Spec.DNSNames, svc.Name) {
				t.Errorf("Certificate %s: dnsNames %v lack %s, the name the consumer dials (%v)", cert.Name, cert.Spec.DNSNames, consumerEnv[variable], err)
			}
		}
	}

	// Without cert-manager the values' Secrets are mounted, by component.
	r = render(t, ch, []string{"../boxscore/ci/oidc-values.yaml"}, nil)
	if n := len(Of[*Certificate](r)); n != 0 {
		t.Errorf("%d Certificates with certManager off", n)
	}
	for component, want := range map[string]string{"ingest-gateway": "mtls-gateway", "shard-consumer": "mtls-consumer", "transformer": "mtls-transformer", "loader": "mtls-loader"} {
		if got := volumeSecret(deploymentOf(t, r, component), "tls"); got != want {
			t.Errorf("%s: TLS Secret %q, want %q", component, got, want)
		}
	}
}

func TestOIDCAndClientAllowList(t *testing.T) {
	ch := loadChart(t)
	r := render(t, ch, []string{"../boxscore/ci/oidc-values.yaml"}, nil)
	gateway := deploymentOf(t, r, "ingest-gateway")
	env := envOf(t, r, gateway.Spec.Template.Spec.Containers[0])
	want := map[string]string{
		"BOXSCORE_OIDC_ISSUER":         "https://login.example.com/realms/boxscore",
		"BOXSCORE_OIDC_AUDIENCE":       "boxscore-ingest",
		"BOXSCORE_OIDC_JWKS_URL":       "https://login.example.com:8443/realms/boxscore/protocol/openid-connect/certs",
		"BOXSCORE_OIDC_PRODUCER_CLAIM": "azp",
		"BOXSCORE_OIDC_SCOPES_CLAIM":   "scp",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("gateway %s=%q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["BOXSCORE_API_KEYS_FILE"]; ok || volumeSecret(gateway, "api-keys") != "" {
		t.Error("API keys off, yet the gateway gets a keys file")
	}
	// The gateway may reach the issuer and the JWKS URL on their ports.
	np := find[*networkingv1.NetworkPolicy](r, gateway.Name)
	var egress []int
	for _, rule := range np.Spec.Egress {
		egress = append(egress, ports(rule.Ports)...)
	}
	if !slices.Contains(egress, 443) || !slices.Contains(egress, 8443) {
		t.Errorf("gateway egress ports %v: want the issuer's 443 and the JWKS URL's 8443", egress)
	}
	// The loader's allow-list is the values'; the others keep the services' defaults.
	for _, component := range components {
		env := envOf(t, r, deploymentOf(t, r, component).Spec.Template.Spec.Containers[0])
		got, set := env["BOXSCORE_GRPC_CLIENTS"]
		if component == "loader" && got != "shard-consumer,boxscore-admin" {
			t.Errorf("loader BOXSCORE_GRPC_CLIENTS=%q, want shard-consumer,boxscore-admin", got)
		}
		if component != "loader" && set {
			t.Errorf("%s BOXSCORE_GRPC_CLIENTS=%q: the default is the service's", component, got)
		}
	}
}

func TestDatabaseIAMAuth(t *testing.T) {
	ch := loadChart(t)
	for name, tc := range map[string]struct {
		files                        []string
		loaderUser, consumerUser     string
		region                       string
		warehouseCA, leaseCA         string // the volume source names
		migrationsUser, jobAccount   string
		leaseURLPrefix, leaseSSLMode string
	}{
		"iam": {files: []string{"../boxscore/ci/iam-values.yaml"}, loaderUser: "loader_iam", consumerUser: "consumer_iam", region: "eu-west-1",
			warehouseCA: "rds-ca", leaseCA: "lease-ca", migrationsUser: "owner_iam", jobAccount: "boxscore-migrations",
			leaseURLPrefix: "postgres://leases.", leaseSSLMode: "verify-ca"},
		"eks": {files: []string{"../../k8s/eks/values-eks.yaml"}, loaderUser: "boxscore_loader", consumerUser: "boxscore_consumer", region: "us-east-1",
			warehouseCA: "rds-ca-bundle", leaseCA: "rds-ca-bundle", migrationsUser: "boxscore_owner", jobAccount: "boxscore-migrations",
			leaseURLPrefix: "postgres://boxscore.", leaseSSLMode: "verify-full"},
	} {
		t.Run(name, func(t *testing.T) {
			r := render(t, ch, tc.files, nil)
			for component, user := range map[string]string{"loader": tc.loaderUser, "shard-consumer": tc.consumerUser} {
				d := deploymentOf(t, r, component)
				c := d.Spec.Template.Spec.Containers[0]
				env := envOf(t, r, c)
				if got, _ := envValue(c, "PGUSER"); got != user {
					t.Errorf("%s: PGUSER=%q, want the IAM user %q", component, got, user)
				}
				if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "PGPASSWORD" }) {
					t.Errorf("%s: a PGPASSWORD with IAM authentication", component)
				}
				if env["BOXSCORE_DATABASE_IAM_AUTH"] != "true" || env["BOXSCORE_DATABASE_IAM_REGION"] != tc.region {
					t.Errorf("%s: IAM auth %q region %q, want true %s", component, env["BOXSCORE_DATABASE_IAM_AUTH"], env["BOXSCORE_DATABASE_IAM_REGION"], tc.region)
				}
				sa := find[*corev1.ServiceAccount](r, d.Spec.Template.Spec.ServiceAccountName)
				if sa == nil || sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
					t.Errorf("%s: ServiceAccount without an IRSA role: nothing signs its tokens", component)
				}
				wantCA, variable := tc.warehouseCA, "BOXSCORE_DATABASE_URL"
				if component == "shard-consumer" {
					wantCA, variable = tc.leaseCA, "BOXSCORE_LEASE_DATABASE_URL"
				}
				u, err := url.Parse(env[variable])
				if err != nil {
					t.Fatal(err)
				}
				_, v := mountOf(u.Query().Get("sslrootcert"), c, d.Spec.Template.Spec.Volumes)
				if v == nil || (v.ConfigMap == nil || v.ConfigMap.Name != wantCA) && (v.Secret == nil || v.Secret.SecretName != wantCA) {
					t.Errorf("%s: %s sslrootcert not from %s: %+v", component, env[variable], wantCA, v)
				}
				if component == "shard-consumer" && (!strings.HasPrefix(env[variable], tc.leaseURLPrefix) || u.Query().Get("sslmode") != tc.leaseSSLMode) {
					t.Errorf("consumer lease URL %s: want %s... with sslmode %s", env[variable], tc.leaseURLPrefix, tc.leaseSSLMode)
				}
			}
			job := migrationJob(t, r)
			if job == nil {
				t.Fatal("no migrations Job")
			}
			if job.Spec.Template.Spec.ServiceAccountName != tc.jobAccount {
				t.Errorf("Job ServiceAccount %q, want %q", job.Spec.Template.Spec.ServiceAccountName, tc.jobAccount)
			}
			for _, c := range append(slices.Clone(job.Spec.Template.Spec.InitContainers), job.Spec.Template.Spec.Containers...) {
				if got, _ := envValue(c, "PGUSER"); got != tc.migrationsUser {
					t.Errorf("%s: PGUSER=%q, want the DDL user %q", c.Name, got, tc.migrationsUser)
				}
			}
		})
	}
	// A DDL user with a password keeps the Job off IAM while the services use it.
	r := render(t, ch, []string{"../boxscore/ci/iam-values.yaml"}, map[string]any{"migrations": map[string]any{
		"existingSecret": map[string]any{"name": "owner"}, "leaseExistingSecret": map[string]any{"name": "lease-owner"}, "serviceAccountName": "",
	}})
	job := migrationJob(t, r)
	for _, c := range append(slices.Clone(job.Spec.Template.Spec.InitContainers), job.Spec.Template.Spec.Containers...) {
		if iam, _ := envValue(c, "BOXSCORE_DATABASE_IAM_AUTH"); iam != "false" || secretOf(c) == "" {
			t.Errorf("%s: IAM %q, PGUSER Secret %q: want the password user", c.Name, iam, secretOf(c))
		}
	}
	if job.Spec.Template.Spec.ServiceAccountName != "" {
		t.Errorf("Job ServiceAccount %q without IAM", job.Spec.Template.Spec.ServiceAccountName)
	}
}

// TestGoMemLimitFollowsTheLimit: the byte count is the percentage of the limit whatever its
// unit, per component, and follows a component's own percentage.
func TestGoMemLimitFollowsTheLimit(t *testing.T) {
	ch := loadChart(t)
	for limit, want := range map[string]int64{
		"256Mi":     241591910, // floor(0.9 * 268435456)
		"1Gi":       966367641,
		"1.5Gi":     1449551462,
		"512M":      460800000,
		"268435456": 241591910,
		"2G":        1800000000,
	} {
		r := render(t, ch, nil, map[string]any{"components": map[string]any{"transformer": map[string]any{
			"resources": map[string]any{"limits": map[string]any{"memory": limit}},
		}}})
		c := deploymentOf(t, r, "transformer").Spec.Template.Spec.Containers[0]
		got, _ := envValue(c, "GOMEMLIMIT")
		if got != strconv.FormatInt(want, 10) {
			t.Errorf("limit %s: GOMEMLIMIT=%s, want %d", limit, got, want)
		}
		if q := resource.MustParse(limit); q.Value() != c.Resources.Limits.Memory().Value() {
			t.Errorf("limit %s rendered as %s", limit, c.Resources.Limits.Memory())
		}
	}
	r := render(t, ch, nil, map[string]any{"components": map[string]any{"loader": map[string]any{"goMemLimitPercent": 80}}})
	if got, _ := envValue(deploymentOf(t, r, "loader").Spec.Template.Spec.Containers[0], "GOMEMLIMIT"); got != "429496729" {
		t.Errorf("loader at 80%% of 512Mi: GOMEMLIMIT=%s, want 429496729", got)
	}
	if got, _ := envValue(deploymentOf(t, r, "transformer").Spec.Template.Spec.Containers[0], "GOMEMLIMIT"); got != "241591910" {
		t.Errorf("transformer keeps 90%% of 256Mi: GOMEMLIMIT=%s", got)
	}
}

func TestPprofAndReflectionOnlyWhenAsked(t *testing.T) {
	ch := loadChart(t)
	r := render(t, ch, nil, map[string]any{"components": map[string]any{"transformer": map[string]any{"pprof": true, "grpcReflection": true}}})
	for _, component := range components {
		env := envOf(t, r, deploymentOf(t, r, component).Spec.Template.Spec.Containers[0])
		want := strconv.FormatBool(component == "transformer")
		if env["BOXSCORE_PPROF"] != want || env["BOXSCORE_GRPC_REFLECTION"] != want {
			t.Errorf("%s: pprof %q reflection %q, want %s", component, env["BOXSCORE_PPROF"], env["BOXSCORE_GRPC_REFLECTION"], want)
		}
	}
}

// TestNotesShowTheCredential: the first request NOTES.txt shows carries the credential when
// producers must authenticate, and an insecure release says so.
func TestNotesShowTheCredential(t *testing.T) {
	ch := loadChart(t)
	r := render(t, ch, nil, nil)
	if !strings.Contains(r.Notes, `-H "Authorization: Bearer $BOXSCORE_API_KEY"`) || !strings.Contains(r.Notes, "create secret generic") {
		t.Errorf("NOTES.txt of a release with API keys: no key in the first request or no way to make one:\n%s", r.Notes)
	}
	if strings.Contains(r.Notes, "WARNING: insecure") {
		t.Errorf("NOTES.txt warns of insecure by default:\n%s", r.Notes)
	}
	r = render(t, ch, []string{"../../k8s/dev/values-dev.yaml"}, nil)
	if strings.Contains(r.Notes, "Authorization") || !strings.Contains(r.Notes, "WARNING: insecure: true. Producers are not authenticated") {
		t.Errorf("NOTES.txt of the insecure dev values:\n%s", r.Notes)
	}
	t.Log(r.Notes)
}

// gatewayHeapBound is the gateway's documented heap bound for an in-flight budget
// (services/ingest-gateway/README.md, Backpressure): 4 x the budget + 64 MiB.
func gatewayHeapBound(inflightBytes int64) int64 { return 4*inflightBytes + 64<<20 }

// TestGatewayMemoryBoundBelowItsLimit: in every value set the gateway's heap bound for its
// in-flight budget stays below its GOMEMLIMIT, itself below the memory limit, so a flood of
// large requests is refused as busy before the pod is OOM-killed.
func TestGatewayMemoryBoundBelowItsLimit(t *testing.T) {
	ch := loadChart(t)
	for name, files := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := render(t, ch, files, nil)
			c := deploymentOf(t, r, "ingest-gateway").Spec.Template.Spec.Containers[0]
			inflight := int64(64 << 20) // the gateway's default
			if v, ok := envOf(t, r, c)["BOXSCORE_PUBLISH_MAX_INFLIGHT_BYTES"]; ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("BOXSCORE_PUBLISH_MAX_INFLIGHT_BYTES=%q: %v", v, err)
				}
				inflight = n
			}
			limit, _ := envValue(c, "GOMEMLIMIT")
			n, err := strconv.ParseInt(limit, 10, 64)
			if err != nil {
				t.Fatalf("GOMEMLIMIT=%q: %v", limit, err)
			}
			if bound := gatewayHeapBound(inflight); bound >= n {
				t.Errorf("gateway heap bound %d MiB (in-flight %d MiB) is not below GOMEMLIMIT %d MiB", bound>>20, inflight>>20, n>>20)
			}
		})
	}
}

// TestSchemaRejectsSecurityTypos: a misspelt security setting fails instead of leaving the
// default (or worse, the open setting) in place.
func TestSchemaRejectsSecurityTypos(t *testing.T) {
	ch := loadChart(t)
	for name, vals := range map[string]map[string]any{
		"insecure as a string": {"insecure": "yes"},
		"auth key":             {"auth": map[string]any{"apiKey": map[string]any{"enabled": false}}},
		"oidc key":             {"auth": map[string]any{"oidc": map[string]any{"issuer": "https://idp.example.com", "audiance": "x"}}},
		"oidc over http":       {"auth": map[string]any{"oidc": map[string]any{"issuer": "http://idp.example.com", "audience": "x"}}},
		"tls key":              {"tls": map[string]any{"certmanager": map[string]any{"enabled": true}}},
		"tls component":        {"tls": map[string]any{"existingSecrets": map[string]any{"gateway": "x"}}},
		"ca bundle key":        {"warehouse": map[string]any{"caBundle": map[string]any{"configmap": "x"}}},
		"iam as a string":      {"warehouse": map[string]any{"iamAuth": "true"}},
		"memory percent":       {"default": map[string]any{"goMemLimitPercent": 120}},
		"client identity":      {"components": map[string]any{"loader": map[string]any{"grpcClients": []any{"shard consumer"}}}},
		"negative quota":       {"auth": map[string]any{"defaultQuota": map[string]any{"eventsPerSecond": -1}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(ch, vals)
			if err == nil || !strings.Contains(err.Error(), "schema") {
				t.Fatalf("values %v rendered (err %v); the schema must reject them", vals, err)
			}
		})
	}
}
