package charttest

import (
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
	corev1 "k8s.io/api/core/v1"
)

// TestAPIKeysSecretIsAKeysFile: the keys file the chart renders from auth.apiKeys.keys is one
// the gateway loads (pkg/apikey, its strict parser and validation), and a key whose hash was
// given in values is found in it, under its producer and scopes.
func TestAPIKeysSecretIsAKeysFile(t *testing.T) {
	ch := loadChart(t)
	key := apikey.Generate()
	other := apikey.Generate()
	r := render(t, ch, nil, map[string]any{"auth": map[string]any{"apiKeys": map[string]any{"keys": []any{
		map[string]any{"producer": "demo", "sha256": apikey.Hash(key), "scopes": []any{"ingest", "retract"}, "sources": []any{"replay"},
			"quota": map[string]any{"eventsPerSecond": 0.5, "bytesPerSecond": 4000000}},
		map[string]any{"producer": "demo", "sha256": apikey.Hash(other), "scopes": []any{"ingest"}},
	}}}})
	secret := find[*corev1.Secret](r, "bx-boxscore-api-keys")
	if secret == nil {
		t.Fatal("no keys Secret rendered")
	}
	file, err := apikey.Parse(secret.Data["keys.yaml"])
	if err != nil {
		t.Fatalf("the gateway would refuse the rendered keys file: %v\n%s", err, secret.Data["keys.yaml"])
	}
	var found *apikey.Entry
	for i := range file.Keys {
		if file.Keys[i].SHA256 == apikey.Hash(key) {
			found = &file.Keys[i]
		}
	}
	if found == nil || found.Producer != "demo" || !found.HasScope(apikey.ScopeRetract) || len(found.Sources) != 1 ||
		found.Quota == nil || found.Quota.EventsPerSecond != 0.5 || found.Quota.BytesPerSecond != 4000000 {
		t.Fatalf("key not found as given in values: %+v", found)
	}
	if len(file.Keys) != 2 {
		t.Errorf("%d keys, want 2 (one producer, two keys while it rotates)", len(file.Keys))
	}

	// The CI values' keys file loads too.
	r = render(t, ch, []string{"../boxscore/ci/api-keys-values.yaml"}, nil)
	if _, err := apikey.Parse(find[*corev1.Secret](r, "bx-boxscore-api-keys").Data["keys.yaml"]); err != nil {
		t.Errorf("ci/api-keys-values.yaml: the gateway would refuse the keys file: %v", err)
	}
}
