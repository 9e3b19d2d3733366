package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// report is everything one run measured; it is printed as a table and written as JSON.
type report struct {
	Started  time.Time `json:"started"`
	Commit   string    `json:"commit"`
	Machine  machine   `json:"machine"`
	Settings options   `json:"-"`
	Config   struct {
		Events, Shards, Players, HTTPProducers, GRPCProducers, RequestEvents int
		FreshnessSeconds                                                     float64
		Seed                                                                 uint64
		RaceBuilds                                                           bool
	} `json:"config"`
	Stream string `json:"stream"`

	Gateway             float64            `json:"gatewayEventsPerSecond"`
	GatewayWhileLoading float64            `json:"gatewayWhileLoadingEventsPerSecond"`
	Drain               float64            `json:"drainRowsPerSecond"`
	DrainSeconds        float64            `json:"drainSeconds"`
	EndToEnd            float64            `json:"endToEndRowsPerSecond"`
	Freshness           []freshness        `json:"freshness"`
	CPU                 []phaseCPU         `json:"cpu"`
	PeakRSSMiB          map[string]float64 `json:"peakRssMiB"`
	Soak                *soakResult        `json:"soak,omitempty"`

	// GatewayRetries and GatewayWhileLoadingRetries are the requests the producers of
	// phases 1 and 3 sent again, by the answer that made them (e.g. "grpc Unavailable").
	GatewayRetries             map[string]int `json:"gatewayRetries"`
	GatewayWhileLoadingRetries map[string]int `json:"gatewayWhileLoadingRetries"`

	Ceilings ceilings `json:"ceilings"`
	Targets  []target `json:"targets"`
}

