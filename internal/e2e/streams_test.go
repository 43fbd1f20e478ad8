package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/testenv"
)

// streams are live-result streams opened at once from one client; the ones
// answered 200 stay open until close.
type streams struct {
	mu      sync.Mutex
	status  map[int]int // status → count; 0 is no answer (refused, reset)
	cancels []context.CancelFunc
}

// openStreams opens n streams concurrently and returns once each has its
// answer (or none, within 10 s).
func openStreams(client *http.Client, base string, n int) *streams {
	s := &streams{status: map[int]int{}}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			timer := time.AfterFunc(10*time.Second, cancel)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/results/api/stream", nil)
			resp, err := client.Transport.RoundTrip(req)
			timer.Stop()
			s.mu.Lock()
			defer s.mu.Unlock()
			switch {
			case err != nil:
				s.status[0]++
				cancel()
			case resp.StatusCode == http.StatusOK:
				// Read as a browser does, so that closing sends a FIN (a
				// client that never read would reset, which any proxy sees).
				go func() {
					defer resp.Body.Close()
					io.Copy(io.Discard, resp.Body)
				}()
				s.status[resp.StatusCode]++
				s.cancels = append(s.cancels, cancel)
			default:
				s.status[resp.StatusCode]++
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cancel()
			}
		})
	}
	wg.Wait()
	return s
}

// close ends every open stream, as a client that leaves does.
func (s *streams) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.cancels {
		cancel()
	}
	s.cancels = nil
}

// streamClients reads result's stream gauge from its own port.
func streamClients(c *launcher.Cluster) (int, error) {
	resp, err := http.Get("http://" + c.Result.Addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "surge_results_stream_clients "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("result's /metrics has no surge_results_stream_clients")
}

// One client holding live-result streams must not take the site down
// (issue 17: 4,300 streams from one address filled HAProxy's 4,096
// connections, and votes timed out for everyone). Here the front takes 60
// connections; one address may hold 20, and streams 30 in all.
func TestEdgeStreamFloodFromOneClient(t *testing.T) {
	const maxConn, perIP, streamCap = 60, 20, 30
	c := up(t, 1, 1, func(o *launcher.Options) {
		o.MaxConn, o.ConnPerIP, o.StreamsPerResult = maxConn, perIP, streamCap
	})
	flooder, other := clientFrom(t, c, "127.0.0.2"), clientFrom(t, c, "127.0.0.3")
	defer flooder.CloseIdleConnections()
	defer other.CloseIdleConnections()

	// The flood: more streams than the whole front takes.
	flood := openStreams(flooder, c.URL, maxConn+20)
	defer flood.close()
	// Everyone else is still served.
	if _, status := vote(t, other, c.URL, "cats"); status != http.StatusAccepted {
		t.Fatalf("another client's vote during the flood: %d, want 202", status)
	}
	for _, path := range []string{"/api/items", "/results/api/polls/cats-vs-dogs"} {
		resp, err := other.Get(c.URL + path)
		if err != nil {
			t.Fatalf("another client's GET %s during the flood: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("another client's GET %s during the flood: %d", path, resp.StatusCode)
		}
	}
	if flood.status[http.StatusOK] != perIP || flood.status[0] != maxConn+20-perIP {
		t.Fatalf("flooder's %d streams: %v, want %d open and the rest refused", maxConn+20, flood.status, perIP)
	}

	// Streams have a cap of their own: the next client gets what is left
	// of it, then 503, and its votes still pass.
	more := openStreams(other, c.URL, 15)
	defer more.close()
	if left := streamCap - perIP; more.status[http.StatusOK] != left || more.status[http.StatusServiceUnavailable] != 15-left {
		t.Fatalf("15 more streams with %d of %d taken: %v, want %d open and the rest 503", perIP, streamCap, more.status, left)
	}
	if _, status := vote(t, other, c.URL, "dogs"); status != http.StatusAccepted {
		t.Fatalf("a vote with every stream taken: %d, want 202", status)
	}

	// A client that leaves frees its streams on the server at once, not at
	// the next heartbeat (15 s).
	if n, err := streamClients(c); err != nil || n != streamCap {
		t.Fatalf("result counts %d streams (%v), want %d", n, err, streamCap)
	}
	flood.close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n, err := streamClients(c); err != nil || n != streamCap-perIP {
			return fmt.Errorf("result still counts %d streams (%v) after the flooder left, want %d", n, err, streamCap-perIP)
		}
		return nil
	})
	if again := openStreams(flooder, c.URL, 1); again.status[http.StatusOK] != 1 {
		t.Fatalf("a stream after the flooder's closed: %v, want 200", again.status)
	} else {
		again.close()
	}
}

// /metrics is for Prometheus on each service's own port, never public
// through HAProxy, however the path is spelled.
func TestEdgeMetricsNotPublic(t *testing.T) {
	c := up(t, 1, 1)
	front := strings.TrimPrefix(c.URL, "http://")
	for _, target := range []string{"/metrics", "/metrics/", "/%6detrics", "/%2Fmetrics", "/metrics?x=1", "/./metrics",
		"/results/../metrics", "http://" + front + "/metrics", "http://" + front + "//metrics"} {
		status, body := getAsIs(t, c.URL, target)
		if status == http.StatusOK || strings.Contains(body, "# HELP") {
			t.Errorf("GET %s through HAProxy: %d, metrics shown: %v", target, status, strings.Contains(body, "# HELP"))
		}
	}
	if status, body := getAsIs(t, "http://"+c.Result.Addr, "/metrics"); status != http.StatusOK || !strings.Contains(body, "surge_results_stream_clients") {
		t.Fatalf("result's own /metrics: %d", status)
	}
}

// getAsIs sends target on the request line as it is, unnormalised.
func getAsIs(t *testing.T, base, target string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
