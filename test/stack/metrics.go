package stack

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is a scraped Prometheus text exposition: one entry per sample line.
type Metrics []string

// Scrape reads an instance's /metrics, failing the test when it cannot.
func (s *Stack) Scrape(name string) Metrics {
	s.t.Helper()
	m, err := s.TryScrape(name)
	if err != nil {
		s.t.Fatalf("scrape %s: %v", name, err)
	}
	return m
}

// TryScrape reads an instance's /metrics.
func (s *Stack) TryScrape(name string) (Metrics, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.AdminURL(name) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m Metrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			m = append(m, l)
		}
	}
	return m, sc.Err()
}

// Samples returns the lines of metric name (exactly, labels aside) containing every label
// fragment given.
func (m Metrics) Samples(name string, labels ...string) []string {
	var out []string
	for _, l := range m {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		all := true
		for _, frag := range labels {
			all = all && strings.Contains(l, frag)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// Sum adds the values of the matching samples.
func (m Metrics) Sum(name string, labels ...string) float64 {
	var total float64
	for _, l := range m.Samples(name, labels...) {
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

// Describe lists the matching samples, labels and values, for messages.
func (m Metrics) Describe(name string) string {
	var parts []string
	for _, l := range m.Samples(name) {
		if i := strings.IndexByte(l, '{'); i >= 0 {
			l = l[i:]
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, ", ")
}
