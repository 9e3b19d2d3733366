package streamtest

import (
	"crypto/md5" //nolint:gosec // Kinesis's own placement function, not a security use
	"math/big"
)

// HashKey is the hash key Kinesis gives a partition key: its MD5 digest read as a 128-bit
// unsigned integer.
func HashKey(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey)) //nolint:gosec // see the import
	return new(big.Int).SetBytes(sum[:])
}
