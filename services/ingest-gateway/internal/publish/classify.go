package publish

import (
	"context"
	"errors"
	"net"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Per-entry error codes of PutRecords (PutRecordsResultEntry.ErrorCode) that a resend of the
// same entry can overcome. The others (KMSDisabledException, KMSInvalidStateException,
// KMSAccessDeniedException, KMSNotFoundException, KMSOptInRequired) need an operator.
var retryableEntryCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"InternalFailure":                        true,
	"InternalFailureException":               true,
	"ServiceUnavailable":                     true,
	"KMSThrottlingException":                 true,
}

func retryableEntryCode(code string) bool { return retryableEntryCodes[code] }

// Whole-call API error codes that are transient: throttling, server-side failures, and a
// stream that is still being created (ResourceInUseException is what PutRecords answers for
// a stream that is not ACTIVE or UPDATING yet).
var transientAPICodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"LimitExceededException":                 true,
	"ThrottlingException":                    true,
	"Throttling":                             true,
	"TooManyRequestsException":               true,
	"RequestLimitExceeded":                   true,
	"SlowDown":                               true,
	"KMSThrottlingException":                 true,
	"InternalFailure":                        true,
	"InternalFailureException":               true,
	"InternalServerError":                    true,
	"ServiceUnavailable":                     true,
	"ServiceUnavailableException":            true,
	"RequestTimeout":                         true,
	"RequestTimeoutException":                true,
	"ResourceInUseException":                 true,
	"ExpiredTokenException":                  true, // credentials are refreshed on the next call
}

// Whole-call API error codes that no retry can fix.
var permanentAPICodes = map[string]bool{
	"ResourceNotFoundException":   true,
	"InvalidArgumentException":    true,
	"ValidationException":         true,
	"SerializationException":      true,
	"AccessDeniedException":       true,
	"UnrecognizedClientException": true,
	"InvalidSignatureException":   true,
	"KMSDisabledException":        true,
	"KMSInvalidStateException":    true,
	"KMSAccessDeniedException":    true,
	"KMSNotFoundException":        true,
	"KMSOptInRequired":            true,
}

// transient reports whether a failed PutRecords call is worth repeating. API errors are
// classified by their code first; unknown codes by HTTP status (429 and 5xx are transient);
// errors that never got an answer (connection refused, reset, timeouts) are transient. An
// error of unknown kind counts as transient: the retry budget bounds what that costs, and
// giving up early on an outage would turn it into lost events for the client.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	// No answer at all: connection refused or reset, DNS, a timeout on the wire. The SDK
	// wraps these in a ResponseError with status 0, so they are sorted out first.
	var sendErr *smithyhttp.RequestSendError
	var netErr net.Error
	if errors.As(err, &sendErr) || errors.As(err, &netErr) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		if transientAPICodes[code] {
			return true
		}
		if permanentAPICodes[code] {
			return false
		}
		var respErr *smithyhttp.ResponseError
		if errors.As(err, &respErr) && respErr.HTTPStatusCode() != 0 {
			status := respErr.HTTPStatusCode()
			return status == 429 || status >= 500
		}
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() != 0 {
		status := respErr.HTTPStatusCode()
		return status == 429 || status >= 500
	}
	// An error of unknown kind, such as a truncated or undecodable response.
	return true
}

// errorCode names an error for results and metrics: the API error code when there is one.
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return "NetworkError"
	}
	return "Unknown"
}
