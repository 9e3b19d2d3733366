// Package throttleproxy is an HTTP proxy in front of kinesalite that throttles PutRecords
// the way Kinesis does, for tests: kinesalite itself never throttles. Unlike
// testutil/flakystream, it sits on the wire, so the gateway's production Kinesis client
// parses real throttling answers.
//
// By configuration it answers a share of PutRecords calls with HTTP 400 and a
// ProvisionedThroughputExceededException (the call is not forwarded: nothing of it is
// stored), and fails a share of the entries of the other calls with the per-entry error
// code ProvisionedThroughputExceededException (those entries are not forwarded either, as
// Kinesis does not store a failed entry; the others are, and the answer merges
// kinesalite's). Every other request passes through unchanged.
package throttleproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

const (
	putRecordsTarget = "Kinesis_20131202.PutRecords"
	throttledCode    = "ProvisionedThroughputExceededException"
	amzJSON          = "application/x-amz-json-1.1"
)

// Config says what to throttle. Shares are exact, not random: with a share s, the n-th
// call (or entry) fails when floor((n+1)·s) > floor(n·s), so s = 0.5 fails every second one
// and 1 fails all.
type Config struct {
	// ThrottleCallShare is the share of PutRecords calls answered with HTTP 400
	// ProvisionedThroughputExceededException.
	ThrottleCallShare float64
	// FailEntryShare is the share of the entries of the calls not throttled whole that fail
	// with ErrorCode ProvisionedThroughputExceededException.
	FailEntryShare float64
}

// ThrottleAll throttles every PutRecords call.
var ThrottleAll = Config{ThrottleCallShare: 1}

// Call is one PutRecords call the proxy saw.
type Call struct {
	// EventIDs are the event ids of the call's entries, in order (decoded from the
	// envelopes; empty for a record that is not an envelope).
	EventIDs []string
	// Throttled says the whole call was answered with HTTP 400.
	Throttled bool
	// Failed are the event ids of the entries failed with a per-entry error.
	Failed []string
}

// Proxy is a running throttling proxy.
type Proxy struct {
	// Endpoint is the proxy's URL, to use as the Kinesis endpoint.
	Endpoint string

	mu       sync.Mutex
	cfg      Config
	calls    []Call
	nCalls   int // PutRecords calls counted for ThrottleCallShare
	nEntries int // entries counted for FailEntryShare
}

// Start runs a proxy to the Kinesis endpoint upstream (kinesalite) on 127.0.0.1 until the
// test ends.
func Start(t testing.TB, upstream string, cfg Config) *Proxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("throttleproxy: upstream %q: %v", upstream, err)
	}
	p := &Proxy{cfg: cfg}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: p.mergeFailedEntries,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// Mostly the gateway cutting a call off at its deadline: answer as a proxy
			// does, without logging (the gateway never sees this answer).
			http.Error(w, fmt.Sprintf("throttleproxy: %v", err), http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != putRecordsTarget {
			rp.ServeHTTP(w, r)
			return
		}
		p.putRecords(w, r, rp)
	}))
	t.Cleanup(srv.Close)
	p.Endpoint = srv.URL
	return p
}

// Configure changes what is throttled from now on.
func (p *Proxy) Configure(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
}

// Calls returns the PutRecords calls seen so far.
func (p *Proxy) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// picks reports whether the n-th of a sequence is picked with the given share.
func picks(n int, share float64) bool {
	return int(float64(n+1)*share) > int(float64(n)*share)
}

type putRecordsRequest struct {
	StreamName string
	StreamARN  string `json:",omitempty"`
	Records    []json.RawMessage
}

type requestEntry struct {
	Data         []byte // base64 in JSON
	PartitionKey string
}

type resultEntry struct {
	SequenceNumber string `json:",omitempty"`
	ShardId        string `json:",omitempty"` //nolint:revive // the Kinesis JSON name
	ErrorCode      string `json:",omitempty"`
	ErrorMessage   string `json:",omitempty"`
}

type putRecordsResponse struct {
	FailedRecordCount int
	Records           []resultEntry
	EncryptionType    string `json:",omitempty"`
}

// failedKey carries, from putRecords to mergeFailedEntries, which entries of the original
// call were failed and not forwarded.
type failedKey struct{}

