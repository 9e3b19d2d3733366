package consumer

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
)

// errTokenRaised stops a reader whose lease token was just raised: a reader under the new
// token takes over (it is an ErrLeaseLost, for the old token).
var errTokenRaised = fmt.Errorf("%w: lease token raised", ErrLeaseLost)

// tokenRaiser is what Leases offer (*lease.Manager does) to heal a lease store that was
// reset: lifting a held lease's fencing token above the one the warehouse refused it
// with. Optional, so that test doubles of Leases need not implement it.
type tokenRaiser interface {
	// RaiseToken lifts the lease held under token above above, with a conditional update
	// in the lease store; the lease is then reported Lost under token and Acquired under
	// the returned one.
	RaiseToken(ctx context.Context, shardID string, token, above int64) (int64, error)
}

// leaseGiver is what Leases offer (*lease.Manager does) to give back a lease the warehouse
// will not let this consumer use. Optional, like tokenRaiser.
type leaseGiver interface {
	// GiveUp releases the lease if it is still held under token.
	GiveUp(ctx context.Context, shardID string, token int64, reason string) error
}

// claimRefusedError is a ClaimShard answered FAILED_PRECONDITION: the warehouse holds a
// token greater than the claim's, or the same token claimed by another owner.
type claimRefusedError struct {
	token  int64
	stored *loadv1.Checkpoint // nil when the answer carried no checkpoint
	err    error
}

func (e *claimRefusedError) Error() string {
	return fmt.Sprintf("claim with token %d refused (stored token %d, owner %q): %v",
		e.token, e.stored.GetLeaseToken(), e.stored.GetOwner(), e.err)
}

// Unwrap makes a refused claim an ErrLeaseLost: the reader stops without reading.
func (e *claimRefusedError) Unwrap() []error { return []error{ErrLeaseLost, e.err} }

// claim claims the shard in the warehouse under the reader's token and returns the
// checkpoint to resume from. Claiming fences off any former owner before the first read.
//
// A claim the warehouse refuses while this consumer still holds the lease means the lease
// store's counter is below a token the warehouse already holds: the lease store was reset
// (rows deleted, moved to another database, another --lease-schema), since in one store a
// greater token can only come from a later take, which would have taken the lease away.
// The reader then asks the lease manager to raise the lease's token above the stored one
// and stops; the coordinator starts a reader under the new token, which claims again. A
// refusal that cannot be healed so stops the reader with ErrLeaseLost, and the
// coordinator gives the lease up.
func (r *shardReader) claim(ctx context.Context) (*loadv1.Checkpoint, error) {
	// The claim names the stream's identity: a checkpoint of an earlier stream of the same
	// name is archived by the loader and the shard starts over (resp.Archived).
	resp, err := retry(ctx, r.c.cfg.Retry, func() (*loadv1.ClaimShardResponse, error) {
		resp, err := r.c.loader.ClaimShard(ctx, &loadv1.ClaimShardRequest{
			Stream: r.c.cfg.Stream, ShardId: r.shardID(), LeaseToken: r.token, Owner: r.c.cfg.ConsumerID,
			StreamIdentity: r.c.identity(),
		})
		if status.Code(err) == codes.FailedPrecondition {
			return nil, backoffPermanent(&claimRefusedError{token: r.token, stored: storedCheckpoint(err), err: err})
		}
		return resp, err
	}, r.notify("claim shard"))
	var refused *claimRefusedError
	if errors.As(err, &refused) {
		return nil, r.raiseToken(ctx, refused)
	}
	if err != nil {
		return nil, fmt.Errorf("claim shard: %w", err)
	}
	r.reportArchived(ctx, resp.GetArchived())
	return resp.GetCheckpoint(), nil
}

// raiseToken handles a refused claim: it raises the lease's token above the warehouse's
// when it can, and returns the error that stops this reader either way (ErrLeaseLost).
func (r *shardReader) raiseToken(ctx context.Context, refused *claimRefusedError) error {
	above := refused.stored.GetLeaseToken()
	raiser, ok := r.c.leases.(tokenRaiser)
	if !ok || refused.stored == nil || above < r.token {
		r.log.Warn("claim refused", "error", refused)
		return fmt.Errorf("claim shard: %w", refused)
	}
	token, err := raiser.RaiseToken(ctx, r.shardID(), r.token, above)
	if err != nil {
		// Not held any more (its Lost event follows), or the store failed: this reader
		// stops; a reader under a newer lease claims again.
		r.log.Warn("claim refused, and the lease token could not be raised", "stored_lease_token", above,
			"stored_owner", refused.stored.GetOwner(), "error", err)
		return fmt.Errorf("claim shard: %w (raise token: %w)", refused, err)
	}
	r.log.Warn("claim refused below the warehouse's token: lease token raised, claiming again under it",
		"stored_lease_token", above, "stored_owner", refused.stored.GetOwner(), "new_lease_token", token)
	return fmt.Errorf("%w: token %d raised to %d above the warehouse's %d", errTokenRaised, r.token, token, above)
}

// storedCheckpoint is the Checkpoint detail of a FAILED_PRECONDITION answer, nil if none.
func storedCheckpoint(err error) *loadv1.Checkpoint {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if cp, ok := d.(*loadv1.Checkpoint); ok {
			return cp
		}
	}
	return nil
}

// giveUp releases a lease this consumer still holds under token but whose reader stopped
// because the warehouse refused it (a claim or a commit): held unread, it would keep the
// shard from every other replica while renewals made it look alive.
func (co *coordinator) giveUp(ctx context.Context, shardID string, token int64, why error) {
	giver, ok := co.c.leases.(leaseGiver)
	if !ok || errors.Is(why, errTokenRaised) {
		return
	}
	co.c.log.Warn("the warehouse refused this consumer's lease; giving the lease up", "shard_id", shardID, "lease_token", token, "error", why)
	if err := giver.GiveUp(ctx, shardID, token, why.Error()); err != nil {
		co.c.log.Warn("give up lease", "shard_id", shardID, "lease_token", token, "error", err)
	}
}
