package charttest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func egressPorts(t *testing.T, r *Render, component string) []int {
	t.Helper()
	np := find[*networkingv1.NetworkPolicy](r, "bx-boxscore-"+component)
	if np == nil {
		t.Fatalf("no NetworkPolicy for %s", component)
	}
	var out []int
	for _, rule := range np.Spec.Egress {
		out = append(out, ports(rule.Ports)...)
	}
	return out
}

func containerEnv(t *testing.T, r *Render, component string) (map[string]string, corev1.Container, *appsv1.Deployment) {
	t.Helper()
	d := deploymentOf(t, r, component)
	c := d.Spec.Template.Spec.Containers[0]
	return envOf(t, r, c), c, d
}

// TestRedshiftLoaderConfiguration: warehouse.engine redshift gives the loader the staging,
// COPY role, window and credentials settings of the Redshift dialect, lets it reach S3 and
// the AWS APIs, and gives the consumer a Load deadline that covers a window and a COPY, with
// shutdown timeouts that let a Load in flight commit.
func TestRedshiftLoaderConfiguration(t *testing.T) {
	ch := loadChart(t)
	cases := []struct {
		name      string
		files     []string
		overrides map[string]any
		want      map[string]string // loader variables; "" means absent
		rpc       time.Duration
		egress    []int // loader egress ports beside DNS
		secret    bool  // the loader's PGUSER/PGPASSWORD from a Secret
	}{
		{
			name: "password", files: valueSets["redshift"],
			want: map[string]string{
				"BOXSCORE_WAREHOUSE_ENGINE":       "redshift",
				"BOXSCORE_REDSHIFT_STAGING_URI":   "s3://boxscore-staging-123456789012/loads/",
				"BOXSCORE_REDSHIFT_COPY_ROLE_ARN": "arn:aws:iam::123456789012:role/boxscore-redshift-copy",
				"BOXSCORE_REDSHIFT_BATCH_WINDOW":  "2s",
				"BOXSCORE_REDSHIFT_IAM":           "false",
				"BOXSCORE_REDSHIFT_WORKGROUP":     "",
				"BOXSCORE_REDSHIFT_CLUSTER_ID":    "",
				"BOXSCORE_S3_ENDPOINT":            "",
				"AWS_REGION":                      "eu-west-1",
				"BOXSCORE_DATABASE_URL":           "postgres://boxscore.abc123xyz.eu-west-1.redshift.amazonaws.com:5439/dev?sslmode=verify-full",
			},
			rpc: 60 * time.Second, egress: []int{443, 5439}, secret: true,
		},
		{
			name: "serverless iam", files: valueSets["redshift-iam"],
			want: map[string]string{
				"BOXSCORE_REDSHIFT_IAM":                  "true",
				"BOXSCORE_REDSHIFT_WORKGROUP":            "boxscore-wg",
				"BOXSCORE_REDSHIFT_CLUSTER_ID":           "",
				"BOXSCORE_REDSHIFT_CREDENTIALS_DURATION": "30m",
				"BOXSCORE_REDSHIFT_BATCH_WINDOW":         "5s",
				"AWS_REGION":                             "us-east-1", // stream.region by default
			},
			rpc: 75 * time.Second, egress: []int{443, 5439},
		},
		{
			name: "cluster iam and a local s3", files: valueSets["redshift"],
			overrides: map[string]any{"warehouse": map[string]any{"redshift": map[string]any{
				"s3Endpoint": "http://s3.boxscore-dev:9000",
				"iam":        map[string]any{"enabled": true, "clusterId": "boxscore-dw"},
			}}},
			want: map[string]string{
				"BOXSCORE_REDSHIFT_IAM":                  "true",
				"BOXSCORE_REDSHIFT_CLUSTER_ID":           "boxscore-dw",
				"BOXSCORE_REDSHIFT_WORKGROUP":            "",
				"BOXSCORE_REDSHIFT_CREDENTIALS_DURATION": "15m",
				"BOXSCORE_S3_ENDPOINT":                   "http://s3.boxscore-dev:9000",
			},
			rpc: 60 * time.Second, egress: []int{443, 5439, 9000},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, ch, tc.files, tc.overrides)
			env, c, _ := containerEnv(t, r, "loader")
			for k, want := range tc.want {
				if got, ok := env[k]; (want == "" && ok) || got != want {
					t.Errorf("loader %s = %q (set: %v), want %q", k, got, ok, want)
				}
			}
			hasSecret := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
				return (e.Name == "PGUSER" || e.Name == "PGPASSWORD") && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
			})
			if hasSecret != tc.secret {
				t.Errorf("loader credentials from a Secret: %v, want %v", hasSecret, tc.secret)
			}
			if _, ok := env["PGUSER"]; ok && !tc.secret {
				t.Error("loader has a PGUSER with Redshift IAM credentials: the API names the user")
			}
			egress := egressPorts(t, r, "loader")
			for _, p := range tc.egress {
				if !slices.Contains(egress, p) {
					t.Errorf("loader egress %v lacks port %d", egress, p)
				}
			}
			consumerEnv, _, consumer := containerEnv(t, r, "shard-consumer")
			rpc, err := time.ParseDuration(consumerEnv["BOXSCORE_RPC_TIMEOUT"])
			if err != nil || rpc != tc.rpc {
				t.Errorf("consumer BOXSCORE_RPC_TIMEOUT = %q, want %s", consumerEnv["BOXSCORE_RPC_TIMEOUT"], tc.rpc)
			}
			_, _, loader := containerEnv(t, r, "loader")
			for _, d := range []*appsv1.Deployment{consumer, loader} {
				denv := envOf(t, r, d.Spec.Template.Spec.Containers[0])
				shutdown, err := time.ParseDuration(denv["BOXSCORE_SHUTDOWN_TIMEOUT"])
				if err != nil || shutdown < tc.rpc+30*time.Second {
					t.Errorf("%s: BOXSCORE_SHUTDOWN_TIMEOUT %q, want at least the Load deadline %s + 30s", d.Name, denv["BOXSCORE_SHUTDOWN_TIMEOUT"], tc.rpc)
				}
			}
			// The migrations Job migrates the Redshift schema with the loader's engine settings.
			job := migrationJob(t, r)
			steps := append(append([]corev1.Container(nil), job.Spec.Template.Spec.InitContainers...), job.Spec.Template.Spec.Containers...)
			if steps[0].Name != "loader-migrate" {
				t.Fatalf("first migration step %s, want loader-migrate", steps[0].Name)
			}
			if v, _ := envValue(steps[0], "BOXSCORE_WAREHOUSE_ENGINE"); v != "redshift" {
				t.Errorf("loader-migrate BOXSCORE_WAREHOUSE_ENGINE = %q, want redshift", v)
			}
			if !strings.Contains(r.Notes, "lifecycle") || strings.Contains(r.Notes, "not implemented") {
				t.Errorf("NOTES.txt for Redshift:\n%s", r.Notes)
			}
		})
	}
}

