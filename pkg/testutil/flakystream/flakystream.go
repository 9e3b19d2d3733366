// Package flakystream wraps a real Kinesis client (kinesalite in tests) to fail what a test
// chooses: kinesalite itself never throttles or fails single PutRecords entries.
package flakystream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/boxscore-dev/boxscore/pkg/stream"
)

// Stream is a real Kinesis client that fails chosen PutRecords entries or whole calls on the
// first calls. Everything it does not fail goes to the real client, and the records it fails
// never reach the stream, as with Kinesis. Set its fields before the first call; once calls
// may be in flight, change them only through Configure.
type Stream struct {
	stream.API // the real client

	mu sync.Mutex
	// FailEntries maps a partition key to the per-entry error code its entry gets on the
	// first FailEntryCalls PutRecords calls (-1: on every call).
	FailEntries    map[string]string
	FailEntryCalls int
	// FailWholeCalls is how many first calls fail entirely with WholeCallErr.
	FailWholeCalls int
	WholeCallErr   error
	// Block, when set, holds every call until it is closed.
	Block chan struct{}
	// calls lists, per PutRecords call, the partition keys it carried, and when it came.
	calls     [][]string
	callTimes []time.Time
}

// PutRecords records the call, holds it while Block is set, then fails what it is told to
// and passes the rest to the real client.
func (f *Stream) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	call := len(f.calls)
	keys := make([]string, len(in.Records))
	for i, r := range in.Records {
		keys[i] = aws.ToString(r.PartitionKey)
	}
	f.calls = append(f.calls, keys)
	f.callTimes = append(f.callTimes, time.Now())
	block := f.Block
	failWhole := call < f.FailWholeCalls
	var failing map[string]string
	if f.FailEntryCalls < 0 || call < f.FailEntryCalls {
		failing = f.FailEntries
	}
	wholeCallErr := f.WholeCallErr
	f.mu.Unlock()

	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if failWhole {
		return nil, wholeCallErr
	}
	if len(failing) == 0 {
		return f.API.PutRecords(ctx, in, optFns...)
	}

	forward := &kinesis.PutRecordsInput{StreamName: in.StreamName, StreamARN: in.StreamARN}
	for i, r := range in.Records {
		if _, fail := failing[keys[i]]; !fail {
			forward.Records = append(forward.Records, r)
		}
	}
	var real *kinesis.PutRecordsOutput
	if len(forward.Records) > 0 {
		var err error
		if real, err = f.API.PutRecords(ctx, forward, optFns...); err != nil {
			return nil, err
		}
		if len(real.Records) != len(forward.Records) {
			return nil, fmt.Errorf("flakystream: kinesalite answered %d entries for %d", len(real.Records), len(forward.Records))
		}
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	failed := int32(0)
	next := 0
	for i := range in.Records {
		if code, fail := failing[keys[i]]; fail {
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected by flakystream")}
			failed++
			continue
		}
		out.Records[i] = real.Records[next]
		if real.Records[next].ErrorCode != nil {
			failed++
		}
		next++
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

// Configure changes the stream's behaviour while calls may be in flight.
func (f *Stream) Configure(change func(*Stream)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// Calls lists, per PutRecords call so far, the partition keys it carried.
func (f *Stream) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.calls...)
}

// CallTimes lists when each PutRecords call came.
func (f *Stream) CallTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.callTimes...)
}

// APIError is an AWS API error as the SDK returns it.
func APIError(code string) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords",
		Err: &smithy.GenericAPIError{Code: code, Message: "injected by flakystream"}}
}

// Release unblocks the calls held by Block, and the later ones.
func (f *Stream) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Block != nil {
		close(f.Block)
		f.Block = nil
	}
}
