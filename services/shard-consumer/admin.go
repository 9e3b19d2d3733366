package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

// heldLeases is the lease manager as /leases sees it (*lease.Manager).
type heldLeases interface{ Held() map[string]int64 }

// readingShards is the consumer as /leases sees it (*consumer.Consumer).
type readingShards interface {
	Reading() map[string]int64
	Stalled() map[string]consumer.Stall
}

// assignmentHandler serves GET /leases on the admin port: the leases this replica holds
// and the shards it is reading, with their fencing tokens, and whether each is stalled.
func assignmentHandler(worker string, leases heldLeases, c readingShards) http.Handler {
	type shard struct {
		ShardID string `json:"shardId"`
		Token   int64  `json:"leaseToken"`
		Reading bool   `json:"reading"`
		// Stalled: the shard fails without progress for longer than --stall-after.
		Stalled       bool       `json:"stalled"`
		StalledSince  *time.Time `json:"stalledSince,omitempty"`
		StalledReason string     `json:"stalledReason,omitempty"`
		StalledError  string     `json:"stalledError,omitempty"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reading := c.Reading()
		stalled := c.Stalled()
		var shards []shard
		for id, token := range leases.Held() {
			_, r := reading[id]
			s := shard{ShardID: id, Token: token, Reading: r}
			if st, ok := stalled[id]; ok {
				since := st.Since.UTC()
				s.Stalled, s.StalledSince, s.StalledReason, s.StalledError = true, &since, st.Reason, st.Op+": "+st.Err
			}
			shards = append(shards, s)
		}
		sort.Slice(shards, func(i, j int) bool { return shards[i].ShardID < shards[j].ShardID })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"worker": worker, "shards": shards})
	})
}