// TestPostgreSQLLoaderHasNoRedshiftSettings: the default engine neither sets the Redshift
// variables nor opens AWS egress for the loader, nor changes the consumer's deadline.
func TestPostgreSQLLoaderHasNoRedshiftSettings(t *testing.T) {
	r := render(t, loadChart(t), nil, nil)
	env, _, _ := containerEnv(t, r, "loader")
	for k := range env {
		if strings.HasPrefix(k, "BOXSCORE_REDSHIFT_") || k == "BOXSCORE_S3_ENDPOINT" {
			t.Errorf("loader of a PostgreSQL warehouse has %s", k)
		}
	}
	if env["BOXSCORE_WAREHOUSE_ENGINE"] != "postgresql" {
		t.Errorf("BOXSCORE_WAREHOUSE_ENGINE = %q, want postgresql", env["BOXSCORE_WAREHOUSE_ENGINE"])
	}
	if slices.Contains(egressPorts(t, r, "loader"), 443) {
		t.Error("loader of a PostgreSQL warehouse may reach AWS (443)")
	}
	consumerEnv, _, _ := containerEnv(t, r, "shard-consumer")
	if v, ok := consumerEnv["BOXSCORE_RPC_TIMEOUT"]; ok {
		t.Errorf("consumer BOXSCORE_RPC_TIMEOUT = %q, want the service's default", v)
	}
}

// TestRedshiftUserSettingsWin: a consumer deadline set in its config and a longer shutdown
// timeout are kept.
func TestRedshiftUserSettingsWin(t *testing.T) {
	r := render(t, loadChart(t), valueSets["redshift"], map[string]any{"components": map[string]any{
		"shard-consumer": map[string]any{"config": map[string]any{"BOXSCORE_RPC_TIMEOUT": "45s"}, "shutdown": map[string]any{"timeoutSeconds": 200}},
	}})
	env, _, _ := containerEnv(t, r, "shard-consumer")
	if env["BOXSCORE_RPC_TIMEOUT"] != "45s" || env["BOXSCORE_SHUTDOWN_TIMEOUT"] != "200s" {
		t.Errorf("consumer RPC timeout %q, shutdown %q; want the user's 45s and 200s", env["BOXSCORE_RPC_TIMEOUT"], env["BOXSCORE_SHUTDOWN_TIMEOUT"])
	}
}

