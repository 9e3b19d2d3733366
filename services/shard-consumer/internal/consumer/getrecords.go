package consumer

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a GetRecords answer by reading its body into a buffer that grows by
// doubling, then walking its schema record by record (a third of the consumer's CPU while
// draining). This is a decoder for the one shape that answer has: the body read once into
// a buffer of its Content-Length (pooled), every record's data decoded from base64 into one
// block per answer, its strings into one string per answer, its pointers into one block
// each. Anything it does not fully understand — an error status, an unknown or null member,
// an escape in a string, a non-ASCII byte, a number of another form — goes to the SDK's own
// decoder with the same bytes, so the answer and its errors are the SDK's.

// fastGetRecords is a GetRecords option that decodes the answer with decodeGetRecords.
func fastGetRecords(o *kinesis.Options) {
	if o.Protocol != nil {
		o.Protocol = getRecordsProtocol{ClientProtocol: o.Protocol}
	}
}

// getRecordsProtocol is the client's protocol with the successful GetRecords answers
// decoded by decodeGetRecords.
type getRecordsProtocol struct {
	smithyhttp.ClientProtocol
}

func (p getRecordsProtocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	answer, ok := out.(*kinesis.GetRecordsOutput)
	if !ok || resp.StatusCode != 200 || resp.Body == nil {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	buf := getRecordsBuffers.Get().(*getRecordsBuffer)
	defer getRecordsBuffers.Put(buf)
	body, err := buf.read(resp.Body, resp.ContentLength)
	if err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("read GetRecords answer: %w", err)}
	}
	if err := buf.decode(body, answer); err == nil {
		return nil
	}
	// Not the shape this decoder knows: the SDK decodes the same bytes, and answers its
	// own error if they are not an answer at all.
	*answer = kinesis.GetRecordsOutput{}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
}

// errNotFast: the answer is not in the shape decodeGetRecords reads; the SDK decodes it.
var errNotFast = errors.New("GetRecords answer outside the fast decoder's shape")

// getRecordsBuffer is what decoding one answer needs and can reuse for the next: the body,
// and where each record's members are in it.
type getRecordsBuffer struct {
	body    []byte
	records []recordSpans
}

var getRecordsBuffers = sync.Pool{New: func() any { return &getRecordsBuffer{} }}

// maxPooledBody is the largest body buffer kept for the next answer; a larger one (an
// answer of more than the default records) is left to the collector.
const maxPooledBody = 8 << 20

// read reads the whole body into the buffer, sized by its length when the server tells it.
func (b *getRecordsBuffer) read(r io.Reader, length int64) ([]byte, error) {
	if cap(b.body) > maxPooledBody {
		b.body = nil
	}
	if length > 0 && length <= 64<<20 {
		if int64(cap(b.body)) < length {
			b.body = make([]byte, length)
		}
		body := b.body[:length]
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, err
		}
		// A body longer than its Content-Length is the transport's to refuse; what is
		// left is read so the connection can be reused, and the answer not trusted.
		if n, _ := io.Copy(io.Discard, r); n > 0 {
			return nil, fmt.Errorf("body longer than its Content-Length %d", length)
		}
		return body, nil
	}
	w := bytes.NewBuffer(b.body[:0])
	if _, err := w.ReadFrom(r); err != nil {
		return nil, err
	}
	b.body = w.Bytes()
	return b.body, nil
}

// span is [from, to) in the body; to == 0 when the member was absent.
type span struct{ from, to int }

func (s span) present() bool { return s.to > 0 }

// recordSpans is where one record's members are in the body.
type recordSpans struct {
	data, partitionKey, sequenceNumber, encryptionType span
	arrived                                            float64
	hasArrived                                         bool
}

