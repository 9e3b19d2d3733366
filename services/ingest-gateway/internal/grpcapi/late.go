package grpcapi

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// LateTap is a grpc.InTapHandle whose Tap is set after the server options are fixed (a
// service's options are declared before its setup builds what the tap needs).
type LateTap struct{ tap atomic.Pointer[Tap] }

// Set installs t.
func (l *LateTap) Set(t *Tap) { l.tap.Store(t) }

// Handle runs the installed Tap; before one is installed every stream is refused
// UNAVAILABLE (the server serves only after setup, so this is a safeguard).
func (l *LateTap) Handle(ctx context.Context, info *tap.Info) (context.Context, error) {
	t := l.tap.Load()
	if t == nil {
		return ctx, status.Error(codes.Unavailable, "the gateway is starting")
	}
	return t.Handle(ctx, info)
}
