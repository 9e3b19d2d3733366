package consumer

// HeldPeaks is the most records and bytes one shard reader held read and not yet
// committed, and the bytes of the largest GetRecords answer, for tests of the memory bound.
func (c *Consumer) HeldPeaks() (records, bytes, largestAnswer int) {
	c.held.mu.Lock()
	defer c.held.mu.Unlock()
	return c.held.records, c.held.bytes, c.held.largestAnswer
}
