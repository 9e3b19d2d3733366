package dlq

import (
	"encoding/hex"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
)

// Decoded is what a dead letter's payload says (deadletter.DecodePayload: the rule the
// loader applies too when it stores a dead letter's player and game).
type Decoded = deadletter.Decoded

// Payload forms, the Form of a Decoded payload.
const (
	FormEnvelope = deadletter.FormEnvelope
	FormRow      = deadletter.FormRow
	FormNone     = deadletter.FormNone
	FormUnknown  = deadletter.FormUnknown
)

// decodePayload decodes a stored payload (deadletter.DecodePayload).
func decodePayload(stage string, payload []byte) Decoded {
	return deadletter.DecodePayload(stage, payload)
}

// hexDump is the payload for people when it cannot be decoded.
func hexDump(payload []byte) string { return hex.Dump(payload) }
