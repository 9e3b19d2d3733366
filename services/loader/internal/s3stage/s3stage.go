// Package s3stage writes the rows of one Redshift load to S3 as gzip CSV part objects and a
// COPY manifest naming them, and removes them once the load has committed.
//
// Encoding (the COPY options that read it are CopyOptions):
//
//   - CSV, fields separated by commas, records by "\n". Every text value is quoted
//     ("..." with each quote doubled), so commas, quotes, newlines and any Unicode survive
//     as they are;
//   - NULL is a field holding a single NUL byte, unquoted, read with NULL AS '\000'. The
//     loader stores no text containing NUL (its text rules refuse it; Writer.Text refuses it
//     too), so no value can be taken for NULL, and the empty string ("" quoted) stays an
//     empty string: EMPTYASNULL and BLANKSASNULL are deliberately not used;
//   - numbers in decimal, booleans as true/false, dates as YYYY-MM-DD, timestamps in UTC as
//     "YYYY-MM-DD HH:MM:SS.ffffff+00" (microseconds, as both engines store them; TIMEFORMAT
//     'auto').
//
// A load's objects are under <prefix><load id>/: part-00000.csv.gz, ... and manifest.json,
// whose entries are mandatory (COPY fails rather than load a part it cannot read) and
// carry each part's content_length. Parts are cut at PartBytes of CSV (before compression),
// so that Redshift reads a large load in parallel and no object nears a limit.
//
// A load that fails to upload any object removes what it uploaded and returns the error:
// nothing is left for a COPY to read half of, and the manifest, written last, exists only
// when every part does. Staging again under the same load id overwrites the same keys.
package s3stage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultPartBytes is the CSV size (before gzip) after which a part is closed: 64 MiB,
// within the 1 MB..1 GB compressed size Redshift recommends per file and far below S3's
// 5 GB single PUT.
const DefaultPartBytes = 64 << 20

// CopyOptions are the options of the COPY that reads what Stage writes (after FROM ...
// IAM_ROLE ...): see the package comment.
const CopyOptions = `MANIFEST GZIP CSV NULL AS '\000' TIMEFORMAT 'auto' DATEFORMAT 'YYYY-MM-DD'`

// Stager writes loads under one S3 prefix. It is safe for concurrent use.
type Stager struct {
	client    *s3.Client
	bucket    string
	prefix    string // "" or ending in "/"
	partBytes int
}

// Option configures a Stager.
type Option func(*Stager)

// WithPartBytes sets the CSV size (before gzip) after which a part is closed (at least 1).
func WithPartBytes(n int) Option {
	return func(s *Stager) { s.partBytes = max(n, 1) }
}

