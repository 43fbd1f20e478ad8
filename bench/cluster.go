package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/surge-vote/surge/internal/launcher"
	"github.com/surge-vote/surge/internal/loadgen"
)

// benchCluster runs the whole pipeline as `make run` does (HAProxy, 2
// shards, 2 workers, result, admin) and measures, each round on fresh
// processes: the max capture rate through HAProxy while the workers drain;
// the freshness (202 to visible in /results/api) at half that rate; and the
// peak RSS of the web and worker processes.
func benchCluster(ctx context.Context, o options, res *Results) error {
	k := &res.Cluster
	var maxRates, targets, rates, p50s, p99s, maxes, webRSS, workerRSS []float64
	for round := range o.rounds {
		dir := filepath.Join(o.dir, fmt.Sprintf("cluster-%d", round+1))
		os.MkdirAll(dir, 0o755)
		os.Chmod(dir, 0o755)
		c, err := launcher.Up(ctx, launcher.Options{Dir: dir, BinDir: o.bin, Shards: 2, Workers: 2, WebEnv: benchLimits})
		if err != nil {
			return err
		}
		err = func() error {
			defer c.Stop()
			if _, err := load(ctx, o, c.URL, 0, time.Second, fmt.Sprintf("cluster-%d-warmup", round+1)); err != nil {
				return err
			}
			rep, err := load(ctx, o, c.URL, 0, o.measure, fmt.Sprintf("cluster-%d-max", round+1))
			if err != nil {
				return err
			}
			k.Errors += rep.Summary.Errors
			maxRate := rep.Summary.OKRate
			if err := drained(ctx, c.URL, 2*time.Minute); err != nil {
				return err
			}

			// Freshness: tracer votes in a poll of their own, while the load
			// runs at half the max rate.
			rate := maxRate / 2
			tr := &tracer{base: c.URL, poll: fmt.Sprintf("fresh-%d", round+1), user: c.AdminUser, password: c.AdminPassword}
			if err := tr.createPoll(ctx); err != nil {
				return err
			}
			loadCtx, cancel := context.WithCancel(ctx)
			var loadErr error
			var loadRep *loadgen.Report
			var wg sync.WaitGroup
			wg.Go(func() {
				loadRep, loadErr = load(loadCtx, o, c.URL, rate, 2*o.measure, fmt.Sprintf("cluster-%d-half", round+1))
			})
			time.Sleep(time.Second) // the load settles before freshness is measured (a warm-up, kept)
			lags, failed := tr.run(ctx, 2*o.measure-2*time.Second)
			wg.Wait()
			cancel()
			if loadErr != nil {
				return loadErr
			}
			k.Errors += loadRep.Summary.Errors + int64(failed)
			if len(lags) < 20 {
				return fmt.Errorf("only %d freshness samples", len(lags))
			}
			slices.Sort(lags)
			q := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
			if err := drained(ctx, c.URL, 2*time.Minute); err != nil {
				return err
			}
			var web, worker float64
			for _, w := range c.Web {
				web = max(web, peakRSS(w.Pid()))
			}
			for _, w := range c.Workers {
				worker = max(worker, peakRSS(w.Pid()))
			}
			maxRates, targets, rates = append(maxRates, maxRate), append(targets, rate), append(rates, loadRep.Summary.OKRate)
			p50s, p99s, maxes = append(p50s, q(0.5)), append(p99s, q(0.99)), append(maxes, lags[len(lags)-1])
			webRSS, workerRSS = append(webRSS, web), append(workerRSS, worker)
			k.Samples = append(k.Samples, len(lags))
			say(o, "  cluster round %d: max %.0f/s; at %.0f/s (asked %.0f/s) freshness p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d tracers); peak RSS web %.0f MB, worker %.0f MB",
				round+1, maxRate, loadRep.Summary.OKRate, rate, q(0.5), q(0.99), lags[len(lags)-1], len(lags), web, worker)
			return nil
		}()
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
	}
	k.MaxRate, k.RateTarget, k.Rate = figure("/s", maxRates), figure("/s", targets), figure("/s", rates)
	k.FreshP50, k.FreshP99, k.FreshMax = figure("ms", p50s), figure("ms", p99s), figure("ms", maxes)
	k.WebRSS, k.WorkerRSS = figure("MB", webRSS), figure("MB", workerRSS)
	return nil
}

