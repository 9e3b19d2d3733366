package consumer

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// BatchConfig says when a batch is handed downstream: whichever limit is reached first.
type BatchConfig struct {
	MaxRecords int           `name:"batch-max-records" env:"BOXSCORE_BATCH_MAX_RECORDS" default:"500" help:"Flush a batch at this many records (also the GetRecords limit)."`
	MaxBytes   int           `name:"batch-max-bytes" env:"BOXSCORE_BATCH_MAX_BYTES" default:"4194304" help:"Flush a batch at this many bytes of record data."`
	MaxAge     time.Duration `name:"batch-max-age" env:"BOXSCORE_BATCH_MAX_AGE" default:"500ms" help:"Flush a batch once its first record has waited this long."`
}

// Validate reports what is wrong with the config.
func (c BatchConfig) Validate() error {
	var errs []error
	// The bounds that keep a batch within one GetRecords answer and one Transform message
	// are the platform's (pkg/limits), checked here at start-up.
	if err := limits.CheckBatch(c.MaxRecords, c.MaxBytes); err != nil {
		errs = append(errs, fmt.Errorf("batch-max-records/batch-max-bytes: %w", err))
	}
	if c.MaxAge <= 0 {
		errs = append(errs, errors.New("batch-max-age must be positive"))
	}
	return errors.Join(errs...)
}

type batch struct {
	cfg     BatchConfig
	records []*transformv1.SourceRecord
	bytes   int
	started time.Time
	// links point at the producing span of the batch's records, one per distinct span: the
	// records of one PutRecords call share their producer's span.
	links  []trace.Link
	linked map[spanKey]bool
}

type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

func newBatch(cfg BatchConfig) *batch { return &batch{cfg: cfg} }

func (b *batch) add(r *transformv1.SourceRecord) {
	if len(b.records) == 0 {
		b.started = time.Now()
	}
	b.records = append(b.records, r)
	b.bytes += len(r.GetData())
	// A record of an older producer, without a trace context, simply adds no link.
	if link, ok := telemetry.LinkFromMap(statevent.EnvelopeTraceContext(r.GetData())); ok {
		key := spanKey{link.SpanContext.TraceID(), link.SpanContext.SpanID()}
		if !b.linked[key] {
			if b.linked == nil {
				b.linked = map[spanKey]bool{}
			}
			b.linked[key] = true
			b.links = append(b.links, link)
		}
	}
}

func (b *batch) empty() bool { return len(b.records) == 0 }

func (b *batch) full() bool {
	return len(b.records) >= b.cfg.MaxRecords || b.bytes >= b.cfg.MaxBytes
}

func (b *batch) due(now time.Time) bool {
	return !b.empty() && now.Sub(b.started) >= b.cfg.MaxAge
}

func (b *batch) reset() {
	b.records = nil
	b.bytes = 0
	b.links = nil
	b.linked = nil
}
