package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
)

// Gap reasons, as the loader stores them in stream_gap.
const (
	gapTrimHorizon     = "trim_horizon"
	gapStreamRecreated = "stream_recreated"
)

// errStreamRecreated stops the readers of a stream whose identity changed (deleted and
// created again under the same name): each commits what it holds and is started again,
// claiming under the new identity, which makes the loader archive the old checkpoint.
var errStreamRecreated = errors.New("stream recreated under the same name")

// streamIdentity names the incarnation of the stream: its creation time, prefixed by its
// ARN when the endpoint reports one. The ARN alone does not do: Kinesis gives a stream
// created again under the same name the same ARN. kinesalite reports no ARN and a creation
// time in whole seconds: a stream deleted and created again within one second is not told
// apart there.
func (c *Consumer) streamIdentity(ctx context.Context) (string, error) {
	out, err := retry(ctx, c.cfg.Retry, func() (*kinesis.DescribeStreamSummaryOutput, error) {
		return c.stream.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(c.cfg.Stream)})
	}, func(err error, wait time.Duration) {
		c.metrics.retried(ctx, "describe stream summary")
		c.log.Warn("transient failure, retrying", "operation", "describe stream summary", "error", err, "wait", wait)
	})
	if err != nil {
		return "", fmt.Errorf("describe stream summary: %w", err)
	}
	return identityOf(out.StreamDescriptionSummary), nil
}

// identityOf is the identity of a described stream; empty when the endpoint tells
// nothing (then checkpoints are not checked against it).
func identityOf(s *types.StreamDescriptionSummary) string {
	if s == nil || s.StreamCreationTimestamp == nil {
		return ""
	}
	created := "created:" + s.StreamCreationTimestamp.UTC().Format(time.RFC3339Nano)
	if arn := aws.ToString(s.StreamARN); arn != "" {
		return arn + "@" + created
	}
	return created
}

// compareSequenceNumbers orders two Kinesis sequence numbers (decimal strings of up to 128
// bits): -1, 0 or 1. A string that is not a decimal number orders before every number.
func compareSequenceNumbers(a, b string) int {
	x, okA := new(big.Int).SetString(a, 10)
	y, okB := new(big.Int).SetString(b, 10)
	switch {
	case !okA && !okB:
		return 0
	case !okA:
		return -1
	case !okB:
		return 1
	}
	return x.Cmp(y)
}

// trimmedPast reports whether a shard whose oldest record is oldest no longer holds the
// record at the checkpoint: the stream trimmed it (retention), so records after it may
// have been trimmed unread too. Sequence numbers only grow within a shard and trimming
// removes the oldest records first, so the checkpoint's record is still there exactly when
// the oldest record is at or before it. An empty shard (oldest "") tells nothing.
func trimmedPast(checkpoint, oldest string) bool {
	return checkpoint != "" && oldest != "" && compareSequenceNumbers(oldest, checkpoint) > 0
}

// maxIteratorRenewals bounds how often a probe takes a new iterator after its iterator
// expired or was refused on the way.
const maxIteratorRenewals = 3

// firstRecord is the sequence number of the first record that an iterator of in reads, or
// "" when it reads none before the tip of the shard (or the end of a closed one). It asks
// for one record at a time. Kinesis may answer empty pages before a shard's first record
// (an iterator walks through time): they are followed while the reader is behind the tip
// (MillisBehindLatest > 0). An iterator that expires on the way is taken again.
func (r *shardReader) firstRecord(ctx context.Context, in *kinesis.GetShardIteratorInput) (string, error) {
	for renewals := 0; ; renewals++ {
		out, err := retry(ctx, r.c.cfg.Retry, func() (*kinesis.GetShardIteratorOutput, error) {
			return r.c.stream.GetShardIterator(ctx, in)
		}, r.notify("get shard iterator"))
		if err != nil {
			return "", fmt.Errorf("get shard iterator: %w", err)
		}
		seq, err := r.firstFromIterator(ctx, out.ShardIterator)
		if isExpiredIterator(err) && renewals < maxIteratorRenewals {
			continue
		}
		return seq, err
	}
}

func (r *shardReader) firstFromIterator(ctx context.Context, iterator *string) (string, error) {
	for iterator != nil {
		page, err := r.getRecordsLimit(ctx, iterator, 1)
		if err != nil {
			return "", err
		}
		if len(page.Records) > 0 {
			return aws.ToString(page.Records[0].SequenceNumber), nil
		}
		if aws.ToInt64(page.MillisBehindLatest) == 0 {
			return "", nil
		}
		iterator = page.NextShardIterator
	}
	return "", nil
}

