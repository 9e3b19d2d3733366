package config

import (
	"os"
	"strings"
	"testing"
)

func TestResolveConsumerID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("explicit id is kept", func(t *testing.T) {
		t.Setenv(podNameEnv, "boxscore-shard-consumer-7d9f-abcde")
		c := Config{ConsumerID: "replica-1"}
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if c.ConsumerID != "replica-1" {
			t.Errorf("consumer id %q, want the one given", c.ConsumerID)
		}
	})

	t.Run("pod name when set", func(t *testing.T) {
		t.Setenv(podNameEnv, "boxscore-shard-consumer-7d9f-abcde")
		for range 2 { // the same for every process of the pod: a restart keeps it
			c := Config{}
			if err := c.Resolve(); err != nil {
				t.Fatal(err)
			}
			if c.ConsumerID != "boxscore-shard-consumer-7d9f-abcde" {
				t.Errorf("consumer id %q, want the pod's name", c.ConsumerID)
			}
		}
	})

	t.Run("unique per process otherwise", func(t *testing.T) {
		t.Setenv(podNameEnv, "")
		seen := map[string]bool{}
		for range 20 {
			c := Config{}
			if err := c.Resolve(); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.ConsumerID, host+"-") {
				t.Errorf("consumer id %q, want it to start with the host name %q", c.ConsumerID, host)
			}
			if seen[c.ConsumerID] {
				t.Errorf("consumer id %q made twice: two processes of one host could share it", c.ConsumerID)
			}
			seen[c.ConsumerID] = true
		}
	})
}