// decode decodes body into out, or returns errNotFast (out then holds a partial answer).
func (b *getRecordsBuffer) decode(body []byte, out *kinesis.GetRecordsOutput) error {
	s := scanner{b: body}
	b.records = b.records[:0]
	var nextIterator span
	var millisBehind *int64
	var childShards []types.ChildShard
	recordsSeen := false
	if !s.object(func(key []byte) bool {
		switch string(key) {
		case "Records":
			recordsSeen = true
			b.records = b.records[:0]
			return s.array(func() bool {
				var rec recordSpans
				ok := s.object(func(key []byte) bool {
					switch string(key) {
					case "Data":
						return s.base64Str(&rec.data)
					case "PartitionKey":
						return s.str(&rec.partitionKey)
					case "SequenceNumber":
						return s.str(&rec.sequenceNumber)
					case "EncryptionType":
						return s.str(&rec.encryptionType)
					case "ApproximateArrivalTimestamp":
						rec.hasArrived = true
						return s.float(&rec.arrived)
					}
					return false
				})
				b.records = append(b.records, rec)
				return ok
			})
		case "NextShardIterator":
			return s.str(&nextIterator)
		case "MillisBehindLatest":
			millisBehind = new(int64)
			return s.int(millisBehind)
		case "ChildShards":
			childShards = make([]types.ChildShard, 0)
			return s.array(func() bool {
				shard, ok := s.childShard()
				childShards = append(childShards, shard)
				return ok
			})
		}
		return false
	}) || !s.end() {
		return errNotFast
	}
	// Every member is where it should be: build the answer from the spans, each kind of
	// thing in one allocation.
	dataLen, textLen := 0, nextIterator.to-nextIterator.from
	for i := range b.records {
		rec := &b.records[i]
		n, err := decodedLen(body[rec.data.from:rec.data.to])
		if err != nil {
			return errNotFast
		}
		dataLen += n
		textLen += rec.partitionKey.to - rec.partitionKey.from + rec.sequenceNumber.to - rec.sequenceNumber.from
		if !isEncryptionConstant(body[rec.encryptionType.from:rec.encryptionType.to]) {
			textLen += rec.encryptionType.to - rec.encryptionType.from
		}
	}
	data := make([]byte, dataLen)
	var text strings.Builder
	text.Grow(textLen)
	spanText := func(sp span) (from, to int) {
		from = text.Len()
		text.Write(body[sp.from:sp.to])
		return from, text.Len()
	}
	type textSpans struct{ partitionKey, sequenceNumber, encryptionType [2]int }
	texts := make([]textSpans, len(b.records))
	var iterator [2]int
	if nextIterator.present() {
		iterator[0], iterator[1] = spanText(nextIterator)
	}
	records := make([]types.Record, len(b.records))
	var strs []string
	var times []time.Time
	for i := range b.records {
		rec, t := &b.records[i], &texts[i]
		if rec.partitionKey.present() {
			t.partitionKey[0], t.partitionKey[1] = spanText(rec.partitionKey)
		}
		if rec.sequenceNumber.present() {
			t.sequenceNumber[0], t.sequenceNumber[1] = spanText(rec.sequenceNumber)
		}
		if rec.encryptionType.present() && !isEncryptionConstant(body[rec.encryptionType.from:rec.encryptionType.to]) {
			t.encryptionType[0], t.encryptionType[1] = spanText(rec.encryptionType)
		}
	}
	all := text.String()
	for i := range b.records {
		rec, t, r := &b.records[i], &texts[i], &records[i]
		if rec.data.present() {
			n, err := base64.StdEncoding.Decode(data, body[rec.data.from:rec.data.to])
			if err != nil {
				return errNotFast
			}
			r.Data, data = data[:n:n], data[n:]
		}
		if rec.partitionKey.present() || rec.sequenceNumber.present() {
			if strs == nil {
				strs = make([]string, 2*len(b.records))
			}
			if rec.partitionKey.present() {
				strs[2*i] = all[t.partitionKey[0]:t.partitionKey[1]]
				r.PartitionKey = &strs[2*i]
			}
			if rec.sequenceNumber.present() {
				strs[2*i+1] = all[t.sequenceNumber[0]:t.sequenceNumber[1]]
				r.SequenceNumber = &strs[2*i+1]
			}
		}
		if rec.encryptionType.present() {
			if et, ok := encryptionConstant(body[rec.encryptionType.from:rec.encryptionType.to]); ok {
				r.EncryptionType = et
			} else {
				r.EncryptionType = types.EncryptionType(all[t.encryptionType[0]:t.encryptionType[1]])
			}
		}
		if rec.hasArrived {
			if times == nil {
				times = make([]time.Time, len(b.records))
			}
			at, ok := epochSeconds(rec.arrived)
			if !ok {
				return errNotFast
			}
			times[i] = at
			r.ApproximateArrivalTimestamp = &times[i]
		}
	}
	if recordsSeen {
		out.Records = records
	}
	if nextIterator.present() {
		it := all[iterator[0]:iterator[1]]
		out.NextShardIterator = &it
	}
	out.MillisBehindLatest = millisBehind
	out.ChildShards = childShards
	return nil
}

// epochSeconds is smithytime.ParseEpochSeconds without its big.Float: the float64 product
// by 1000 is the same correctly rounded product at the same 53-bit precision, and both
// truncate it toward zero. Outside int64 milliseconds the two would differ: not fast.
func epochSeconds(seconds float64) (time.Time, bool) {
	ms := seconds * 1e3
	if !(ms > -(1<<63) && ms < 1<<63) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ms)*1e6).UTC(), true
}

