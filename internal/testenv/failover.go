package testenv

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load is conns clients sending requests in a closed loop: each sends its
// next request only once its last one is answered, so at most conns are in
// flight at any moment.
type Load struct {
	answers atomic.Int64
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// StartLoad starts conns clients, each calling send over and over until
// Stop.
func StartLoad(conns int, send func()) *Load {
	l := &Load{stop: make(chan struct{})}
	for range conns {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				send()
				l.answers.Add(1)
			}
		})
	}
	return l
}

// Answers is the number of requests answered so far.
func (l *Load) Answers() int64 { return l.answers.Load() }

// WaitAnswers waits for n more answers than there are now, within the bound
// the rate floor gives.
func (l *Load) WaitAnswers(t testing.TB, n int) {
	t.Helper()
	want := l.Answers() + int64(n)
	Eventually(t, AnswersBound(n), func() error {
		if got := l.Answers(); got < want {
			return fmt.Errorf("%d answers of %d", got, want)
		}
		return nil
	})
}

// Stop stops the clients and waits for their last answers. Calling it
// again does nothing.
func (l *Load) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Frontend stands in for a capture frontend behind HAProxy: it answers
// POST /vote 202 and GET /healthz 200 until Break, then 503 to both, as a
// frontend whose Redis is gone does.
type Frontend struct {
	Addr   string
	Served atomic.Int64 // votes answered 202
	broken atomic.Bool
}

// NewFrontend starts a Frontend on a free loopback port until the test ends.
func NewFrontend(t testing.TB) *Frontend {
	t.Helper()
	f := &Frontend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.broken.Load() {
			http.Error(w, `{"error":"queue unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/vote" {
			f.Served.Add(1)
			w.WriteHeader(http.StatusAccepted)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// Break makes f answer 503; Heal makes it answer again.
func (f *Frontend) Break() { f.broken.Store(true) }
func (f *Frontend) Heal()  { f.broken.Store(false) }

// FrontendFailover checks an HAProxy configuration's promise: a capture
// frontend that starts answering 503 leaves rotation at its first 503, so
// only the requests already in flight on it get one, and once healthy it is
// back within rise. start starts HAProxy in
// front of the given frontends and returns its front address.
func FrontendFailover(t *testing.T, rise time.Duration, start func(web []string) (front string)) {
	t.Helper()
	const conns, answers = 8, 2000
	fronts := []*Frontend{NewFrontend(t), NewFrontend(t)}
	front := start([]string{fronts[0].Addr, fronts[1].Addr})
	client := &http.Client{Timeout: RequestBound, Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	var mu sync.Mutex
	statuses := map[int]int{}
	load := StartLoad(conns, func() {
		status := 0
		if resp, err := client.Post("http://"+front+"/vote", "application/json", strings.NewReader(`{"choice":"cats"}`)); err == nil {
			resp.Body.Close()
			status = resp.StatusCode
		}
		mu.Lock()
		statuses[status]++
		mu.Unlock()
	})
	defer load.Stop()
	served := func(f *Frontend, n int64) func() error {
		return func() error {
			if got := f.Served.Load(); got < n {
				return fmt.Errorf("frontend %s served %d votes, want %d", f.Addr, got, n)
			}
			return nil
		}
	}
	// Both in rotation, round robin.
	for _, f := range fronts {
		Eventually(t, AnswersBound(2*50), served(f, 50))
	}

	fronts[0].Break()
	load.WaitAnswers(t, answers)
	mu.Lock()
	got := maps.Clone(statuses)
	mu.Unlock()
	if got[http.StatusServiceUnavailable] > conns || len(got) > 2 || got[http.StatusAccepted] == 0 {
		t.Errorf("statuses %v after a frontend broke under %d clients: want at most %d (those in flight) 503, the rest 202",
			got, conns, conns)
	}

	fronts[0].Heal()
	back := fronts[0].Served.Load() + 1
	Eventually(t, rise+AnswersBound(conns), served(fronts[0], back))
	t.Logf("statuses %v; %d clients; the healed frontend is back in rotation", got, conns)
}
