// Package limits declares, once, the sizes Boxscore is bound by: the Kinesis service quotas
// it must respect and the message sizes its own services agree on. Every service reads them
// from here, and Check verifies at start-up the relations between them that a configuration
// could break, rather than leaving them to a help string.
package limits

import (
	"errors"
	"fmt"
)

// Kinesis Data Streams quotas (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
const (
	// KinesisRecordBytes is the largest record: data plus partition key.
	KinesisRecordBytes = 1 << 20
	// KinesisPutRecordsEntries is the most records one PutRecords call carries.
	KinesisPutRecordsEntries = 500
	// KinesisPutRecordsBytes is the most bytes (data plus partition keys) of one PutRecords call.
	KinesisPutRecordsBytes = 5 << 20
	// KinesisGetRecordsRecords is the most records one GetRecords call returns.
	KinesisGetRecordsRecords = 10_000
	// KinesisGetRecordsBytes is the most data one GetRecords call returns.
	KinesisGetRecordsBytes = 10 << 20
	// KinesisShardReadBytesPerSecond is a shard's read throughput shared by its readers.
	KinesisShardReadBytesPerSecond = 2 << 20
	// KinesisShardGetRecordsPerSecond is how many GetRecords calls a shard answers per second.
	KinesisShardGetRecordsPerSecond = 5
)

// The ingest API: one request is at most one PutRecords call, so an accepted request is
// published by a single call whose answer is all-or-nothing per entry.
const (
	// IngestRequestEvents is the most events of one ingest request (HTTP or gRPC).
	IngestRequestEvents = KinesisPutRecordsEntries
	// IngestRequestBytes is the largest ingest request body (HTTP) or message (gRPC PutStats).
	IngestRequestBytes = KinesisPutRecordsBytes
)

// Messages between Boxscore's own services.
const (
	// RecordOverheadBytes bounds what a record costs in a Transform message beyond its data:
	// shard id, sequence number, arrival time and framing in the request (about 100 bytes),
	// or ids and the reason of its rejection in the answer, which carries the data back.
	RecordOverheadBytes = 512
	// TransformMessageBytes bounds a Transform request or response. A batch is at most one
	// GetRecords answer's worth of records (10 MiB, 10,000 records) plus their overhead;
	// gRPC's default of 4 MiB would not hold it.
	TransformMessageBytes = 16 << 20
	// BatchMaxBytes is the largest batch of record data a consumer may hand to the
	// transformer: half of TransformMessageBytes, so that a full batch of the smallest
	// records still fits with its per-record overhead (CheckBatch).
	BatchMaxBytes = TransformMessageBytes / 2
	// BatchMaxRecords is the most records of one batch: one GetRecords answer.
	BatchMaxRecords = KinesisGetRecordsRecords
	// BatchMinBytes is the smallest byte bound a batch may have: one record of the largest
	// size Kinesis allows must fit.
	BatchMinBytes = KinesisRecordBytes
	// GRPCMessageBytes is the largest gRPC message an internal server accepts and an internal
	// client sends or receives: the most any contract needs (a Load of a full batch of rows
	// and dead letters with their payloads).
	GRPCMessageBytes = 64 << 20
)

// CheckBatch reports whether a consumer's batch bounds fit the contracts: a batch's data and
// its records' overhead must fit a Transform message, both the request and an answer that
// rejects every record (rejections carry the data back).
func CheckBatch(maxRecords, maxBytes int) error {
	var errs []error
	if maxRecords < 1 || maxRecords > BatchMaxRecords {
		errs = append(errs, fmt.Errorf("batch of %d records: want 1..%d (one GetRecords answer)", maxRecords, BatchMaxRecords))
	}
	if maxBytes < BatchMinBytes || maxBytes > BatchMaxBytes {
		errs = append(errs, fmt.Errorf("batch of %d bytes: want %d..%d (one largest record .. half of a %d-byte Transform message)",
			maxBytes, BatchMinBytes, BatchMaxBytes, TransformMessageBytes))
	}
	if len(errs) == 0 && maxBytes+maxRecords*RecordOverheadBytes > TransformMessageBytes {
		errs = append(errs, fmt.Errorf("batch of %d records and %d bytes: with %d bytes of overhead per record it exceeds the %d-byte Transform message",
			maxRecords, maxBytes, RecordOverheadBytes, TransformMessageBytes))
	}
	return errors.Join(errs...)
}

// Check verifies the relations between the declared limits themselves; a test keeps them
// true, and services call it at start-up so that an edit breaking one cannot ship silently.
func Check() error {
	var errs []error
	if IngestRequestBytes > KinesisPutRecordsBytes || IngestRequestEvents > KinesisPutRecordsEntries {
		errs = append(errs, errors.New("an ingest request must fit one PutRecords call"))
	}
	if TransformMessageBytes > GRPCMessageBytes {
		errs = append(errs, errors.New("the Transform message must fit the internal gRPC message size"))
	}
	if KinesisGetRecordsBytes+KinesisGetRecordsRecords*RecordOverheadBytes > TransformMessageBytes {
		errs = append(errs, errors.New("one GetRecords answer must fit a Transform message"))
	}
	if err := CheckBatch(BatchMaxRecords, BatchMaxBytes); err != nil {
		errs = append(errs, fmt.Errorf("the largest batch: %w", err))
	}
	return errors.Join(errs...)
}
