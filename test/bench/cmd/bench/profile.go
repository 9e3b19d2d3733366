package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// profiler takes pprof profiles of the pipeline's services (-profile DIR): during the
// drain, a CPU profile of each service over its first seconds and heap profiles of each at
// a few moments; during a soak (-soak), heap profiles of every service, the gateway's
// included, at a third, two thirds and the end of it. Written as
// DIR/<service>-<kind>.pb.gz, to be read with `go tool pprof`. The services run with --pprof for it, which costs nothing until a
// profile is asked for.
type profiler struct {
	dir    string
	p      *stack.Pipeline
	client *http.Client
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// profiledServices are the services the drain's profiles are taken of, soakProfiled those
// of the soak's.
var (
	profiledServices = []string{stack.Consumer, stack.Transformer, stack.Loader}
	soakProfiled     = []string{stack.Gateway, stack.Consumer, stack.Transformer, stack.Loader}
)

func newProfiler(dir string, p *stack.Pipeline) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	return &profiler{dir: dir, p: p, client: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// drain starts the drain's profiles: CPU over cpuFor, heaps at each of heapsAt after now.
func (pr *profiler) drain(ctx context.Context, cpuFor time.Duration, heapsAt ...time.Duration) {
	start := time.Now()
	for _, service := range profiledServices {
		base := pr.p.AdminURL(service) + "/debug/pprof/"
		pr.wg.Go(func() {
			pr.fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", base, int(cpuFor.Seconds())), service+"-drain-cpu.pb.gz")
		})
		pr.heaps(ctx, start, service, "drain", heapsAt...)
	}
}

// soak starts the soak's heap profiles: at a third, two thirds and the end of d from now.
func (pr *profiler) soak(ctx context.Context, d time.Duration) {
	start := time.Now()
	for _, service := range soakProfiled {
		pr.heaps(ctx, start, service, "soak", d/3, 2*d/3, d-min(5*time.Second, d/10))
	}
}

// heaps takes service's heap profiles at each of at after start, as
// <service>-<phase>-heap-<n>.pb.gz.
func (pr *profiler) heaps(ctx context.Context, start time.Time, service, phase string, at ...time.Duration) {
	url := pr.p.AdminURL(service) + "/debug/pprof/heap"
	for i, after := range at {
		pr.wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(after))):
			}
			pr.fetch(ctx, url, fmt.Sprintf("%s-%s-heap-%d.pb.gz", service, phase, i+1))
		})
	}
}

func (pr *profiler) fetch(ctx context.Context, url, file string) {
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := pr.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		f, err := os.Create(filepath.Join(pr.dir, file))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}()
	if err != nil {
		pr.mu.Lock()
		pr.errs = append(pr.errs, fmt.Errorf("profile %s: %w", url, err))
		pr.mu.Unlock()
	}
}

// wait waits for every profile and returns the first failure.
func (pr *profiler) wait() error {
	pr.wg.Wait()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if len(pr.errs) > 0 {
		return pr.errs[0]
	}
	return nil
}
