package s3stage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Read is the inverse of Stage, as COPY ... CopyOptions reads it: it fetches the manifest
// at manifestURI and every part it names, checks each part's content_length, and returns
// the records, each field a *string (nil for NULL). It is what the tests of the Redshift
// path run in place of COPY on PostgreSQL, and a way to inspect a staged load.
func Read(ctx context.Context, client *s3.Client, manifestURI string) ([][]*string, error) {
	body, err := get(ctx, client, manifestURI)
	if err != nil {
		return nil, err
	}
	var manifest Manifest
	if err := json.Unmarshal(body, &manifest); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", manifestURI, err)
	}
	var records [][]*string
	for _, e := range manifest.Entries {
		part, err := get(ctx, client, e.URL)
		if err != nil {
			if !e.Mandatory {
				continue
			}
			return nil, err
		}
		if int64(len(part)) != e.Meta.ContentLength {
			return nil, fmt.Errorf("part %s: %d bytes, manifest says %d", e.URL, len(part), e.Meta.ContentLength)
		}
		zr, err := gzip.NewReader(bytes.NewReader(part))
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", e.URL, err)
		}
		csv, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", e.URL, err)
		}
		got, err := ParseCSV(csv)
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", e.URL, err)
		}
		records = append(records, got...)
	}
	return records, nil
}

// ParseCSV decodes the CSV Stage writes: quoted fields keep every byte between their
// quotes (a doubled quote is one quote; "\r\n" stays as is), an unquoted field holding a
// single NUL is NULL.
func ParseCSV(data []byte) ([][]*string, error) {
	var (
		records [][]*string
		record  []*string
		field   strings.Builder
		quoted  bool // the current field was quoted
	)
	endField := func() {
		if !quoted && field.String() == "\x00" {
			record = append(record, nil)
		} else {
			s := field.String()
			record = append(record, &s)
		}
		field.Reset()
		quoted = false
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"' && field.Len() == 0 && !quoted:
			quoted = true
			for i++; ; i++ {
				if i >= len(data) {
					return nil, errors.New("csv: unterminated quoted field")
				}
				if data[i] == '"' {
					if i+1 < len(data) && data[i+1] == '"' {
						field.WriteByte('"')
						i++
						continue
					}
					break
				}
				field.WriteByte(data[i])
			}
		case c == ',':
			endField()
		case c == '\n':
			endField()
			records = append(records, record)
			record = nil
		default:
			if quoted {
				return nil, fmt.Errorf("csv: byte %q after a closing quote", c)
			}
			field.WriteByte(c)
		}
	}
	if field.Len() > 0 || quoted || record != nil {
		return nil, errors.New("csv: last record not terminated by a newline")
	}
	return records, nil
}

func get(ctx context.Context, client *s3.Client, uri string) ([]byte, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	bucket, key, _ := strings.Cut(rest, "/")
	if !ok || bucket == "" || key == "" {
		return nil, fmt.Errorf("%q is not an s3://bucket/key URI", uri)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", uri, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	return body, nil
}
