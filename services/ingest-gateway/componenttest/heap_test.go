package componenttest

import (
	"runtime"
	"sync/atomic"
	"time"
)

// sampleHeapInUse samples this process's heap in use every few milliseconds until the
// returned function is called, which stops sampling and returns the peak seen. The memory
// tests bound it by the gateway's in-flight budget.
func sampleHeapInUse() (stop func() uint64) {
	var peak atomic.Uint64
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-sampled
		return peak.Load()
	}
}
