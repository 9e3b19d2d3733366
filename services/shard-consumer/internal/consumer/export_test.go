package consumer

import "github.com/aws/aws-sdk-go-v2/service/kinesis"

// HeldPeaks is the most records and bytes one shard reader held read and not yet
// committed, and the bytes of the largest GetRecords answer, for tests of the memory bound.
func (c *Consumer) HeldPeaks() (records, bytes, largestAnswer int) {
	c.held.mu.Lock()
	defer c.held.mu.Unlock()
	return c.held.records, c.held.bytes, c.held.largestAnswer
}

// FastGetRecords is the GetRecords option the shard readers use (getrecords.go).
var FastGetRecords = fastGetRecords

// DecodesFast reports whether the consumer's GetRecords decoder reads body by itself,
// without handing it to the SDK's.
func DecodesFast(body []byte) bool {
	var out kinesis.GetRecordsOutput
	return (&getRecordsBuffer{}).decode(body, &out) == nil
}
