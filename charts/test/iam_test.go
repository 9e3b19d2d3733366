package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const iamDir = "../../k8s/eks/iam"

// statement is one IAM policy statement; Action and Resource may be a string or a list.
type statement struct {
	Sid       string
	Effect    string
	Principal map[string]any
	Action    any
	Resource  any
	Condition map[string]map[string]any
}

func list(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func readPolicy(t *testing.T, name string) []statement {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(iamDir, name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc struct {
		Version   string
		Statement []statement
	}
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if doc.Version != "2012-10-17" || len(doc.Statement) == 0 {
		t.Fatalf("%s: Version %q with %d statements, want 2012-10-17 and at least one", name, doc.Version, len(doc.Statement))
	}
	return doc.Statement
}

// TestIAMPoliciesAreLeastPrivilege: every policy in k8s/eks/iam parses as an IAM policy
// document (no unknown keys), allows only, names its actions (no wildcard) and, for
// permission policies, its resources.
func TestIAMPoliciesAreLeastPrivilege(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(iamDir, "*.json"))
	if err != nil || len(files) < 8 {
		t.Fatalf("found %d policies in %s (%v)", len(files), iamDir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "redshift-staging-lifecycle.json" {
			continue // an S3 lifecycle configuration, checked below
		}
		t.Run(name, func(t *testing.T) {
			for _, st := range readPolicy(t, name) {
				if st.Effect != "Allow" {
					t.Errorf("%s: Effect %q", st.Sid, st.Effect)
				}
				actions := list(st.Action)
				if len(actions) == 0 {
					t.Errorf("%s: no action", st.Sid)
				}
				for _, a := range actions {
					if strings.Contains(a, "*") || !strings.Contains(a, ":") {
						t.Errorf("%s: action %q is not one named action", st.Sid, a)
					}
				}
				trust := st.Principal != nil
				resources := list(st.Resource)
				if !trust && len(resources) == 0 {
					t.Errorf("%s: a permission without a resource", st.Sid)
				}
				for _, r := range resources {
					if r == "*" || !strings.HasPrefix(r, "arn:aws:") {
						t.Errorf("%s: resource %q is not one ARN", st.Sid, r)
					}
				}
			}
		})
	}
}

// allowed returns the actions allowed on each resource by a policy.
func allowed(t *testing.T, name string) map[string][]string {
	out := map[string][]string{}
	for _, st := range readPolicy(t, name) {
		for _, r := range list(st.Resource) {
			out[r] = append(out[r], list(st.Action)...)
		}
	}
	return out
}

// TestRedshiftIAMPolicies: the loader's role may stage under the prefix and ask for the
// database credentials of one database or workgroup; the COPY role is for Redshift to
// assume and may only read the prefix; staged objects expire.
func TestRedshiftIAMPolicies(t *testing.T) {
	const bucket, objects = "arn:aws:s3:::boxscore-staging-123456789012", "arn:aws:s3:::boxscore-staging-123456789012/loads/*"
	for name, credentials := range map[string]string{
		"loader-redshift.json":            "redshift:GetClusterCredentialsWithIAM",
		"loader-redshift-serverless.json": "redshift-serverless:GetCredentials",
	} {
		got := allowed(t, name)
		for _, a := range []string{"s3:PutObject", "s3:GetObject", "s3:DeleteObject"} {
			if !slices.Contains(got[objects], a) {
				t.Errorf("%s: %s not allowed on %s", name, a, objects)
			}
		}
		if !slices.Equal(got[bucket], []string{"s3:ListBucket"}) {
			t.Errorf("%s: on the bucket %v, want s3:ListBucket only", name, got[bucket])
		}
		var found bool
		for r, actions := range got {
			if slices.Contains(actions, credentials) {
				found = true
				if !strings.Contains(r, ":dbname:") && !strings.Contains(r, ":workgroup/") {
					t.Errorf("%s: %s on %s, want one database (dbname) or workgroup", name, credentials, r)
				}
			}
		}
		if !found {
			t.Errorf("%s: %s not allowed", name, credentials)
		}
		for _, st := range readPolicy(t, name) {
			if slices.Contains(list(st.Action), "s3:ListBucket") {
				if prefixes := list(st.Condition["StringLike"]["s3:prefix"]); !slices.Contains(prefixes, "loads/*") {
					t.Errorf("%s: ListBucket not limited to the staging prefix: %v", name, st.Condition)
				}
			}
		}
	}
	trust := readPolicy(t, "redshift-copy-role-trust.json")
	if len(trust) != 1 || trust[0].Principal["Service"] != "redshift.amazonaws.com" || list(trust[0].Action)[0] != "sts:AssumeRole" {
		t.Errorf("COPY role trust %+v, want redshift.amazonaws.com to sts:AssumeRole", trust)
	}
	copyRole := allowed(t, "redshift-copy-role.json")
	if !slices.Equal(copyRole[objects], []string{"s3:GetObject"}) {
		t.Errorf("COPY role on the objects: %v, want s3:GetObject only", copyRole[objects])
	}
	for r, actions := range copyRole {
		for _, a := range actions {
			if a == "s3:PutObject" || a == "s3:DeleteObject" || !strings.HasPrefix(r, bucket) {
				t.Errorf("COPY role may %s on %s", a, r)
			}
		}
	}

	data, err := os.ReadFile(filepath.Join(iamDir, "redshift-staging-lifecycle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lifecycle struct {
		Rules []struct {
			ID     string
			Filter struct{ Prefix string }
			Status string
			// Expiration of the staged objects, in days.
			Expiration                     struct{ Days int }
			AbortIncompleteMultipartUpload struct{ DaysAfterInitiation int }
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lifecycle); err != nil {
		t.Fatal(err)
	}
	if len(lifecycle.Rules) != 1 {
		t.Fatalf("lifecycle rules %+v, want one", lifecycle.Rules)
	}
	rule := lifecycle.Rules[0]
	if rule.Status != "Enabled" || rule.Filter.Prefix != "loads/" || rule.Expiration.Days < 1 || rule.Expiration.Days > 7 {
		t.Errorf("lifecycle rule %+v: want staged objects under loads/ expiring after a few days", rule)
	}
}
