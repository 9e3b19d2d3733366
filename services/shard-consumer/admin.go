package main

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

// assignmentHandler serves GET /leases on the admin port: the leases this replica holds
// and the shards it is reading, with their fencing tokens.
func assignmentHandler(worker string, leases *lease.Manager, c *consumer.Consumer) http.Handler {
	type shard struct {
		ShardID string `json:"shardId"`
		Token   int64  `json:"leaseToken"`
		Reading bool   `json:"reading"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reading := c.Reading()
		var shards []shard
		for id, token := range leases.Held() {
			_, r := reading[id]
			shards = append(shards, shard{ShardID: id, Token: token, Reading: r})
		}
		sort.Slice(shards, func(i, j int) bool { return shards[i].ShardID < shards[j].ShardID })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"worker": worker, "shards": shards})
	})
}