// decodedLen is how many bytes the standard base64 text src decodes to (without checking
// it: Decode does).
func decodedLen(src []byte) (int, error) {
	if len(src)%4 != 0 {
		return 0, errNotFast
	}
	n := len(src) / 4 * 3
	if len(src) > 0 && src[len(src)-1] == '=' {
		n--
		if src[len(src)-2] == '=' {
			n--
		}
	}
	return n, nil
}

func isEncryptionConstant(b []byte) bool { _, ok := encryptionConstant(b); return ok }

// encryptionConstant is the SDK's constant for an encryption type, so the common ones take
// no text.
func encryptionConstant(b []byte) (types.EncryptionType, bool) {
	switch string(b) {
	case string(types.EncryptionTypeNone):
		return types.EncryptionTypeNone, true
	case string(types.EncryptionTypeKms):
		return types.EncryptionTypeKms, true
	}
	return "", false
}

// scanner reads the JSON of a GetRecords answer. Each method returns false when what is
// there is not what it reads; the caller then gives the answer to the SDK.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips spaces and the byte c.
func (s *scanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end: nothing but spaces left.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// object reads {"key": value, ...}, member calling back with each key to read its value.
func (s *scanner) object(member func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		var key span
		if !s.str(&key) || !s.consume(':') || !member(s.b[key.from:key.to]) {
			return false
		}
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// array reads [value, ...], element reading each value.
func (s *scanner) array(element func() bool) bool {
	if !s.consume('[') {
		return false
	}
	if s.consume(']') {
		return true
	}
	for {
		if !element() {
			return false
		}
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// str reads a string of printable ASCII without escapes into sp (its text, unquoted).
func (s *scanner) str(sp *span) bool {
	if !s.consume('"') {
		return false
	}
	from := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			*sp = span{from: from, to: s.i}
			s.i++
			// to == 0 means absent: an empty string at the body's start cannot happen
			// (a string is never first), so to > 0 here.
			return true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return false
		}
		s.i++
	}
	return false
}

// base64Str is str for base64 text, the bulk of an answer, found with one search for its
// closing quote: whatever else would make it something str refuses (an escape, a control
// or non-ASCII byte) is outside the base64 alphabet, so decoding it fails and the answer
// goes to the SDK — except line breaks, which the decoder skips, so they are looked for.
func (s *scanner) base64Str(sp *span) bool {
	if !s.consume('"') {
		return false
	}
	from := s.i
	n := bytes.IndexByte(s.b[from:], '"')
	if n < 0 {
		return false
	}
	text := s.b[from : from+n]
	if bytes.IndexByte(text, '\n') >= 0 || bytes.IndexByte(text, '\r') >= 0 {
		return false
	}
	*sp = span{from: from, to: from + n}
	s.i = from + n + 1
	return true
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() ([]byte, bool) {
	s.space()
	from := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	start := s.i
	if n := digits(); n == 0 || (n > 1 && s.b[start] == '0') {
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return s.b[from:s.i], true
}

// int reads an integer of at most 18 digits (no fraction, no exponent).
func (s *scanner) int(v *int64) bool {
	text, ok := s.number()
	if !ok {
		return false
	}
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	if len(text) == 0 || len(text) > 18 {
		return false
	}
	var n int64
	for _, c := range text {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	*v = n
	return true
}

// float reads a number as a float64 (the SDK's reading of epoch seconds).
func (s *scanner) float(v *float64) bool {
	text, ok := s.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return false
	}
	*v = f
	return true
}

// childShard reads one of ChildShards (rare: once per closed shard, so plainly).
func (s *scanner) childShard() (types.ChildShard, bool) {
	var shard types.ChildShard
	text := func(dst **string) bool {
		var sp span
		if !s.str(&sp) {
			return false
		}
		v := string(s.b[sp.from:sp.to])
		*dst = &v
		return true
	}
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "ShardId":
			return text(&shard.ShardId)
		case "ParentShards":
			shard.ParentShards = make([]string, 0)
			return s.array(func() bool {
				var sp span
				if !s.str(&sp) {
					return false
				}
				shard.ParentShards = append(shard.ParentShards, string(s.b[sp.from:sp.to]))
				return true
			})
		case "HashKeyRange":
			shard.HashKeyRange = &types.HashKeyRange{}
			return s.object(func(key []byte) bool {
				switch string(key) {
				case "StartingHashKey":
					return text(&shard.HashKeyRange.StartingHashKey)
				case "EndingHashKey":
					return text(&shard.HashKeyRange.EndingHashKey)
				}
				return false
			})
		}
		return false
	})
	return shard, ok
}
