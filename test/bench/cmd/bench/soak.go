package main

import (
	"context"
	"sort"
	"sync"
	"time"
)

// soakResult is the soak phase (-soak): a steady load at a fraction of the end-to-end rate
// for a long while, every process's resident set sampled along it, to see whether memory
// stays flat.
type soakResult struct {
	Seconds       float64               `json:"seconds"`
	AskedRate     float64               `json:"askedEventsPerSecond"`
	SentRate      float64               `json:"sentEventsPerSecond"`
	Events        int                   `json:"events"`
	SampleSeconds float64               `json:"sampleEverySeconds"`
	RSS           map[string]rssSamples `json:"rssMiB"`
	Freshness     freshness             `json:"freshness"`
}

// rssSamples is one process's resident set (VmRSS) over the soak.
type rssSamples struct {
	Start   float64   `json:"start"`
	End     float64   `json:"end"`
	Max     float64   `json:"max"`
	Min     float64   `json:"min"`
	Samples []float64 `json:"samples"`
}

// growth is the end's resident set over the start's: what "flat" is judged by.
func (s rssSamples) growth() float64 {
	if s.Start <= 0 {
		return 0
	}
	return s.End / s.Start
}

// rssSampler reads every measured process's VmRSS every interval until stopped.
type rssSampler struct {
	p        *procs
	interval time.Duration

	mu      sync.Mutex
	samples map[string][]float64
	stop    chan struct{}
	done    chan struct{}
}

func startRSSSampler(p *procs, interval time.Duration) *rssSampler {
	s := &rssSampler{p: p, interval: interval, samples: map[string][]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-ticker.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	for name, pid := range s.p.pids {
		rss, _, err := memoryKiB(pid)
		if err != nil {
			s.p.t.Errorf("memory of %s: %v", name, err)
			continue
		}
		s.mu.Lock()
		s.samples[name] = append(s.samples[name], float64(rss)/1024)
		s.mu.Unlock()
	}
}

// finish takes a last sample and returns every process's series.
func (s *rssSampler) finish() map[string]rssSamples {
	close(s.stop)
	<-s.done
	s.sample()
	out := map[string]rssSamples{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, v := range s.samples {
		sorted := append([]float64(nil), v...)
		sort.Float64s(sorted)
		out[name] = rssSamples{Start: v[0], End: v[len(v)-1], Min: sorted[0], Max: sorted[len(sorted)-1], Samples: v}
	}
	return out
}

// soak sends at rate for d with every process's RSS sampled each interval, then waits for
// the rows and reads their freshness.
func soak(ctx context.Context, p *procs, prod *producers, w rows, o options, rate float64) (soakResult, error) {
	wl := workload{phase: "soak", players: o.players, seed: o.seed, phaseNo: 5}
	sampler := startRSSSampler(p, o.soakSample)
	res, err := prod.paced(ctx, wl, rate, o.soak)
	if err != nil {
		sampler.finish()
		return soakResult{}, err
	}
	w.wait(ctx, "soak", res.Events)
	out := soakResult{Seconds: o.soak.Seconds(), AskedRate: rate, SentRate: res.rate(), Events: res.Events,
		SampleSeconds: o.soakSample.Seconds(), RSS: sampler.finish()}
	out.Freshness = w.freshness(ctx, "soak")
	out.Freshness.AskedRate, out.Freshness.SentRate = rate, res.rate()
	return out, nil
}
