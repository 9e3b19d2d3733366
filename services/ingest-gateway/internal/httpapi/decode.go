package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// malformedError locates a batch element that is not a StatEvent.
type malformedError struct {
	index int // position in the batch; -1 when the body is not even a list
	line  int // 1-based NDJSON line, 0 for a JSON array
	err   error
}

func (e *malformedError) Error() string {
	switch {
	case e.index < 0:
		return e.err.Error()
	case e.line > 0:
		return fmt.Sprintf("event %d (line %d): %v", e.index, e.line, e.err)
	default:
		return fmt.Sprintf("event %d: %v", e.index, e.err)
	}
}

func (e *malformedError) Unwrap() error { return e.err }

// tooManyEventsError says the batch has more events than allowed; decoding stopped there.
type tooManyEventsError struct{ limit int }

func (e *tooManyEventsError) Error() string {
	return fmt.Sprintf("the batch has more than %d events", e.limit)
}

// decodeJSONArray reads a JSON array of StatEvent objects, stopping as soon as it has more
// than maxEvents elements. Read errors (such as *http.MaxBytesError) are returned as they are.
//
// A body of plain events is read by fastDecodeArray, at a third of the CPU of
// decodeJSONArrayStream, which tokenizes every element with encoding/json before protojson
// (or the fast reader) reads it again (issue 13). Any other body, and a body whose reading
// failed, is replayed to decodeJSONArrayStream, bytes then read error, so that the answer is
// the one it always gave (FuzzDecodeJSONArrayMatchesStream).
func decodeJSONArray(body io.Reader, maxEvents int) ([]*statsv1.StatEvent, error) {
	return decodeWhole(body, maxEvents, fastDecodeArray, decodeJSONArrayStream)
}

// decodeWhole reads body whole, then decodes it with fast, or, when fast cannot or the
// reading failed, replays it (its bytes, then the read error) to stream.
func decodeWhole(body io.Reader, maxEvents int,
	fast func([]byte, int) ([]*statsv1.StatEvent, bool),
	stream func(io.Reader, int) ([]*statsv1.StatEvent, error),
) ([]*statsv1.StatEvent, error) {
	buf, _ := bodyBuffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = &bytes.Buffer{}
	}
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	_, readErr := buf.ReadFrom(body)
	// Nothing decoded keeps data: the fast reader copies it into one string, the stream
	// decoder into its own elements.
	data := buf.Bytes()
	if readErr == nil {
		if events, ok := fast(data, maxEvents); ok {
			return events, nil
		}
	}
	var replay io.Reader = bytes.NewReader(data)
	if readErr != nil {
		replay = io.MultiReader(replay, failingReader{readErr})
	}
	return stream(replay, maxEvents)
}

// bodyBuffers are the buffers bodies are read into, reused: a body is read
// whole, then copied into the events' strings. A buffer grown past maxPooledBody by a large
// body is left to the collector rather than held.
var bodyBuffers sync.Pool

const maxPooledBody = 1 << 20

// failingReader fails every read with err: the end of a replayed body whose reading failed.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// decodeJSONArrayStream is decodeJSONArray reading the body as it arrives, element by element.
func decodeJSONArrayStream(body io.Reader, maxEvents int) ([]*statsv1.StatEvent, error) {
	dec := json.NewDecoder(body)
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(-1, err, "the body is not JSON")
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '[' {
		return nil, &malformedError{index: -1, err: errors.New("the body must be a JSON array of events")}
	}
	var events []*statsv1.StatEvent
	for dec.More() {
		index := len(events)
		if index == maxEvents {
			return nil, &tooManyEventsError{limit: maxEvents}
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(index, err, "not JSON")
		}
		ev, err := decodeEvent(raw)
		if err != nil {
			return nil, &malformedError{index: index, err: err}
		}
		events = append(events, ev)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, jsonError(-1, err, "the array is not closed")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("unexpected data after the array")
		}
		return nil, jsonError(-1, err, "the body must hold one JSON array")
	}
	return events, nil
}

// jsonError locates a JSON error. Errors from reading the body (such as *http.MaxBytesError)
// stay reachable through errors.As.
func jsonError(index int, err error, what string) error {
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &syntaxErr):
		err = fmt.Errorf("%s: %w (at byte %d)", what, err, syntaxErr.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%s: unexpected end of body", what)
	default:
		err = fmt.Errorf("%s: %w", what, err)
	}
	return &malformedError{index: index, err: err}
}

// decodeNDJSON reads one StatEvent object per line; blank lines are skipped. It stops as
// soon as it has more than maxEvents events.
//
// As decodeJSONArray, it reads the body whole and its plain events with the fast reader
// (fastDecodeNDJSON), without a copy of every line; any other body, or one whose reading
// failed, is replayed to decodeNDJSONStream (FuzzDecodeNDJSONMatchesStream).
func decodeNDJSON(body io.Reader, maxEvents int) ([]*statsv1.StatEvent, error) {
	return decodeWhole(body, maxEvents, fastDecodeNDJSON, decodeNDJSONStream)
}

// decodeNDJSONStream is decodeNDJSON reading the body as it arrives, line by line.
func decodeNDJSONStream(body io.Reader, maxEvents int) ([]*statsv1.StatEvent, error) {
	r := bufio.NewReader(body)
	var events []*statsv1.StatEvent
	for lineNo := 1; ; lineNo++ {
		line, readErr := r.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return nil, readErr
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			index := len(events)
			if index == maxEvents {
				return nil, &tooManyEventsError{limit: maxEvents}
			}
			ev, err := decodeEvent(trimmed)
			if err != nil {
				return nil, &malformedError{index: index, line: lineNo, err: err}
			}
			events = append(events, ev)
		}
		if readErr != nil { // io.EOF
			return events, nil
		}
	}
}
