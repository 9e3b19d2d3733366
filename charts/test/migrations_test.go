package charttest

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// migrationJob returns the one rendered migrations Job, or nil.
func migrationJob(t *testing.T, r *Render) *batchv1.Job {
	t.Helper()
	jobs := Of[*batchv1.Job](r)
	if len(jobs) > 1 {
		t.Fatalf("%d Jobs rendered, want at most the migrations Job", len(jobs))
	}
	if len(jobs) == 0 {
		return nil
	}
	return jobs[0]
}

// secretOf returns the Secret PGUSER comes from in a container.
func secretOf(c corev1.Container) string {
	for _, e := range c.Env {
		if e.Name == "PGUSER" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name
		}
	}
	return ""
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// TestMigrationsRunAsAHardenedHookBeforeTheDeployments: in every value set the schemas are
// migrated by a pre-install/pre-upgrade hook Job (applied and awaited by Helm before the
// release's Deployments, which are no hooks), hardened like the workloads, running each
// service's `migrate` with the service's own database settings, while the services
// themselves do not migrate at start.
func TestMigrationsRunAsAHardenedHookBeforeTheDeployments(t *testing.T) {
	ch := loadChart(t)
	for name, files := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := render(t, ch, files, nil)
			job := migrationJob(t, r)
			if job == nil {
				t.Fatal("no migrations Job rendered")
			}
			hooks := strings.Split(job.Annotations["helm.sh/hook"], ",")
			if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
				t.Errorf("Job %s: helm.sh/hook %q, want pre-install and pre-upgrade", job.Name, job.Annotations["helm.sh/hook"])
			}
			if _, err := strconv.Atoi(job.Annotations["helm.sh/hook-weight"]); err != nil {
				t.Errorf("Job %s: helm.sh/hook-weight %q: %v", job.Name, job.Annotations["helm.sh/hook-weight"], err)
			}
			if policy := job.Annotations["helm.sh/hook-delete-policy"]; !strings.Contains(policy, "before-hook-creation") {
				t.Errorf("Job %s: hook-delete-policy %q must include before-hook-creation (a Job's template is immutable: the next upgrade could not create it)", job.Name, policy)
			}
			// Helm applies hooks, waits for them, and only then the other manifests: the
			// Deployments must not be hooks themselves.
			for _, d := range Of[*appsv1.Deployment](r) {
				if hook, ok := d.Annotations["helm.sh/hook"]; ok {
					t.Errorf("Deployment %s is a hook (%q): it would not wait for the migrations", d.Name, hook)
				}
			}
			spec := job.Spec.Template.Spec
			if spec.RestartPolicy != corev1.RestartPolicyNever || job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil {
				t.Errorf("Job %s: restartPolicy %q, backoffLimit %v, activeDeadlineSeconds %v: want Never and both bounded", job.Name, spec.RestartPolicy, job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds)
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("Job %s: automountServiceAccountToken must be false", job.Name)
			}
			deployment := Of[*appsv1.Deployment](r)[0]
			if !reflect.DeepEqual(spec.SecurityContext, deployment.Spec.Template.Spec.SecurityContext) {
				t.Errorf("Job %s: pod securityContext %+v differs from the workloads' %+v", job.Name, spec.SecurityContext, deployment.Spec.Template.Spec.SecurityContext)
			}
			secrets, _ := userProvided(r)
			steps := append(slices.Clone(spec.InitContainers), spec.Containers...)
			var stepNames []string
			for _, c := range steps {
				stepNames = append(stepNames, c.Name)
				if !reflect.DeepEqual(c.SecurityContext, deployment.Spec.Template.Spec.Containers[0].SecurityContext) {
					t.Errorf("%s/%s: securityContext %+v differs from the workloads'", job.Name, c.Name, c.SecurityContext)
				}
				if req, lim := c.Resources.Requests, c.Resources.Limits; req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
					t.Errorf("%s/%s: needs cpu and memory requests and a memory limit", job.Name, c.Name)
				}
				checkImage(t, job.Name+"/"+c.Name, c.Image)
				if !slices.Equal(c.Args, []string{"migrate"}) || len(c.Ports) > 0 {
					t.Errorf("%s/%s: args %v, ports %v: want the migrate subcommand and no ports", job.Name, c.Name, c.Args, c.Ports)
				}
				if v, _ := envValue(c, "BOXSCORE_REDSHIFT_IAM"); v == "true" {
					// Redshift temporary IAM credentials: user and password from the API, asked
					// with the pod's AWS identity.
					if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "PGUSER" || e.Name == "PGPASSWORD" }) {
						t.Errorf("%s/%s: Redshift IAM credentials with PGUSER/PGPASSWORD", job.Name, c.Name)
					}
					if spec.ServiceAccountName == "" {
						t.Errorf("%s/%s: Redshift IAM credentials under the default ServiceAccount: no role to ask them with", job.Name, c.Name)
					}
				} else if user, iam := envValue(c, "PGUSER"); iam {
					// RDS IAM authentication: a user, no password, a token per connection, and
					// an AWS identity to sign it with.
					if v, _ := envValue(c, "BOXSCORE_DATABASE_IAM_AUTH"); v != "true" || user == "" {
						t.Errorf("%s/%s: PGUSER=%q without a Secret but BOXSCORE_DATABASE_IAM_AUTH=%q", job.Name, c.Name, user, v)
					}
					if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "PGPASSWORD" }) {
						t.Errorf("%s/%s: IAM authentication with a PGPASSWORD", job.Name, c.Name)
					}
					if spec.ServiceAccountName == "" {
						t.Errorf("%s/%s: IAM authentication under the default ServiceAccount: no role to sign tokens", job.Name, c.Name)
					}
				} else if s := secretOf(c); s == "" || !slices.Contains(secrets, s) {
					t.Errorf("%s/%s: PGUSER from Secret %q, which is not user-provided in values", job.Name, c.Name, s)
				}
				// The database CA the URL names is mounted where it says.
				if url, _ := envValue(c, "BOXSCORE_DATABASE_URL"); url != "" {
					checkCAMounted(t, job.Name+"/"+c.Name, url, c, spec.Volumes, r)
				}
				if url, _ := envValue(c, "BOXSCORE_LEASE_DATABASE_URL"); url != "" {
					checkCAMounted(t, job.Name+"/"+c.Name, url, c, spec.Volumes, r)
				}
				// The same database settings as the service it migrates for.
				component := strings.TrimSuffix(c.Name, "-migrate")
				svc := find[*appsv1.Deployment](r, "bx-boxscore-"+component)
				if svc == nil {
					t.Errorf("%s/%s: no Deployment for %s", job.Name, c.Name, component)
					continue
				}
				svcEnv := envOf(t, r, svc.Spec.Template.Spec.Containers[0])
				for _, key := range []string{"BOXSCORE_DATABASE_URL", "BOXSCORE_WAREHOUSE_SCHEMA", "BOXSCORE_LEASE_DATABASE_URL", "BOXSCORE_LEASE_SCHEMA", "BOXSCORE_WAREHOUSE_ENGINE", "BOXSCORE_REDSHIFT_STAGING_URI", "BOXSCORE_REDSHIFT_COPY_ROLE_ARN"} {
					want, served := svcEnv[key]
					if got, _ := envValue(c, key); served && got != want {
						t.Errorf("%s/%s: %s=%q, the service uses %q", job.Name, c.Name, key, got, want)
					}
				}
				if svcEnv["BOXSCORE_MIGRATE"] != "false" {
					t.Errorf("Deployment %s: BOXSCORE_MIGRATE=%q, want false: the Job migrates, the service only checks", svc.Name, svcEnv["BOXSCORE_MIGRATE"])
				}
			}
			want := []string{"loader-migrate", "shard-consumer-migrate"} // Redshift too
			if !slices.Equal(stepNames, want) {
				t.Errorf("Job %s runs %v, want %v in that order", job.Name, stepNames, want)
			}
		})
	}
}

