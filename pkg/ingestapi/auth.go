package ingestapi

// Problem types of producer authentication, quotas and slow clients (see Type* in
// ingestapi.go for the others).
const (
	// TypeUnauthenticated (401, with WWW-Authenticate: Bearer): no credential, or one that
	// is not valid. The answer never says whether a key exists.
	TypeUnauthenticated = "unauthenticated"
	// TypeForbidden (403): the producer lacks the scope an event needs (ingest for stat
	// lines, retract for retractions) or sends a source it does not own; Errors names the
	// events. Nothing was sent.
	TypeForbidden = "forbidden"
	// TypeQuotaExceeded (429, with Retry-After): the producer is over its events/s or
	// bytes/s quota. Nothing was sent; other producers are not affected.
	TypeQuotaExceeded = "quota-exceeded"
	// TypeBodyTimeout (408): the body did not arrive within the gateway's body read
	// timeout. Nothing was sent.
	TypeBodyTimeout = "body-timeout"
)