type machine struct {
	CPUs     int    `json:"cpus"`
	MemMiB   int64  `json:"memMiB"`
	CPUModel string `json:"cpuModel"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
}

type freshness struct {
	Phase     string  `json:"phase"`
	AskedRate float64 `json:"askedEventsPerSecond"`
	SentRate  float64 `json:"sentEventsPerSecond"`
	Events    int     `json:"events"`
	P50       float64 `json:"p50Seconds"`
	P95       float64 `json:"p95Seconds"`
	P99       float64 `json:"p99Seconds"`
	Max       float64 `json:"maxSeconds"`
}

// phaseCPU is the CPU every process used in one phase, per 10,000 of its events.
type phaseCPU struct {
	Phase          string             `json:"phase"`
	Events         int                `json:"events"`
	Seconds        map[string]float64 `json:"cpuSeconds"`
	Per10k         map[string]float64 `json:"cpuSecondsPer10kEvents"`
	PipelinePer10k float64            `json:"consumerTransformerLoaderPer10kEvents"`
}

type ceilings struct {
	GetRecords          float64 `json:"rawGetRecordsPerSecond"`
	GetRecordsRecords   int     `json:"rawGetRecordsRecords"`
	PutRecords          float64 `json:"rawPutRecordsPerSecond"`
	PutRecordsRecords   int     `json:"rawPutRecordsRecords"`
	PutRecordsSmall     float64 `json:"rawPutRecordsAtRequestSizePerSecond"`
	PutRecordsSmallSize int     `json:"rawPutRecordsAtRequestSizeRecordsPerCall"`
	Postgres            float64 `json:"rawPostgresCopyUpsertRowsPerSecond"`
	PostgresRows        int     `json:"rawPostgresRows"`
	RecordBytes         float64 `json:"averageRecordBytes"`
	KinesisLimit        float64 `json:"kinesisReadLimitRecordsPerSecond"`
	KinesisLimitPerNote string  `json:"kinesisReadLimitNote"`
}

func newReport(o options) *report {
	r := &report{Started: time.Now().UTC(), Settings: o, PeakRSSMiB: map[string]float64{}}
	r.Config.Events, r.Config.Shards, r.Config.Players = o.events, o.shards, o.players
	r.Config.HTTPProducers, r.Config.GRPCProducers, r.Config.RequestEvents = o.httpProd, o.grpcProd, o.batch
	r.Config.FreshnessSeconds, r.Config.Seed, r.Config.RaceBuilds = o.freshFor.Seconds(), o.seed, o.race
	r.Commit = command("git", "describe", "--always", "--dirty") + " (working tree)"
	r.Machine = machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Kernel: command("uname", "-r"),
		CPUModel: cpuModel(), MemMiB: memTotalMiB(), Postgres: command("psql", "--version")}
	return r
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotalMiB() int64 {
	data, _ := os.ReadFile("/proc/meminfo")
	var kib int64
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			_, _ = fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kib)
		}
	}
	return kib / 1024
}

var pipelineServices = []string{stack.Consumer, stack.Transformer, stack.Loader}

func (r *report) addCPU(phase string, events int, before, after cpuSnapshot) {
	c := phaseCPU{Phase: phase, Events: events, Seconds: map[string]float64{}, Per10k: map[string]float64{}}
	add := func(name string, seconds float64) {
		c.Seconds[name] += seconds
		c.Per10k[name] += seconds / float64(events) * 10000
	}
	// A process missing before started during the phase (the consumer in the drain, a
	// new PostgreSQL backend): all its CPU is the phase's.
	for name, v := range after.procs {
		add(name, v-before.procs[name])
	}
	add(postgresName, 0)
	for pid, v := range after.postgres {
		add(postgresName, v-before.postgres[pid])
	}
	for _, s := range pipelineServices {
		c.PipelinePer10k += c.Per10k[s]
	}
	r.CPU = append(r.CPU, c)
}

// memory records each service's and kinesalite's peak resident set (VmHWM: the most it
// held since it started; every process has run every phase by now).
func (r *report) memory(p *procs) {
	for name, pid := range p.pids {
		_, peak, err := memoryKiB(pid)
		if err != nil {
			p.t.Errorf("memory of %s: %v", name, err)
			continue
		}
		r.PeakRSSMiB[name] = float64(peak) / 1024
	}
}

func (r *report) ceilings(ctx context.Context, t *benchTB, p *stack.Pipeline, kl *kinesalitetest.Server, o options) {
	client := bareKinesis(kl.Endpoint, 32)

	read, err := readStream(ctx, client, p.Stream)
	if err != nil {
		t.Fatalf("raw GetRecords: %v", err)
	}
	c := &r.Ceilings
	c.GetRecordsRecords = len(read.Records)
	c.GetRecords = float64(len(read.Records)) / read.Elapsed.Seconds()
	c.RecordBytes = float64(read.Bytes) / float64(len(read.Records))
	c.KinesisLimit = kinesisLimitRecordsPerSecond(o.shards, c.RecordBytes)
	c.KinesisLimitPerNote = fmt.Sprintf("%d shards x min(2 MiB/s / %.0f B, 5 calls/s x 10,000 records)", o.shards, c.RecordBytes)

	// The backlog's size, taken evenly from the records read (shard by shard, so each
	// shard keeps its share).
	n := min(o.events, len(read.Records))
	sample := make([]types.Record, 0, n)
	for i := range n {
		sample = append(sample, read.Records[i*len(read.Records)/n])
	}
	ceilingStream := kinesalitetest.UniqueName(t) + "-ceiling"
	kl.CreateStream(t, ceilingStream, int32(o.shards))
	elapsed, err := putAll(ctx, client, ceilingStream, sample, o.httpProd+o.grpcProd, maxRecordsPerPut)
	if err != nil {
		t.Fatalf("raw PutRecords: %v", err)
	}
	c.PutRecordsRecords = n
	c.PutRecords = float64(n) / elapsed.Seconds()
	// Again with the producers' request size, which is what the gateway can put per call
	// (it writes each request's events in one PutRecords): how much of the gap to the raw
	// rate is kinesalite's cost per call. Half the records, into a stream of its own.
	if o.batch < maxRecordsPerPut {
		smallStream := kinesalitetest.UniqueName(t) + "-ceiling-small"
		kl.CreateStream(t, smallStream, int32(o.shards))
		half := sample[:n/2]
		elapsed, err := putAll(ctx, client, smallStream, half, o.httpProd+o.grpcProd, o.batch)
		if err != nil {
			t.Fatalf("raw PutRecords of %d: %v", o.batch, err)
		}
		c.PutRecordsSmall, c.PutRecordsSmallSize = float64(len(half))/elapsed.Seconds(), o.batch
	}

	conn := p.DB
	all, err := warehouseRows(ctx, conn)
	if err != nil {
		t.Fatalf("%v", err)
	}
	m := min(o.events, len(all))
	rowsSample := make([][]any, 0, m)
	for i := range m {
		rowsSample = append(rowsSample, all[i*len(all)/m])
	}
	pgElapsed, err := pgCeiling(ctx, databaseURL(p), rowsSample, o.shards, o.ceilingBatch)
	if err != nil {
		t.Fatalf("raw PostgreSQL: %v", err)
	}
	c.PostgresRows = m
	c.Postgres = float64(m) / pgElapsed.Seconds()
}

// databaseURL is the pipeline's warehouse database, as its pool was configured.
func databaseURL(p *stack.Pipeline) string { return p.DB.Config().ConnString() }

// retried says how many requests were sent again and why ("" when none were).
func retried(n map[string]int) string {
	if len(n) == 0 {
		return ""
	}
	whys := make([]string, 0, len(n))
	total := 0
	for why, k := range n {
		whys = append(whys, fmt.Sprintf("%s x%d", why, k))
		total += k
	}
	sort.Strings(whys)
	return fmt.Sprintf("; %d requests retried (%s)", total, strings.Join(whys, ", "))
}

func ratio(v, ceiling float64) string {
	if ceiling <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*v/ceiling)
}

// gap says how a figure stands against the target (higher is better unless
// lower is set).
func gap(v, target float64, lower bool) string {
	met := v >= target
	if lower {
		met = v <= target
	}
	if met {
		return "met"
	}
	if lower {
		return fmt.Sprintf("missed: %.2fx the target", v/target)
	}
	return fmt.Sprintf("missed: %.0f%% of the target", 100*v/target)
}

func (r *report) print(out io.Writer) {
	c := r.Ceilings
	fmt.Fprintf(out, "\nBoxscore bench  %s  commit %s\n%d events (+%d end to end), %d shards, %d players, %d HTTP + %d gRPC producers x %d events/request%s\n",
		r.Started.Format(time.RFC3339), r.Commit, r.Config.Events, r.Config.Events/2, r.Config.Shards, r.Config.Players,
		r.Config.HTTPProducers, r.Config.GRPCProducers, r.Config.RequestEvents, map[bool]string{true: "  (RACE BUILDS: not comparable)"}[r.Config.RaceBuilds])
	fmt.Fprintf(out, "machine: %d CPUs (%s), %d MiB, kernel %s, %s, %s\n\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemMiB, r.Machine.Kernel, r.Machine.Go, r.Machine.Postgres)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "THROUGHPUT\tmeasured\tagainst its ceiling")
	fmt.Fprintf(tw, "gateway accepted, no consumer\t%.0f ev/s\t%s of raw PutRecords%s\n", r.Gateway, ratio(r.Gateway, c.PutRecords), retried(r.GatewayRetries))
	fmt.Fprintf(tw, "gateway accepted, while loading\t%.0f ev/s\t%s of raw PutRecords%s\n", r.GatewayWhileLoading, ratio(r.GatewayWhileLoading, c.PutRecords), retried(r.GatewayWhileLoadingRetries))
	fmt.Fprintf(tw, "backlog drain\t%.0f rows/s\t%s of raw GetRecords, %s of the Kinesis read limit, %s of raw PostgreSQL\n",
		r.Drain, ratio(r.Drain, c.GetRecords), ratio(r.Drain, c.KinesisLimit), ratio(r.Drain, c.Postgres))
	fmt.Fprintf(tw, "end to end while loading\t%.0f rows/s\t%s of raw PutRecords\n", r.EndToEnd, ratio(r.EndToEnd, c.PutRecords))
	fmt.Fprintln(tw, "CEILINGS (same run)\t\t")
	fmt.Fprintf(tw, "raw PutRecords of 500 (bare SDK, %d callers)\t%.0f rec/s\t\n", r.Config.HTTPProducers+r.Config.GRPCProducers, c.PutRecords)
	if c.PutRecordsSmallSize > 0 {
		fmt.Fprintf(tw, "raw PutRecords of %d (the request size)\t%.0f rec/s\tgateway (no consumer) at %s of it\n", c.PutRecordsSmallSize, c.PutRecordsSmall, ratio(r.Gateway, c.PutRecordsSmall))
	}
	fmt.Fprintf(tw, "raw GetRecords (bare SDK, 1 reader/shard)\t%.0f rec/s\t\n", c.GetRecords)
	fmt.Fprintf(tw, "Kinesis read limit (%.0f B records)\t%.0f rec/s\t\n", c.RecordBytes, c.KinesisLimit)
	fmt.Fprintf(tw, "raw PostgreSQL COPY+upsert (%d sessions)\t%.0f rows/s\t\n", r.Config.Shards, c.Postgres)
	_ = tw.Flush()

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FRESHNESS (accepted -> committed)\tsent ev/s\tp50\tp95\tp99\tmax")
	for _, f := range r.Freshness {
		fmt.Fprintf(tw, "at %.0f ev/s\t%.0f\t%.0f ms\t%.0f ms\t%.0f ms\t%.0f ms\n", f.AskedRate, f.SentRate, 1000*f.P50, 1000*f.P95, 1000*f.P99, 1000*f.Max)
	}
	_ = tw.Flush()

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	names := []string{stack.Gateway, stack.Consumer, stack.Transformer, stack.Loader, postgresName, kinesaliteName, benchName}
	header := "CPU-s per 10k events\t"
	for _, n := range names {
		header += short(n) + "\t"
	}
	fmt.Fprintln(tw, header+"c+t+l\t")
	for _, p := range r.CPU {
		line := p.Phase + "\t"
		for _, n := range names {
			line += fmt.Sprintf("%.3f\t", p.Per10k[n])
		}
		fmt.Fprintln(tw, line+fmt.Sprintf("%.3f\t", p.PipelinePer10k))
	}
	line := "peak RSS MiB\t"
	for _, n := range names {
		if v, ok := r.PeakRSSMiB[n]; ok {
			line += fmt.Sprintf("%.0f\t", v)
		} else {
			line += "-\t"
		}
	}
	fmt.Fprintln(tw, line+"\t")
	_ = tw.Flush()
	fmt.Fprintln(out, "load gen: the bench process itself (the producers; a flooding phase's requests are rendered before it starts, and that is not counted).")

	if s := r.Soak; s != nil {
		fmt.Fprintln(out)
		fmt.Fprintf(out, "SOAK: %.0f ev/s asked, %.0f sent, for %.0f s; freshness p50 %.0f ms, p99 %.0f ms; RSS sampled every %.0f s\n",
			s.AskedRate, s.SentRate, s.Seconds, 1000*s.Freshness.P50, 1000*s.Freshness.P99, s.SampleSeconds)
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "RSS MiB\tstart\tend\tmin\tmax\tend/start\t")
		for _, n := range names {
			if v, ok := s.RSS[n]; ok {
				fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t\n", short(n), v.Start, v.End, v.Min, v.Max, v.growth())
			}
		}
		_ = tw.Flush()
	}

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGETS (issue 13)\tmeasured\tverdict")
	for _, t := range r.targets() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Target, t.Measured, t.Verdict)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nKinesis read limit: %s. The ceilings are measured after the pipeline phases, with the services idle.\n", c.KinesisLimitPerNote)
}

// target is one of issue 13's targets against this run.
type target struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"`
}