func (p *Proxy) putRecords(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, fmt.Sprintf("throttleproxy: read request: %v", err), http.StatusBadGateway)
		return
	}
	var in putRecordsRequest
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, fmt.Sprintf("throttleproxy: PutRecords request: %v", err), http.StatusBadRequest)
		return
	}
	call := Call{EventIDs: make([]string, len(in.Records))}
	for i, raw := range in.Records {
		var e requestEntry
		if err := json.Unmarshal(raw, &e); err == nil {
			if env, _, err := statevent.DecodeEnvelope(e.Data); err == nil {
				call.EventIDs[i] = env.GetEventId()
			}
		}
	}

	p.mu.Lock()
	call.Throttled = picks(p.nCalls, p.cfg.ThrottleCallShare)
	p.nCalls++
	failed := make([]bool, len(in.Records))
	if !call.Throttled {
		for i := range failed {
			failed[i] = picks(p.nEntries, p.cfg.FailEntryShare)
			p.nEntries++
			if failed[i] {
				call.Failed = append(call.Failed, call.EventIDs[i])
			}
		}
	}
	p.calls = append(p.calls, call)
	p.mu.Unlock()

	if call.Throttled {
		writeAmzJSON(w, http.StatusBadRequest, map[string]string{
			"__type":  throttledCode,
			"message": fmt.Sprintf("Rate exceeded for shard shardId-000000000000 in stream %s under account 000000000000.", in.StreamName),
		})
		return
	}
	if len(call.Failed) == len(in.Records) {
		// Nothing to forward: answer for kinesalite.
		out := putRecordsResponse{FailedRecordCount: len(in.Records), Records: make([]resultEntry, len(in.Records))}
		for i := range out.Records {
			out.Records[i] = throttledEntry()
		}
		writeAmzJSON(w, http.StatusOK, out)
		return
	}
	forward := putRecordsRequest{StreamName: in.StreamName, StreamARN: in.StreamARN}
	for i, raw := range in.Records {
		if !failed[i] {
			forward.Records = append(forward.Records, raw)
		}
	}
	fwdBody, err := json.Marshal(forward)
	if err != nil {
		http.Error(w, fmt.Sprintf("throttleproxy: encode request: %v", err), http.StatusInternalServerError)
		return
	}
	out := r.Clone(context.WithValue(r.Context(), failedKey{}, failed))
	out.Body = io.NopCloser(bytes.NewReader(fwdBody))
	out.ContentLength = int64(len(fwdBody))
	out.Header.Set("Content-Length", strconv.Itoa(len(fwdBody)))
	// The answer is rewritten, so it must come uncompressed: without this header the
	// proxy's transport asks for gzip itself and decompresses transparently.
	out.Header.Del("Accept-Encoding")
	rp.ServeHTTP(w, out)
}

// mergeFailedEntries puts the entries the proxy failed back into kinesalite's PutRecords
// answer, at their places.
func (p *Proxy) mergeFailedEntries(resp *http.Response) error {
	failed, ok := resp.Request.Context().Value(failedKey{}).([]bool)
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("throttleproxy: read PutRecords answer: %w", err)
	}
	if err := resp.Body.Close(); err != nil {
		return fmt.Errorf("throttleproxy: close PutRecords answer: %w", err)
	}
	var upstream putRecordsResponse
	if err := json.Unmarshal(data, &upstream); err != nil {
		return fmt.Errorf("throttleproxy: PutRecords answer %q: %w", data, err)
	}
	merged := putRecordsResponse{FailedRecordCount: upstream.FailedRecordCount, EncryptionType: upstream.EncryptionType,
		Records: make([]resultEntry, len(failed))}
	next := 0
	for i, f := range failed {
		if f {
			merged.Records[i] = throttledEntry()
			merged.FailedRecordCount++
			continue
		}
		if next >= len(upstream.Records) {
			return fmt.Errorf("throttleproxy: kinesalite answered %d entries, fewer than forwarded", len(upstream.Records))
		}
		merged.Records[i] = upstream.Records[next]
		next++
	}
	body, err := json.Marshal(merged)
	if err != nil {
		return fmt.Errorf("throttleproxy: encode PutRecords answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("X-Amz-Crc32") // the checksum was kinesalite's body's
	return nil
}

func throttledEntry() resultEntry {
	return resultEntry{ErrorCode: throttledCode, ErrorMessage: "Rate exceeded for shard shardId-000000000000 in stream under account 000000000000."}
}

func writeAmzJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		http.Error(w, fmt.Sprintf("throttleproxy: encode answer: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", amzJSON)
	w.Header().Set("X-Amzn-Requestid", "throttleproxy-"+strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data) // the client went away: nothing to do, as with Kinesis
}