// oldestSequenceNumber is the sequence number of the shard's oldest record (at
// TRIM_HORIZON), or "" when the shard holds none (or none is seen: see
// checkpointRecordGone).
func (r *shardReader) oldestSequenceNumber(ctx context.Context) (string, error) {
	seq, err := r.firstRecord(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(r.c.cfg.Stream), ShardId: r.shard.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return "", fmt.Errorf("read the oldest record: %w", err)
	}
	return seq, nil
}

// checkpointRecordGone reports whether the checkpoint's own record can no longer be read:
// an iterator at it (AT_SEQUENCE_NUMBER) reads a later record first, or none at all. It
// also returns that first record ("" when none).
//
// This is the check that does not depend on how the expired records are removed. Kinesis
// trims them in the background, and then the oldest record (trimmedPast) tells. A stream
// may instead leave expired records in place and only stop serving them (kinesalite
// drops them from each GetRecords page and deletes them then): its oldest record is then
// one it will not serve, TRIM_HORIZON answers an empty page that looks like an empty
// shard's, and only asking for the checkpoint's record itself tells that it is gone.
//
// A sequence number the shard refuses (InvalidArgumentException: not of this shard, as
// for a stream recreated under the same name, which the stream identity deals with) says
// nothing about trimming: not gone.
func (r *shardReader) checkpointRecordGone(ctx context.Context) (gone bool, first string, err error) {
	first, err = r.firstRecord(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(r.c.cfg.Stream), ShardId: r.shard.ShardId,
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(r.committed),
	})
	var invalid *types.InvalidArgumentException
	if errors.As(err, &invalid) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("read the checkpoint's record: %w", err)
	}
	return first != r.committed, first, nil
}

// checkTrimHorizon finds whether the stored checkpoint's record is no longer in the shard
// (older than the shard's oldest record, or no longer served): records after it may have
// expired unread. If so the gap is logged at once and kept to be committed with the first
// batch (its range ends before that batch's first record), and the reader starts from the
// oldest record instead of after the checkpoint.
func (r *shardReader) checkTrimHorizon(ctx context.Context) error {
	r.gap = nil
	if r.committed == "" {
		return nil
	}
	oldest, err := r.oldestSequenceNumber(ctx)
	if err != nil {
		return err
	}
	var detail string
	if trimmedPast(r.committed, oldest) {
		detail = fmt.Sprintf("the checkpoint %s is older than the shard's oldest record %s: records after the checkpoint, if there were any, expired unread past the stream's retention",
			r.committed, oldest)
	} else {
		gone, first, err := r.checkpointRecordGone(ctx)
		if err != nil {
			return err
		}
		if !gone {
			return nil
		}
		next := "no later record is held"
		if first != "" {
			next = "the first record held after it is " + first
		}
		detail = fmt.Sprintf("the checkpoint's record %s is no longer served (%s): records after the checkpoint, if there were any, expired unread past the stream's retention",
			r.committed, next)
		oldest = first
	}
	r.gap = &loadv1.StreamGap{
		Reason:              gapTrimHorizon,
		AfterSequenceNumber: r.committed,
		StreamIdentity:      r.c.identity(),
		Detail:              detail,
	}
	r.lastRead = "" // from TRIM_HORIZON
	r.log.Error("gap: the checkpoint's record is no longer in the shard (expired past the retention); records after it may have expired unread; reading on from the oldest record",
		"reason", gapTrimHorizon, "after_sequence_number", r.committed, "oldest_sequence_number", oldest)
	return nil
}

// gapFor is the gap to commit with a batch (nil when none): its range ends before the
// batch's first record.
func (r *shardReader) gapFor(b *batch) *loadv1.StreamGap {
	if r.gap == nil {
		return nil
	}
	g := &loadv1.StreamGap{Reason: r.gap.GetReason(), AfterSequenceNumber: r.gap.GetAfterSequenceNumber(),
		StreamIdentity: r.gap.GetStreamIdentity(), Detail: r.gap.GetDetail()}
	if !b.empty() {
		g.BeforeSequenceNumber = b.records[0].GetPosition().GetSequenceNumber()
	}
	return g
}

// reportArchived logs and counts a checkpoint the loader archived because it belonged to
// an earlier stream of the same name.
func (r *shardReader) reportArchived(ctx context.Context, a *loadv1.StreamGap) {
	if a == nil {
		return
	}
	r.c.metrics.gapFound(ctx, r.shardID(), gapStreamRecreated)
	r.log.Error("gap: the stream was recreated under the same name; the checkpoint of the earlier stream was archived (stream_gap) and the shard starts over from its oldest record",
		"reason", gapStreamRecreated, "old_sequence_number", a.GetAfterSequenceNumber(),
		"old_stream_identity", a.GetOldStreamIdentity(), "stream_identity", a.GetStreamIdentity())
}
