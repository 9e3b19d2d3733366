package consumer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

// replayClient answers every request with one recorded answer.
type replayClient struct {
	status int
	body   []byte
}

func (c replayClient) Do(req *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", "replayed")
	return &http.Response{StatusCode: c.status, Status: http.StatusText(c.status), Header: h, Request: req,
		ContentLength: int64(len(c.body)), Body: io.NopCloser(bytes.NewReader(c.body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// decodeBoth decodes one answer through the whole SDK client twice: with its own decoder
// and with the consumer's (consumer.FastGetRecords).
func decodeBoth(t testing.TB, status int, body []byte) (sdk, fast *kinesis.GetRecordsOutput, sdkErr, fastErr error) {
	client := kinesis.New(kinesis.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:  replayClient{status: status, body: body},
	})
	in := &kinesis.GetRecordsInput{ShardIterator: aws.String("iterator")}
	sdk, sdkErr = client.GetRecords(context.Background(), in)
	fast, fastErr = client.GetRecords(context.Background(), in, consumer.FastGetRecords)
	return sdk, fast, sdkErr, fastErr
}

// checkSameDecode fails unless both decoders give the same answer, or the same error.
func checkSameDecode(t testing.TB, status int, body []byte) *kinesis.GetRecordsOutput {
	t.Helper()
	sdk, fast, sdkErr, fastErr := decodeBoth(t, status, body)
	if (sdkErr == nil) != (fastErr == nil) || (sdkErr != nil && sdkErr.Error() != fastErr.Error()) {
		t.Fatalf("answer %q: the SDK says %v, the consumer's decoder %v", body, sdkErr, fastErr)
	}
	if sdkErr != nil {
		return nil
	}
	a, b := *sdk, *fast
	a.ResultMetadata, b.ResultMetadata = middleware.Metadata{}, middleware.Metadata{}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("answer %q:\nSDK      %s\nconsumer %s", body, describe(&a), describe(&b))
	}
	return fast
}

func describe(out *kinesis.GetRecordsOutput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "next=%v behind=%v records(nil=%v)=[", ptr(out.NextShardIterator), ptr(out.MillisBehindLatest), out.Records == nil)
	for _, r := range out.Records {
		fmt.Fprintf(&b, "{data(nil=%v)=%q key=%v seq=%v at=%v enc=%q} ", r.Data == nil, r.Data, ptr(r.PartitionKey), ptr(r.SequenceNumber), ptr(r.ApproximateArrivalTimestamp), r.EncryptionType)
	}
	fmt.Fprintf(&b, "] children(nil=%v)=[", out.ChildShards == nil)
	for _, c := range out.ChildShards {
		fmt.Fprintf(&b, "{%v %q %+v} ", ptr(c.ShardId), c.ParentShards, c.HashKeyRange)
	}
	return b.String() + "]"
}

func ptr[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// recordingClient keeps the bodies of the GetRecords answers it carries.
type recordingClient struct {
	next   kinesis.HTTPClient
	mu     sync.Mutex
	bodies [][]byte
}

func (c *recordingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if err != nil || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".GetRecords") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, body)
	c.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// The consumer's decoder gives what the SDK's gives on kinesalite's answers: records of
// every size (an empty one too), the last answers of a shard split and of two shards
// merged (with their child shards), and empty answers.
func TestGetRecordsDecodeMatchesTheSDKOnKinesaliteAnswers(t *testing.T) {
	srv := kinesalitetest.Start(t)
	plain := srv.Client(t)
	recorder := &recordingClient{next: plain.Options().HTTPClient}
	client := kinesis.New(plain.Options(), func(o *kinesis.Options) { o.HTTPClient = recorder })
	ctx := context.Background()
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 2)

	var recs []putRecord
	for i := range 300 {
		recs = append(recs, putRecord{key: fmt.Sprintf("player-%d", i%7), data: strings.Repeat(strconv.Itoa(i), i%40)})
	}
	recs = append(recs, putRecord{key: "unicode-ключ", data: "é\x00\xff"})
	put(t, client, name, recs)

	readAll := func() {
		t.Helper()
		shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, shard := range shards.Shards {
			it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: shard.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			iterator := it.ShardIterator
			for iterator != nil {
				out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator, Limit: aws.Int32(70)}, consumer.FastGetRecords)
				if err != nil {
					t.Fatal(err)
				}
				if len(out.Records) == 0 && len(out.ChildShards) == 0 {
					break // caught up with an open shard
				}
				iterator = out.NextShardIterator
			}
		}
	}
	readAll()
	// Split the first shard, then merge the second with its neighbour: both parents end
	// with child shards in their last answer.
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	first := shards.Shards[0]
	lo, _ := new(big.Int).SetString(aws.ToString(first.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(first.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := client.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: first.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	waitActive(t, client, name)
	shards, err = client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var open []types.Shard
	for _, s := range shards.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	// The upper child of the split and the second original shard are adjacent.
	if _, err := client.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(name), ShardToMerge: open[len(open)-2].ShardId, AdjacentShardToMerge: open[len(open)-1].ShardId}); err != nil {
		t.Fatalf("MergeShards: %v", err)
	}
	waitActive(t, client, name)
	put(t, client, name, recs[:20])
	readAll()

	// kinesalite never tells a closed shard's children in its last answer (Kinesis does):
	// that answer is made here from its real last answer and the shards it lists.
	shards, err = client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var childShards []string
	for _, s := range shards.Shards {
		parents := fmt.Sprintf("%q", aws.ToString(s.ParentShardId))
		if s.AdjacentParentShardId != nil {
			parents += fmt.Sprintf(",%q", aws.ToString(s.AdjacentParentShardId))
		}
		if s.ParentShardId != nil {
			childShards = append(childShards, fmt.Sprintf(`{"ShardId":%q,"ParentShards":[%s],"HashKeyRange":{"StartingHashKey":%q,"EndingHashKey":%q}}`,
				aws.ToString(s.ShardId), parents, aws.ToString(s.HashKeyRange.StartingHashKey), aws.ToString(s.HashKeyRange.EndingHashKey)))
		}
	}
	var shardEnds int
	for _, body := range recorder.bodies {
		if !bytes.Contains(body, []byte("NextShardIterator")) {
			shardEnds++
			withChildren := append(bytes.TrimSuffix(bytes.TrimSpace(body), []byte("}")), []byte(`,"ChildShards":[`+strings.Join(childShards, ",")+`]}`)...)
			recorder.bodies = append(recorder.bodies, withChildren)
		}
	}
	if shardEnds < 3 || len(childShards) < 3 {
		t.Errorf("%d shard ends (want the split's parent and the merge's two), %d child shards (want 3)", shardEnds, len(childShards))
	}

	var records, children, empty, slow int
	for _, body := range recorder.bodies {
		out := checkSameDecode(t, http.StatusOK, body)
		if !consumer.DecodesFast(body) {
			// Only an answer holding the non-ASCII partition key is the SDK's to decode.
			if !bytes.Contains(body, []byte(`"unicode-`)) {
				t.Errorf("answer left to the SDK: %s", body)
			}
			slow++
		}
		records += len(out.Records)
		children += len(out.ChildShards)
		if len(out.Records) == 0 {
			empty++
		}
	}
	t.Logf("%d answers: %d records, %d child shards, %d empty, %d left to the SDK", len(recorder.bodies), records, children, empty, slow)
	if records < len(recs)+20 || children < 3 || empty == 0 {
		t.Errorf("answers held %d records (want %d), %d child shards (want a split's and a merge's), %d empty answers (want some)",
			records, len(recs)+20, children, empty)
	}
}

