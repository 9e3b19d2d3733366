package s3stage_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/boxscore-dev/boxscore/pkg/testutil/s3test"
	"github.com/boxscore-dev/boxscore/services/loader/internal/s3stage"
)

const bucket = "staging"

// startS3 serves an in-memory S3 with the staging bucket and returns its URL and a client.
func startS3(t *testing.T) (string, *s3.Client) {
	t.Helper()
	srv, client := s3test.Start(t, bucket)
	return srv.URL(), client
}

func listKeys(t *testing.T, client *s3.Client) []string {
	t.Helper()
	return s3test.Keys(t, client, bucket)
}

func ptr(s string) *string { return &s }

type record struct {
	id    int64
	text  *string
	flag  bool
	day   time.Time
	stamp *time.Time
}

// tricky holds every kind of text the CSV must carry unchanged, and NULL beside "".
func tricky() []record {
	stamp := time.Date(2024, 7, 4, 19, 5, 6, 123456789, time.FixedZone("EDT", -4*3600))
	day := time.Date(2024, 7, 4, 0, 0, 0, 0, time.UTC)
	texts := []*string{
		ptr(""), nil, ptr(`say "hi", then leave`), ptr("two\nlines\r\nand CRLF"), ptr("comma,comma"),
		ptr(`\N`), ptr("é漢字🙂 and \u2028"), ptr(`""`), ptr(" leading and trailing "), ptr("\\000"),
	}
	out := make([]record, len(texts))
	for i, s := range texts {
		out[i] = record{id: int64(i) - 3, text: s, flag: i%2 == 0, day: day, stamp: &stamp}
	}
	out[1].stamp = nil
	return out
}

func writeRecord(r record) func(w *s3stage.Writer) {
	return func(w *s3stage.Writer) {
		w.Int(r.id)
		w.OptionalText(r.text)
		w.Bool(r.flag)
		w.Date(r.day)
		w.Timestamp(r.stamp)
	}
}

func stage(ctx context.Context, t *testing.T, st *s3stage.Stager, id string, records []record) (*s3stage.Staged, error) {
	t.Helper()
	return st.Stage(ctx, id, len(records), func(i int, w *s3stage.Writer) error {
		writeRecord(records[i])(w)
		return nil
	})
}

func TestStageWritesGzipPartsAndManifestThatReadBackExactly(t *testing.T) {
	_, client := startS3(t)
	st, err := s3stage.New(client, "s3://"+bucket+"/loads", s3stage.WithPartBytes(100))
	if err != nil {
		t.Fatal(err)
	}
	records := tricky()
	staged, err := stage(t.Context(), t, st, "loader-a-7", records)
	if err != nil {
		t.Fatal(err)
	}
	if staged.ManifestURI != "s3://staging/loads/loader-a-7/manifest.json" || staged.Rows != int64(len(records)) {
		t.Fatalf("staged = %+v", staged)
	}

	// The manifest names every part, mandatory, with its exact size; parts are gzip.
	body := getObject(t, client, "loads/loader-a-7/manifest.json")
	var manifest s3stage.Manifest
	if err := json.Unmarshal(body, &manifest); err != nil {
		t.Fatalf("manifest %s: %v", body, err)
	}
	if len(manifest.Entries) < 2 {
		t.Fatalf("want several parts with 100-byte parts, got %d", len(manifest.Entries))
	}
	for i, e := range manifest.Entries {
		wantURL := "s3://staging/loads/loader-a-7/part-0000" + string(rune('0'+i)) + ".csv.gz"
		if e.URL != wantURL || !e.Mandatory {
			t.Errorf("entry %d = %+v, want url %s mandatory", i, e, wantURL)
		}
		part := getObject(t, client, strings.TrimPrefix(e.URL, "s3://staging/"))
		if int64(len(part)) != e.Meta.ContentLength {
			t.Errorf("entry %d: content_length %d, object has %d bytes", i, e.Meta.ContentLength, len(part))
		}
		if _, err := gzip.NewReader(bytes.NewReader(part)); err != nil {
			t.Errorf("entry %d is not gzip: %v", i, err)
		}
	}
	if keys := listKeys(t, client); len(keys) != len(manifest.Entries)+1 {
		t.Errorf("objects %v, want the parts and the manifest", keys)
	}

	got, err := s3stage.Read(t.Context(), client, staged.ManifestURI)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(records) {
		t.Fatalf("read %d records, want %d", len(got), len(records))
	}
	for i, r := range records {
		f := got[i]
		if len(f) != 5 {
			t.Fatalf("record %d has %d fields", i, len(f))
		}
		want := []*string{nil, r.text, nil, ptr("2024-07-04"), nil}
		want[0] = ptr(func() string { b, _ := json.Marshal(r.id); return string(b) }())
		want[2] = ptr(map[bool]string{true: "true", false: "false"}[r.flag])
		if r.stamp != nil {
			want[4] = ptr("2024-07-04 23:05:06.123456+00") // UTC, microseconds
		}
		for j := range want {
			if (want[j] == nil) != (f[j] == nil) || (want[j] != nil && *want[j] != *f[j]) {
				t.Errorf("record %d field %d = %s, want %s", i, j, show(f[j]), show(want[j]))
			}
		}
	}

	if err := st.Remove(t.Context(), staged); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, client); len(keys) != 0 {
		t.Errorf("after Remove: %v", keys)
	}
	if err := st.Remove(t.Context(), staged); err != nil {
		t.Errorf("Remove again: %v", err)
	}
}