// TestRedshiftSchemaRejections: values.schema.json refuses Redshift settings that cannot work.
func TestRedshiftSchemaRejections(t *testing.T) {
	ch := loadChart(t)
	// The redshift value set with an override, read afresh each time: rendering may change
	// the maps it is given.
	mergeValues := func(override map[string]any) map[string]any {
		base, err := ReadValueFiles(valueSets["redshift"]...)
		if err != nil {
			t.Fatal(err)
		}
		return chartutil.CoalesceTables(override, base)
	}
	redshift := func(r map[string]any) map[string]any {
		return map[string]any{"warehouse": map[string]any{"redshift": r}}
	}
	iam := func(i map[string]any) map[string]any { return redshift(map[string]any{"iam": i}) }
	cases := map[string]map[string]any{
		"no staging uri":           redshift(map[string]any{"stagingUri": ""}),
		"staging not s3":           redshift(map[string]any{"stagingUri": "https://bucket.s3.amazonaws.com/loads/"}),
		"staging without bucket":   redshift(map[string]any{"stagingUri": "s3://"}),
		"no copy role":             redshift(map[string]any{"copyRoleArn": ""}),
		"copy role not an arn":     redshift(map[string]any{"copyRoleArn": "boxscore-redshift-copy"}),
		"copy role of a user":      redshift(map[string]any{"copyRoleArn": "arn:aws:iam::123456789012:user/copy"}),
		"window too short":         redshift(map[string]any{"batchWindow": "50ms"}),
		"window too long":          redshift(map[string]any{"batchWindow": "61s"}),
		"window in minutes":        redshift(map[string]any{"batchWindow": "2m"}),
		"window not a duration":    redshift(map[string]any{"batchWindow": "2 seconds"}),
		"s3 endpoint not a url":    redshift(map[string]any{"s3Endpoint": "minio:9000"}),
		"rpc timeout too short":    redshift(map[string]any{"rpcTimeoutSeconds": 1}),
		"unknown redshift key":     redshift(map[string]any{"stagingURI": "s3://b/p/"}),
		"iam without a target":     iam(map[string]any{"enabled": true}),
		"iam with both targets":    iam(map[string]any{"enabled": true, "clusterId": "boxscore-dw", "workgroup": "boxscore-wg"}),
		"credentials too short":    iam(map[string]any{"enabled": true, "clusterId": "boxscore-dw", "credentialsDuration": "10m"}),
		"credentials too long":     iam(map[string]any{"enabled": true, "clusterId": "boxscore-dw", "credentialsDuration": "2h"}),
		"cluster id not an id":     iam(map[string]any{"enabled": true, "clusterId": "Boxscore_DW"}),
		"unknown iam key":          iam(map[string]any{"enabled": true, "cluster": "boxscore-dw"}),
		"rds iam auth on redshift": {"warehouse": map[string]any{"iamAuth": true}},
	}
	for name, override := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := RenderChart(ch, mergeValues(override))
			if err == nil {
				t.Fatalf("values %v rendered; they must be refused", override)
			}
			if name != "rds iam auth on redshift" && !strings.Contains(err.Error(), "schema") {
				t.Fatalf("values %v: %v; want the schema to refuse them", override, err)
			}
		})
	}
	// The valid neighbours of the cases above pass, so each case fails for its own value.
	for name, override := range map[string]map[string]any{
		"window 100ms":      redshift(map[string]any{"batchWindow": "100ms"}),
		"window 60s":        redshift(map[string]any{"batchWindow": "60s"}),
		"window 1.5s":       redshift(map[string]any{"batchWindow": "1.5s"}),
		"cluster iam":       iam(map[string]any{"enabled": true, "clusterId": "boxscore-dw", "credentialsDuration": "1h"}),
		"workgroup iam":     iam(map[string]any{"enabled": true, "workgroup": "boxscore-wg", "credentialsDuration": "15m"}),
		"iam off, names on": iam(map[string]any{"enabled": false, "clusterId": "boxscore-dw"}),
		"gov cloud role":    redshift(map[string]any{"copyRoleArn": "arn:aws-us-gov:iam::123456789012:role/path/copy"}),
	} {
		if _, err := RenderChart(ch, mergeValues(override)); err != nil {
			t.Errorf("%s: valid values refused: %v", name, err)
		}
	}
	// A PostgreSQL warehouse needs none of the Redshift settings.
	if _, err := RenderChart(ch, map[string]any{"warehouse": map[string]any{"engine": "postgresql"}}); err != nil {
		t.Errorf("postgresql without Redshift settings: %v", err)
	}
}
