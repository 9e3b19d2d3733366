package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// TestWorkSpreadsOverEveryTransformerAndLoader: three transformers and two loaders run as
// the pods of headless Services do — an address each, one gRPC port — behind DNS names
// that resolve to all of them; the consumer is given the names only. Every transformer and
// every loader gets work, and the warehouse holds exactly the events sent. (With gRPC's
// default pick_first, or a ClusterIP in front, one of each would take everything.)
func TestWorkSpreadsOverEveryTransformerAndLoader(t *testing.T) {
	const (
		transformerName = "transformer.boxscore.test"
		loaderName      = "loader.boxscore.test"
	)
	transformers := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	loaders := []string{"127.0.0.5", "127.0.0.6"}
	dns := stack.StartDNS(t, map[string][]string{transformerName: transformers, loaderName: loaders})
	transformerPort, loaderPort := stack.FreePort(t, transformers...), stack.FreePort(t, loaders...)
	listen := map[string]stack.Listen{}
	for i, host := range transformers {
		listen[stack.InstanceName(stack.Transformer, i+1)] = stack.Listen{Host: host, GRPCPort: transformerPort}
	}
	for i, host := range loaders {
		listen[stack.InstanceName(stack.Loader, i+1)] = stack.Listen{Host: host, GRPCPort: loaderPort}
	}
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 4, Config: stack.Config{
		Listen: listen,
		// gRPC's DNS resolver asks the server named in the target's authority.
		TransformerTarget: fmt.Sprintf("dns://%s/%s:%d", dns.Addr, transformerName, transformerPort),
		LoaderTarget:      fmt.Sprintf("dns://%s/%s:%d", dns.Addr, loaderName, loaderPort),
	}})
	var transformerNames, loaderNames []string
	for i := range loaders {
		loaderNames = append(loaderNames, p.StartReplica(stack.Loader, i+1))
	}
	for i := range transformers {
		transformerNames = append(transformerNames, p.StartReplica(stack.Transformer, i+1))
	}
	p.Start(stack.Consumer)
	p.Start(stack.Gateway)
	p.WaitSchema()

	// Rounds of one game of three players per shard, one POST a round, each round waited
	// for: every round makes at least one batch per shard, so one Transform and one Load
	// call per shard. Rounds go on until every process got work (or 30 rounds: round
	// robin over three addresses needs a handful).
	players := stack.PlayersOverShards(t, p.Kinesis, p.Stream, 500000, 3)
	led := stack.NewLedger()
	producer := stack.NewProducer(p.GatewayURL(), led)
	rng := rand.New(rand.NewPCG(10, 10))
	received := func() (map[string]float64, bool) {
		got := map[string]float64{}
		all := true
		for _, name := range transformerNames {
			got[name] = p.Scrape(name).Sum("boxscore_transformer_records_total")
			all = all && got[name] > 0
		}
		for _, name := range loaderNames {
			got[name] = p.Scrape(name).Sum("boxscore_loader_rows_total", `outcome="inserted"`)
			all = all && got[name] > 0
		}
		return got, all
	}
	rounds := 0
	for ; rounds < 30; rounds++ {
		if _, all := received(); all && rounds >= 3 {
			break
		}
		date := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rounds)
		batch := make([]stack.Line, len(players))
		for i, id := range players {
			batch[i] = stack.RandomLine(rng, "spread", id, fmt.Sprintf("S%s0", date.Format("20060102")), date.Format("2006-01-02"), 1)
		}
		a, err := producer.Deliver(context.Background(), batch, stack.PostOptions{})
		if err != nil || a.Status != 202 {
			t.Fatalf("round %d: %v %d %s", rounds, err, a.Status, a.Body)
		}
		p.WaitFor(60*time.Second, fmt.Sprintf("the rows of round %d", rounds), func() bool { return p.CheckpointsAt(led.Acked()) })
	}

	// Every process got work, and together exactly the stream's records and rows.
	got, all := received()
	var desc []string
	transformed, inserted := 0.0, 0.0
	for _, name := range append(append([]string(nil), transformerNames...), loaderNames...) {
		desc = append(desc, fmt.Sprintf("%s (%s) %v", name, p.Ports(name).Host, got[name]))
		if strings.HasPrefix(name, stack.Transformer) {
			transformed += got[name]
		} else {
			inserted += got[name]
		}
	}
	t.Logf("after %d rounds, records transformed / rows inserted per process: %s", rounds, strings.Join(desc, ", "))
	if !all {
		p.DumpLogs()
		t.Fatalf("after %d rounds some transformer or loader got no work: %s", rounds, strings.Join(desc, ", "))
	}
	p.Settle(60 * time.Second)
	contents, err := p.ReadStream()
	if err != nil {
		t.Fatal(err)
	}
	if int(transformed) != contents.Count() {
		t.Errorf("the transformers got %v records together, the stream holds %d", transformed, contents.Count())
	}
	if int(inserted) != led.AcceptedCount() {
		t.Errorf("the loaders inserted %v rows together for %d events accepted", inserted, led.AcceptedCount())
	}
	p.AssertExactlyOnce(led)
	p.AssertEveryShardUsed(led)
	for _, name := range []string{transformerName, loaderName} {
		if dns.Queries(name) == 0 {
			t.Errorf("nobody asked the test's DNS server for %s: the consumer did not resolve through it", name)
		}
	}
}