// An error answer keeps the SDK's typed error, which the reader's logic depends on.
func TestGetRecordsErrorsKeepTheirTypes(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   any
	}{
		{400, `{"__type":"ExpiredIteratorException","message":"Iterator expired"}`, new(*types.ExpiredIteratorException)},
		{400, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}`, new(*types.ProvisionedThroughputExceededException)},
		{400, `{"__type":"InvalidArgumentException","message":"bad iterator"}`, new(*types.InvalidArgumentException)},
		{500, `{"__type":"InternalFailure","message":"oops"}`, nil},
	} {
		_, _, sdkErr, fastErr := decodeBoth(t, tc.status, []byte(tc.body))
		if fastErr == nil || sdkErr == nil || fastErr.Error() != sdkErr.Error() {
			t.Errorf("%s: consumer's %v, SDK's %v", tc.body, fastErr, sdkErr)
		}
		if tc.want != nil && !errors.As(fastErr, tc.want) {
			t.Errorf("%s: %T is not a %T", tc.body, fastErr, tc.want)
		}
	}
}

// getRecordsSeeds are answers of every shape the decoder reads, and of a few it leaves to
// the SDK (escapes, null, unknown members, non-ASCII, numbers in other forms, broken JSON).
var getRecordsSeeds = []string{
	`{"Records":[],"NextShardIterator":"AAAA","MillisBehindLatest":0}`,
	`{"Records":[{"Data":"aGVsbG8=","PartitionKey":"660271","SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ApproximateArrivalTimestamp":1764605000.123,"EncryptionType":"NONE"},{"Data":"","PartitionKey":"k","SequenceNumber":"2","ApproximateArrivalTimestamp":1764605001}],"NextShardIterator":"AAAAB","MillisBehindLatest":12}`,
	` { "Records" : [ { "Data" : "YQ==" , "SequenceNumber" : "3" , "EncryptionType" : "KMS" } ] , "MillisBehindLatest" : -5 } `,
	`{"Records":[],"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000","shardId-000000000001"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"}}],"MillisBehindLatest":0}`,
	`{"Records":[{"Data":"YQ==","PartitionKey":"a\u00e9\ud83d\ude00","SequenceNumber":"1"}]}`,
	`{"Records":[{"Data":"YQ==","PartitionKey":"é","SequenceNumber":"1"}]}`,
	`{"Records":null,"NextShardIterator":null}`,
	`{"Records":[{"Data":"YQ==","Unknown":1}],"Other":{}}`,
	`{"Records":[{"Data":"Y","ApproximateArrivalTimestamp":1e3}]}`,
	"{\"Records\":[{\"Data\":\"YQ\n==\"}]}",
	"{\"Records\":[{\"Data\":\"YQ\r\n==\"}]}",
	`{"Records":[{"Data":"YQ\"=="}]}`,
	`{"Records":[{"Data":"YQ\u003d="}]}`,
	`{"Records":[{"Data":"YQ==","ApproximateArrivalTimestamp":01}]}`,
	`{"Records":[{"Data":"YQ==","ApproximateArrivalTimestamp":1.5e400}]}`,
	`{"MillisBehindLatest":1.5}`,
	`{"MillisBehindLatest":99999999999999999999}`,
	`{"Records":[{"Data":"YQ=="}]`,
	`{}`,
	``,
	`[]`,
}

// The consumer's decoder and the SDK's agree on any answer: the same records, or the
// same error.
func FuzzGetRecordsDecode(f *testing.F) {
	for _, s := range getRecordsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSameDecode(t, http.StatusOK, body)
	})
}