func (r *report) targets() []target {
	c := r.Ceilings
	var out []target
	add := func(name, measured string, v, want float64, lower bool) {
		out = append(out, target{name, measured, gap(v, want, lower)})
	}
	add("backlog drain >= 25,000 rows/s", fmt.Sprintf("%.0f rows/s", r.Drain), r.Drain, 25000, false)
	add("backlog drain >= 60% of raw GetRecords", ratio(r.Drain, c.GetRecords), r.Drain/c.GetRecords, 0.6, false)
	add("end to end >= 10,000 rows/s", fmt.Sprintf("%.0f rows/s", r.EndToEnd), r.EndToEnd, 10000, false)
	add("gateway >= 90% of raw PutRecords", ratio(r.Gateway, c.PutRecords), r.Gateway/c.PutRecords, 0.9, false)
	if len(r.Freshness) > 0 {
		f := r.Freshness[0]
		add(fmt.Sprintf("freshness p99 <= 350 ms at %.0f ev/s", f.AskedRate), fmt.Sprintf("%.0f ms", 1000*f.P99), f.P99, 0.35, true)
	}
	for _, p := range r.CPU {
		if p.Phase != "backlog drain" && !strings.HasPrefix(p.Phase, "end to end") {
			continue
		}
		add("consumer+transformer+loader <= 0.25 CPU-s/10k ("+p.Phase+")", fmt.Sprintf("%.3f", p.PipelinePer10k), p.PipelinePer10k, 0.25, true)
		add("PostgreSQL <= 0.15 CPU-s/10k ("+p.Phase+")", fmt.Sprintf("%.3f", p.Per10k[postgresName]), p.Per10k[postgresName], 0.15, true)
	}
	worst, who := 0.0, ""
	for name, v := range r.PeakRSSMiB {
		if name != kinesaliteName && name != benchName && v > worst {
			worst, who = v, name
		}
	}
	add("every service <= 100 MiB RSS", fmt.Sprintf("%.0f MiB (%s)", worst, short(who)), worst, 100, true)
	if s := r.Soak; s != nil {
		// Flat: no service ends the soak more than 10% above where it started it, nor
		// peaks above the memory target during it.
		growth, grower, peak, peaker := 0.0, "", 0.0, ""
		for name, v := range s.RSS {
			if name == kinesaliteName || name == benchName {
				continue
			}
			if g := v.growth(); g > growth {
				growth, grower = g, name
			}
			if v.Max > peak {
				peak, peaker = v.Max, name
			}
		}
		add(fmt.Sprintf("RSS flat over the %.0f s soak (end <= 1.10x start)", s.Seconds), fmt.Sprintf("%.2fx (%s)", growth, short(grower)), growth, 1.10, true)
		add("every service <= 100 MiB RSS during the soak", fmt.Sprintf("%.0f MiB (%s)", peak, short(peaker)), peak, 100, true)
	}
	return out
}

func short(name string) string {
	switch name {
	case benchName:
		return "load gen"
	case stack.Gateway:
		return "gateway"
	case stack.Consumer:
		return "consumer"
	}
	return name
}

func (r *report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("make the report's directory: %w", err)
	}
	r.Targets = r.targets()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
