package consumer

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// BatchConfig says when a batch is handed downstream: whichever limit is reached first.
type BatchConfig struct {
	MaxRecords int           `name:"batch-max-records" env:"BOXSCORE_BATCH_MAX_RECORDS" default:"1000" help:"Flush a batch at this many records (GetRecords asks for get-records-limit, independently). Larger batches cost the loader and PostgreSQL less per row (a transaction, a compare-and-set and a commit per batch); a batch cut when the shard is caught up is smaller anyway."`
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
	// lastTraceContext is the previous record's trace context as encoded: the records of
	// one PutRecords call carry the same bytes, so only a change is decoded (decoding it
	// for every record was most of the reader's allocations).
	lastTraceContext []byte
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
	if b.records == nil {
		b.records = make([]*transformv1.SourceRecord, 0, min(b.cfg.MaxRecords, recordsPreallocated))
	}
	b.records = append(b.records, r)
	b.bytes += len(r.GetData())
	raw := rawTraceContext(r.GetData())
	if raw == nil || bytes.Equal(raw, b.lastTraceContext) {
		// A record of an older producer, without a trace context, adds no link; one with
		// the previous record's, no new one.
		return
	}
	b.lastTraceContext = raw
	if link, ok := telemetry.LinkFromMap(decodeTraceContext(raw)); ok {
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
	b.lastTraceContext = nil
}

// recordsPreallocated caps the room a batch reserves for its records at once (a batch of
// a huge batch-max-records grows past it by appending).
const recordsPreallocated = 1024

// envelopeTraceContextField is streamv1.Envelope's trace_context field number.
const envelopeTraceContextField = 5

// rawTraceContext is the span of an envelope's bytes from its first trace_context entry to
// its last (nil when it has none or data is no protobuf message), found without decoding
// anything else; the payload is skipped by its length.
func rawTraceContext(data []byte) []byte {
	start, end := -1, -1
	for off := 0; off < len(data); {
		num, typ, n := protowire.ConsumeTag(data[off:])
		if n < 0 {
			return nil
		}
		m := protowire.ConsumeFieldValue(num, typ, data[off+n:])
		if m < 0 {
			return nil
		}
		if num == envelopeTraceContextField {
			if start < 0 {
				start = off
			}
			end = off + n + m
		}
		off += n + m
	}
	if start < 0 {
		return nil
	}
	return data[start:end]
}

// decodeTraceContext is the trace_context map held in raw (see rawTraceContext): a pure
// function of raw, so a record whose raw bytes equal the previous one's has its link. Other
// fields inside raw are skipped; an entry that cannot be read ends the decoding.
func decodeTraceContext(raw []byte) map[string]string {
	out := map[string]string{}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return out
		}
		raw = raw[n:]
		if num != envelopeTraceContextField || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, raw)
			if m < 0 {
				return out
			}
			raw = raw[m:]
			continue
		}
		entry, m := protowire.ConsumeBytes(raw)
		if m < 0 {
			return out
		}
		raw = raw[m:]
		var key, value string
		for len(entry) > 0 {
			num, typ, n := protowire.ConsumeTag(entry)
			if n < 0 {
				return out
			}
			entry = entry[n:]
			if typ != protowire.BytesType {
				m := protowire.ConsumeFieldValue(num, typ, entry)
				if m < 0 {
					return out
				}
				entry = entry[m:]
				continue
			}
			v, m := protowire.ConsumeBytes(entry)
			if m < 0 {
				return out
			}
			entry = entry[m:]
			switch num {
			case 1:
				key = string(v)
			case 2:
				value = string(v)
			}
		}
		out[key] = value
	}
	return out
}