func show(s *string) string {
	if s == nil {
		return "NULL"
	}
	b, _ := json.Marshal(*s)
	return string(b)
}

func getObject(t *testing.T, client *s3.Client, key string) []byte {
	t.Helper()
	out, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStageRefusesTextWithNULAndLeavesNothing(t *testing.T) {
	_, client := startS3(t)
	st, err := s3stage.New(client, "s3://"+bucket+"/", s3stage.WithPartBytes(1))
	if err != nil {
		t.Fatal(err)
	}
	records := tricky()
	records[5].text = ptr("a\x00b")
	if _, err := stage(t.Context(), t, st, "nul", records); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("err = %v, want the NUL refused", err)
	}
	if keys := listKeys(t, client); len(keys) != 0 {
		t.Errorf("objects left: %v", keys)
	}
}

func TestStageFailingHalfwayLeavesNothingAndARetrySucceeds(t *testing.T) {
	endpoint, direct := startS3(t)
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// A proxy that refuses every PUT from the third on, as a store that fails mid-upload.
	var puts, failFrom atomic.Int64
	failFrom.Store(3)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && puts.Add(1) >= failFrom.Load() {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden) // not retried by the SDK
			_, _ = io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>injected</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	st, err := s3stage.New(s3test.Client(front.URL), "s3://"+bucket+"/loads/", s3stage.WithPartBytes(100))
	if err != nil {
		t.Fatal(err)
	}
	records := tricky()
	if _, err := stage(t.Context(), t, st, "g1", records); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	if puts.Load() < 3 {
		t.Fatalf("only %d PUTs: the failure was not halfway", puts.Load())
	}
	if keys := listKeys(t, direct); len(keys) != 0 {
		t.Fatalf("a failed stage left %v (no manifest may exist without all its parts)", keys)
	}

	failFrom.Store(1 << 40)
	staged, err := stage(t.Context(), t, st, "g1", records)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, err := s3stage.Read(t.Context(), direct, staged.ManifestURI)
	if err != nil || len(got) != len(records) {
		t.Fatalf("retry read %d records, err %v", len(got), err)
	}
}

func TestStageAgainstAClosedServerFails(t *testing.T) {
	srv, client := s3test.Start(t, bucket)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := s3stage.New(client, "s3://"+bucket+"/x/")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if staged, err := stage(ctx, t, st, "g", tricky()); err == nil {
		t.Fatalf("staged %+v on a closed server", staged)
	}
}

func TestNewRefusesBadURIs(t *testing.T) {
	for _, uri := range []string{
		"", "staging/x", "s3://", "s3:///prefix", "https://b/x",
		// Written into COPY as a literal: Redshift reads a backslash there as an escape.
		"s3://b/it's/", `s3://b/a\b/`, "s3://b/a\nb/",
	} {
		if _, err := s3stage.New(nil, uri); err == nil {
			t.Errorf("New(%q) accepted", uri)
		}
	}
}

func TestParseCSVRefusesMalformedInput(t *testing.T) {
	for _, in := range []string{`"open`, `"a"b` + "\n", "1,2"} {
		if _, err := s3stage.ParseCSV([]byte(in)); err == nil {
			t.Errorf("ParseCSV(%q) accepted", in)
		}
	}
}