// The seeds alone, in every test run.
func TestGetRecordsDecodeSeeds(t *testing.T) {
	for _, s := range getRecordsSeeds {
		checkSameDecode(t, http.StatusOK, []byte(s))
	}
}

// gatewaySizedAnswer is a GetRecords answer of n records of ~340 bytes, as kinesalite
// writes it.
func gatewaySizedAnswer(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	data := make([]byte, 340)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		for j := range data {
			data[j] = byte(i + j)
		}
		fmt.Fprintf(&b, `{"PartitionKey":"%d","Data":"%s","SequenceNumber":"4959033827149025660855969253836157109592157598913658%04d","ApproximateArrivalTimestamp":1764605000.%03d}`,
			660000+i%750, base64.StdEncoding.EncodeToString(data), i, i%1000)
	}
	b.WriteString(`],"NextShardIterator":"AAAAAAAAAAGmbXr7aXhbRqrQGAxcmsdz8ItNhuo1PmxH/LZH+j9PkeL1tNMDLfBWRCXmYwyOkQFdRM4HLRMuoS82dH8GPrxCfSLuGXvZtTUp4MQhv5ZMYVuBsgVw8vBIUazGNTw1W9Wi4K+h+hmZrOJqT5vVaqpXRTu6ubGzLbNTaT8G5mWUlnJ/AUGpWBjsJ7QTHkZz6YKAc=","MillisBehindLatest":12000}`)
	return b.Bytes()
}

// BenchmarkGetRecordsDecode is one answer of 3,000 gateway-sized records through the SDK
// client (a replayed HTTP answer), decoded by the SDK or by the consumer's decoder.
func BenchmarkGetRecordsDecode(b *testing.B) {
	const n = 3000
	body := gatewaySizedAnswer(n)
	if !consumer.DecodesFast(body) {
		b.Fatal("the benchmark's answer is not one the consumer's decoder reads")
	}
	for _, tc := range []struct {
		name string
		opts []func(*kinesis.Options)
	}{{"sdk", nil}, {"consumer", []func(*kinesis.Options){consumer.FastGetRecords}}} {
		b.Run(tc.name, func(b *testing.B) {
			client := kinesis.New(kinesis.Options{
				Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), Retryer: aws.NopRetryer{},
				Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
				HTTPClient:  replayClient{status: http.StatusOK, body: body},
			})
			in := &kinesis.GetRecordsInput{ShardIterator: aws.String("iterator")}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			cpu := processCPU(b)
			for b.Loop() {
				out, err := client.GetRecords(context.Background(), in, tc.opts...)
				if err != nil || len(out.Records) != n {
					b.Fatalf("%v, %d records", err, len(out.Records))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/float64(b.N*n), "cpu-ns/record")
		})
	}
}

// processCPU is the user and system CPU time the test process used so far: on a shared
// machine, what a benchmark costs is better told by it than by the time it took.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
