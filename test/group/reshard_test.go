package group

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
)

// TestReshardingKeepsPerPlayerOrder: two replicas read the stream while 30 players' games
// flow, each player's in game order; two shards are split and two adjacent others merged
// mid-stream. Every accepted event lands exactly once; every parent is checkpointed as
// finished; no child commits before its parents' last commit; and each player's games are
// committed in the order they were sent, along the shards' lineage.
func TestReshardingKeepsPerPlayerOrder(t *testing.T) {
	e := newGroup(t, 2)
	f := startFlow(t, e.GatewayURL(), e.players(flowPlayers), flowPause)
	e.waitBalanced(60*time.Second, replicaNames(1, 2), []int{4, 4})
	time.Sleep(2 * time.Second)

	ctx := context.Background()
	open, err := e.openShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := sortedByHashKey(open)
	// Split the 1st and 3rd shards (by hash range), merge the 5th and 6th: adjacent ranges.
	for _, i := range []int{0, 2} {
		s := open[ids[i]]
		start, end := hashKey(t, aws.ToString(s.HashKeyRange.StartingHashKey)), hashKey(t, aws.ToString(s.HashKeyRange.EndingHashKey))
		middle := new(big.Int).Rsh(new(big.Int).Add(start, end), 1)
		middle.Add(middle, big.NewInt(1))
		if _, err := e.Kinesis.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(e.Stream),
			ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(middle.String())}); err != nil {
			t.Fatalf("split %s: %v", ids[i], err)
		}
		e.waitActive()
		t.Logf("split %s at %s", ids[i], middle)
		time.Sleep(time.Second)
	}
	a, b := open[ids[4]], open[ids[5]]
	if next := new(big.Int).Add(hashKey(t, aws.ToString(a.HashKeyRange.EndingHashKey)), big.NewInt(1)); next.Cmp(hashKey(t, aws.ToString(b.HashKeyRange.StartingHashKey))) != 0 {
		t.Fatalf("shards %s and %s are not adjacent", ids[4], ids[5])
	}
	if _, err := e.Kinesis.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(e.Stream),
		ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId}); err != nil {
		t.Fatalf("merge %s and %s: %v", ids[4], ids[5], err)
	}
	e.waitActive()
	t.Logf("merged %s and %s", ids[4], ids[5])

	// The 9 open shards spread over the two replicas; the children are being read.
	e.waitBalanced(60*time.Second, replicaNames(1, 2), []int{5, 4})
	time.Sleep(2 * time.Second)
	f.finish()
	e.settle(f, 90*time.Second)
	rows := e.assertExactlyOnce(f)

	all, err := streamtest.Shards(ctx, e.Kinesis, e.Stream)
	if err != nil {
		t.Fatal(err)
	}
	parents := map[string][]string{} // child -> its parents
	for _, s := range all {
		id := aws.ToString(s.ShardId)
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p != nil {
				parents[id] = append(parents[id], *p)
			}
		}
	}
	if len(parents) != 5 {
		t.Fatalf("%d shards with parents after two splits and a merge, want 5", len(parents))
	}
	cps, err := e.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	firstLoad := map[string]time.Time{} // shard -> its earliest row's commit
	for _, r := range rows {
		if at, ok := firstLoad[r.Shard]; !ok || r.LoadedAt.Before(at) {
			firstLoad[r.Shard] = r.LoadedAt
		}
	}
	for child, ps := range parents {
		for _, p := range ps {
			cp, ok := cps[p]
			if !ok || !cp.ShardEnd {
				t.Errorf("parent %s of %s is not checkpointed as finished: %+v", p, child, cp)
				continue
			}
			if first, ok := firstLoad[child]; ok && first.Before(cp.Updated) {
				t.Errorf("child %s committed a row at %s, before its parent %s's last commit at %s",
					child, first.Format(time.RFC3339Nano), p, cp.Updated.Format(time.RFC3339Nano))
			}
		}
	}

	// Per player: consecutive games in send order are in one shard in sequence order, or
	// the later in a descendant of the earlier's shard; and committed in that order.
	ancestor := func(old, young string) bool {
		seen := map[string]bool{}
		queue := []string{young}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			for _, p := range parents[s] {
				if p == old {
					return true
				}
				if !seen[p] {
					seen[p] = true
					queue = append(queue, p)
				}
			}
		}
		return false
	}
	order := f.led.Order()
	crossings, violations := 0, 0
	for player, games := range order {
		for i := 1; i < len(games); i++ {
			prev, next := rows[games[i-1].EventID], rows[games[i].EventID]
			var problem string
			switch {
			case prev.Shard == next.Shard:
				if hashKey(t, prev.Sequence).Cmp(hashKey(t, next.Sequence)) >= 0 {
					problem = "a lower sequence number in the same shard"
				}
			case ancestor(prev.Shard, next.Shard):
				crossings++
			default:
				problem = fmt.Sprintf("shard %s, not a descendant of %s", next.Shard, prev.Shard)
			}
			if problem == "" && next.LoadedAt.Before(prev.LoadedAt) {
				problem = "committed earlier"
			}
			if problem != "" {
				if violations++; violations <= 10 {
					t.Errorf("player %d: game %s (sent after %s) has %s", player, next.GameID, prev.GameID, problem)
				}
			}
		}
	}
	if crossings == 0 {
		t.Error("no player's games crossed from a parent into a child shard: the reshard happened outside the flow")
	}
	t.Logf("per-player order held for %d players; %d consecutive games crossed a reshard", len(order), crossings)
}

// waitActive waits until the stream is ACTIVE again after a reshard.
func (e *env) waitActive() {
	e.t.Helper()
	e.WaitFor(30*time.Second, "the stream ACTIVE", func() bool {
		out, err := e.Kinesis.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.Stream)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
	})
}

// sortedByHashKey orders shard ids by the start of their hash key range.
func sortedByHashKey(shards map[string]types.Shard) []string {
	ids := make([]string, 0, len(shards))
	for id := range shards {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := new(big.Int).SetString(aws.ToString(shards[ids[i]].HashKeyRange.StartingHashKey), 10)
		b, _ := new(big.Int).SetString(aws.ToString(shards[ids[j]].HashKeyRange.StartingHashKey), 10)
		return a.Cmp(b) < 0
	})
	return ids
}

// hashKey parses a decimal hash key or sequence number.
func hashKey(t *testing.T, s string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("not a decimal number: %q", s)
	}
	return n
}