// New returns a Stager writing under uri, "s3://bucket/prefix/" (the prefix may be empty).
func New(client *s3.Client, uri string, opts ...Option) (*Stager, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return nil, fmt.Errorf("staging URI %q: want s3://bucket/prefix/", uri)
	}
	// The manifest's URI is written into a COPY statement as a literal, and Redshift reads
	// a backslash in a literal as an escape: neither it nor a quote may appear.
	if strings.ContainsAny(rest, `'\`) || strings.ContainsFunc(rest, unicode.IsControl) {
		return nil, fmt.Errorf("staging URI %q: no quotes, backslashes or control characters", uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, fmt.Errorf("staging URI %q: no bucket", uri)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s := &Stager{client: client, bucket: bucket, prefix: prefix, partBytes: DefaultPartBytes}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Staged is one load's objects.
type Staged struct {
	// ManifestURI is what COPY reads: s3://bucket/prefix/<load id>/manifest.json.
	ManifestURI string
	// Rows is the number of records written, what COPY must report loaded.
	Rows int64
	// Keys are the objects written, parts then manifest.
	Keys   []string
	bucket string
}

// Manifest is a COPY manifest.
type Manifest struct {
	Entries []ManifestEntry `json:"entries"`
}

// ManifestEntry names one part.
type ManifestEntry struct {
	URL       string       `json:"url"`
	Mandatory bool         `json:"mandatory"`
	Meta      ManifestMeta `json:"meta"`
}

// ManifestMeta is an entry's metadata: content_length is required for COPY from a
// manifest in some formats and is checked against the object by Redshift.
type ManifestMeta struct {
	ContentLength int64 `json:"content_length"`
}

// Stage writes n records, record i written by write(i, w), under loadID (which must be
// unique per load: e.g. the loader's id and a group number; made of letters, digits, '-',
// '_' and '.'). On error, every object it wrote is removed (failures to remove are joined
// to the error) and nothing is returned.
func (s *Stager) Stage(ctx context.Context, loadID string, n int, write func(i int, w *Writer) error) (*Staged, error) {
	if err := checkLoadID(loadID); err != nil {
		return nil, err
	}
	staged := &Staged{bucket: s.bucket}
	fail := func(err error) (*Staged, error) {
		if rmErr := s.Remove(context.WithoutCancel(ctx), staged); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return nil, err
	}
	var manifest Manifest
	w := &Writer{}
	flush := func() error {
		if w.buf.Len() == 0 {
			return nil
		}
		key := fmt.Sprintf("%s%s/part-%05d.csv.gz", s.prefix, loadID, len(manifest.Entries))
		body, err := gzipBytes(w.buf.Bytes())
		if err != nil {
			return err
		}
		staged.Keys = append(staged.Keys, key)
		if err := s.put(ctx, key, body, "application/gzip"); err != nil {
			return err
		}
		manifest.Entries = append(manifest.Entries, ManifestEntry{
			URL: "s3://" + s.bucket + "/" + key, Mandatory: true, Meta: ManifestMeta{ContentLength: int64(len(body))},
		})
		w.buf.Reset()
		return nil
	}
	for i := range n {
		w.first = true
		if err := write(i, w); err != nil {
			return fail(fmt.Errorf("stage record %d: %w", i, err))
		}
		if w.err != nil {
			return fail(fmt.Errorf("stage record %d: %w", i, w.err))
		}
		w.buf.WriteByte('\n')
		staged.Rows++
		if w.buf.Len() >= s.partBytes {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	body, err := json.Marshal(manifest)
	if err != nil {
		return fail(fmt.Errorf("encode manifest: %w", err))
	}
	key := s.prefix + loadID + "/manifest.json"
	staged.Keys = append(staged.Keys, key)
	if err := s.put(ctx, key, body, "application/json"); err != nil {
		return fail(err)
	}
	staged.ManifestURI = "s3://" + s.bucket + "/" + key
	return staged, nil
}

// Remove deletes a load's objects. Deleting a missing object is not an error (S3 answers
// it with success), so Remove can be repeated.
func (s *Stager) Remove(ctx context.Context, staged *Staged) error {
	if staged == nil || len(staged.Keys) == 0 {
		return nil
	}
	objects := make([]types.ObjectIdentifier, len(staged.Keys))
	for i, k := range staged.Keys {
		objects[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(staged.bucket),
		Delete: &types.Delete{Objects: objects, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("remove staged objects of %s: %w", staged.ManifestURI, err)
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return fmt.Errorf("remove staged objects: %d not removed, first %s: %s", len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Message))
	}
	return nil
}

func (s *Stager) put(ctx context.Context, key string, body []byte, contentType string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip part: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip part: %w", err)
	}
	return out.Bytes(), nil
}

func checkLoadID(id string) error {
	if id == "" {
		return errors.New("stage: empty load id")
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("stage: load id %q: only letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

// Writer encodes the fields of one record, in the staging table's column order.
type Writer struct {
	buf   bytes.Buffer
	first bool
	err   error
}

func (w *Writer) sep() {
	if !w.first {
		w.buf.WriteByte(',')
	}
	w.first = false
}

// Null writes NULL.
func (w *Writer) Null() {
	w.sep()
	w.buf.WriteByte(0)
}

// Text writes s quoted. Text holding NUL cannot be staged (NUL marks NULL): the record
// fails.
func (w *Writer) Text(s string) {
	w.sep()
	if strings.IndexByte(s, 0) >= 0 {
		if w.err == nil {
			w.err = errors.New("text value holds a NUL byte, which the staged CSV reserves for NULL")
		}
		return
	}
	w.buf.WriteByte('"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		w.buf.WriteString(s[:i+1])
		w.buf.WriteByte('"')
		s = s[i+1:]
	}
	w.buf.WriteString(s)
	w.buf.WriteByte('"')
}

// OptionalText writes *s, or NULL when s is nil.
func (w *Writer) OptionalText(s *string) {
	if s == nil {
		w.Null()
		return
	}
	w.Text(*s)
}

// Int writes n in decimal.
func (w *Writer) Int(n int64) {
	w.sep()
	w.buf.WriteString(strconv.FormatInt(n, 10))
}

// Bool writes true or false.
func (w *Writer) Bool(b bool) {
	w.sep()
	w.buf.WriteString(strconv.FormatBool(b))
}

// Date writes t's calendar date.
func (w *Writer) Date(t time.Time) {
	w.sep()
	w.buf.WriteString(t.Format(time.DateOnly))
}

// Timestamp writes t in UTC with microseconds (finer digits are dropped), or NULL when t is
// nil.
func (w *Writer) Timestamp(t *time.Time) {
	if t == nil {
		w.Null()
		return
	}
	w.sep()
	w.buf.WriteString(t.UTC().Format("2006-01-02 15:04:05.000000+00"))
}