// TestMigrationsUseTheirOwnDDLUser: with migrations.existingSecret set, the Job migrates as
// that user while the services keep theirs (the DML-only users); disabled, no Job.
func TestMigrationsUseTheirOwnDDLUser(t *testing.T) {
	ch := loadChart(t)
	r := render(t, ch, nil, map[string]any{"migrations": map[string]any{
		"existingSecret": map[string]any{"name": "boxscore-owner"},
	}})
	job := migrationJob(t, r)
	if job == nil {
		t.Fatal("no migrations Job rendered")
	}
	for _, c := range append(slices.Clone(job.Spec.Template.Spec.InitContainers), job.Spec.Template.Spec.Containers...) {
		if got := secretOf(c); got != "boxscore-owner" {
			t.Errorf("%s: PGUSER from %q, want boxscore-owner", c.Name, got)
		}
	}
	for _, component := range []string{"loader", "shard-consumer"} {
		d := find[*appsv1.Deployment](r, "bx-boxscore-"+component)
		if got := secretOf(d.Spec.Template.Spec.Containers[0]); got != "boxscore-warehouse" {
			t.Errorf("Deployment %s: PGUSER from %q, want the service's own boxscore-warehouse", d.Name, got)
		}
	}

	r = render(t, ch, nil, map[string]any{"migrations": map[string]any{"enabled": false}})
	if job := migrationJob(t, r); job != nil {
		t.Errorf("migrations.enabled false still renders Job %s", job.Name)
	}
}