// drained waits for the result service to report every shard drained.
func drained(ctx context.Context, base string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var b struct {
			Drained bool `json:"drained"`
		}
		if err := getJSON(ctx, base+"/results/api/backlog", &b); err == nil && b.Drained {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the queues to drain: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// tracer measures freshness: the time from a vote's 202 to the first read
// of /results/api that shows it. Each of the tracer poll's ten options has
// one tracer vote (from a new voter) in flight at a time, so the option's
// count says exactly when that vote became visible.
type tracer struct {
	base, poll     string
	user, password string
	options        []string

	mu     sync.Mutex
	cond   *sync.Cond
	counts map[string]int64
	seenAt time.Time
	stop   bool
}

func (t *tracer) createPoll(ctx context.Context) error {
	for i := range 10 {
		t.options = append(t.options, fmt.Sprintf("o%d", i))
	}
	body, _ := json.Marshal(map[string]any{"id": t.poll, "title": "freshness tracer", "options": t.options})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/admin/api/polls", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(t.user, t.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create tracer poll: %s", resp.Status)
	}
	// Wait until the frontends know it (they learn of it by NOTIFY, and
	// reload): eight vote-page reads in a row, round robin, must find it.
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 20*time.Millisecond, 500*time.Millisecond
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		for range 8 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/polls/"+t.poll, nil)
			if err != nil {
				return struct{}{}, backoff.Permanent(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return struct{}{}, err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return struct{}{}, fmt.Errorf("GET /polls/%s: %s", t.poll, resp.Status)
			}
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(15*time.Second))
	if err != nil {
		return fmt.Errorf("tracer poll %s never reached the frontends: %w", t.poll, err)
	}
	return nil
}

// run sends tracers for d and returns each one's lag in ms, and how many
// tracer votes failed.
func (t *tracer) run(ctx context.Context, d time.Duration) (lags []float64, failed int) {
	t.cond = sync.NewCond(&t.mu)
	t.counts = map[string]int64{}
	var poller sync.WaitGroup
	poller.Go(func() {
		for {
			var r struct {
				Counts map[string]int64 `json:"counts"`
			}
			err := getJSON(ctx, t.base+"/results/api/polls/"+t.poll, &r)
			now := time.Now()
			t.mu.Lock()
			if err == nil {
				t.counts, t.seenAt = r.Counts, now
				t.cond.Broadcast()
			}
			stop := t.stop
			t.mu.Unlock()
			if stop || ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // the measurement's resolution: kept
		}
	})
	var mu sync.Mutex
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second} // no cookie jar: every tracer is a new voter
	for _, option := range t.options {
		wg.Go(func() {
			var expect int64
			for time.Now().Before(end) && ctx.Err() == nil {
				body := fmt.Sprintf(`{"poll":%q,"choice":%q}`, t.poll, option)
				resp, err := client.Post(t.base+"/vote", "application/json", bytes.NewReader([]byte(body)))
				acked := time.Now()
				if err != nil || resp.StatusCode != http.StatusAccepted {
					if err == nil {
						resp.Body.Close()
					}
					mu.Lock()
					failed++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond) // pacing after a failed vote, not a wait
					continue
				}
				resp.Body.Close()
				expect++
				t.mu.Lock()
				for t.counts[option] < expect && !t.stop {
					t.cond.Wait()
				}
				seen, stopped := t.seenAt, t.stop
				t.mu.Unlock()
				if stopped {
					return
				}
				mu.Lock()
				// Seen by a read that began before the 202 arrived: no lag.
				lags = append(lags, max(0, float64(seen.Sub(acked))/float64(time.Millisecond)))
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // tracers' pace, not a wait
			}
		})
	}
	// Tracers still waiting after the end get up to 30 s more.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d + 30*time.Second):
	}
	t.mu.Lock()
	t.stop = true
	t.cond.Broadcast()
	t.mu.Unlock()
	<-done
	poller.Wait()
	return lags, failed
}
