package warehouse_test

import (
	"errors"
	"testing"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

type storedGap struct {
	reason, after, before, oldIdentity, identity string
	oldShardEnd                                  bool
}

func readGaps(t *testing.T, e *env, shardID string) []storedGap {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT reason, after_sequence_number, before_sequence_number, old_stream_identity,
		stream_identity, old_shard_end FROM `+testSchema+`.stream_gap WHERE shard_id = $1 ORDER BY id`, shardID)
	if err != nil {
		t.Fatalf("read gaps: %v", err)
	}
	defer rows.Close()
	var out []storedGap
	for rows.Next() {
		var g storedGap
		if err := rows.Scan(&g.reason, &g.after, &g.before, &g.oldIdentity, &g.identity, &g.oldShardEnd); err != nil {
			t.Fatalf("scan gap: %v", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read gaps: %v", err)
	}
	return out
}

func claimAs(t *testing.T, s loaderStore, shardID string, token int64, identity string) *loadv1.ClaimShardResponse {
	t.Helper()
	req := claimRequest(shardID, token, testOwner)
	req.StreamIdentity = identity
	resp, err := s.Claim(t.Context(), req)
	if err != nil {
		t.Fatalf("Claim(%s, %d, %q): %v", shardID, token, identity, err)
	}
	return resp
}

// A claim of another stream identity archives the checkpoint as a stream_recreated gap and
// starts the shard over; the same identity, or a claim without one, resumes.
func TestClaimOfARecreatedStreamStartsOver(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 2)
		const shard = "shardId-000000000007"
		req := func(expected, seq string, token int64) *loadv1.LoadRequest {
			r := request(expected, seq, newRow(1, "g-"+seq, 1, "evt-"+seq, seq))
			r.ShardId, r.LeaseToken = shard, token
			r.Rows[0].Position.ShardId = shard
			return r
		}

		// A row from before identities (claimed without one) adopts the first identity named.
		claimAs(t, e.store, shard, 1, "")
		mustLoad(t, e.store, req("", "100", 1))
		resp := claimAs(t, e.store, shard, 2, "created:1")
		if cp := resp.GetCheckpoint(); cp.GetSequenceNumber() != "100" || cp.GetStreamIdentity() != "created:1" || resp.GetArchived() != nil {
			t.Fatalf("claim adopting an identity = %v, want 100 under created:1, nothing archived", resp)
		}
		mustLoad(t, e.store, req("100", "200", 2))
		// Same identity: resumes.
		if resp := claimAs(t, e.store, shard, 3, "created:1"); resp.GetCheckpoint().GetSequenceNumber() != "200" || resp.GetArchived() != nil {
			t.Fatalf("claim under the same identity = %v, want 200, nothing archived", resp)
		}
		// Without identity (an older consumer): resumes, identity kept.
		if resp := claimAs(t, e.store, shard, 4, ""); resp.GetCheckpoint().GetSequenceNumber() != "200" ||
			resp.GetCheckpoint().GetStreamIdentity() != "created:1" {
			t.Fatalf("claim without identity = %v, want 200 under created:1", resp)
		}
		mustLoad(t, e.store, func() *loadv1.LoadRequest { r := req("200", "300", 4); r.ShardEnd = true; return r }())
		if got := readGaps(t, e, shard); len(got) != 0 {
			t.Fatalf("gaps before any recreation = %v, want none", got)
		}

		// Recreated: the finished checkpoint of the old stream is archived, the shard starts over.
		resp = claimAs(t, e.store, shard, 5, "created:2")
		cp := resp.GetCheckpoint()
		if cp.GetSequenceNumber() != "" || cp.GetShardEnd() || cp.GetStreamIdentity() != "created:2" || cp.GetLeaseToken() != 5 {
			t.Fatalf("claim of a recreated stream = %v, want an empty, unfinished checkpoint under created:2 and token 5", cp)
		}
		a := resp.GetArchived()
		if a.GetReason() != warehouse.GapStreamRecreated || a.GetAfterSequenceNumber() != "300" ||
			a.GetOldStreamIdentity() != "created:1" || a.GetStreamIdentity() != "created:2" {
			t.Fatalf("archived = %v, want stream_recreated after 300 from created:1 to created:2", a)
		}
		want := storedGap{reason: "stream_recreated", after: "300", oldIdentity: "created:1", identity: "created:2", oldShardEnd: true}
		if got := readGaps(t, e, shard); len(got) != 1 || got[0] != want {
			t.Fatalf("gaps = %+v, want [%+v]", got, want)
		}
		// The new stream's sequence numbers commit from the start; a retried claim resets nothing more.
		mustLoad(t, e.store, req("", "50", 5))
		if resp := claimAs(t, e.store, shard, 5, "created:2"); resp.GetCheckpoint().GetSequenceNumber() != "50" || resp.GetArchived() != nil {
			t.Fatalf("retried claim = %v, want 50, nothing archived", resp)
		}
		// A stale claim of the old identity under an old token is fenced, and resets nothing.
		if _, err := e.store.Claim(t.Context(), func() *loadv1.ClaimShardRequest {
			r := claimRequest(shard, 4, "consumer-old")
			r.StreamIdentity = "created:1"
			return r
		}()); err == nil {
			t.Fatal("stale claim of the old identity succeeded")
		}
		if got := readGaps(t, e, shard); len(got) != 1 {
			t.Fatalf("gaps after a retried and a stale claim = %v, want still 1", got)
		}
	})
}

// A trim_horizon gap reported with a batch is stored in the batch's transaction: once, and
// not at all when the batch is refused.
func TestLoadRecordsATrimHorizonGap(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 2)
		mustLoad(t, e.store, request("", "100", newRow(1, "g1", 1, "evt-1", "100")))
		gapReq := func() *loadv1.LoadRequest {
			r := request("100", "500", newRow(1, "g2", 1, "evt-2", "400"), newRow(1, "g3", 1, "evt-3", "500"))
			r.Gap = &loadv1.StreamGap{Reason: warehouse.GapTrimHorizon, AfterSequenceNumber: "100", BeforeSequenceNumber: "400", Detail: "trimmed"}
			return r
		}
		mustLoad(t, e.store, gapReq())
		// The same batch again (an answer lost): refused by the checkpoint CAS, no second gap.
		if _, err := e.store.Load(t.Context(), gapReq()); err == nil {
			t.Fatal("duplicate batch with its gap committed twice")
		}
		want := storedGap{reason: "trim_horizon", after: "100", before: "400"}
		if got := readGaps(t, e, testShard); len(got) != 1 || got[0] != want {
			t.Fatalf("gaps = %+v, want [%+v]", got, want)
		}

		for name, mutate := range map[string]func(*loadv1.StreamGap){
			"reason":         func(g *loadv1.StreamGap) { g.Reason = warehouse.GapStreamRecreated },
			"after":          func(g *loadv1.StreamGap) { g.AfterSequenceNumber = "99" },
			"before behind":  func(g *loadv1.StreamGap) { g.BeforeSequenceNumber = "500" },
			"before ahead":   func(g *loadv1.StreamGap) { g.BeforeSequenceNumber = "901" },
			"before invalid": func(g *loadv1.StreamGap) { g.BeforeSequenceNumber = "x" },
		} {
			r := request("500", "900", newRow(1, "g4", 1, "evt-4", "900"))
			r.Gap = &loadv1.StreamGap{Reason: warehouse.GapTrimHorizon, AfterSequenceNumber: "500", BeforeSequenceNumber: "900"}
			mutate(r.Gap)
			if _, err := e.store.Load(t.Context(), r); !isValidation(err) {
				t.Errorf("%s: Load = %v, want a validation error", name, err)
			}
		}
	})
}

func isValidation(err error) bool {
	var invalid *warehouse.ValidationError
	return errors.As(err, &invalid)
}
