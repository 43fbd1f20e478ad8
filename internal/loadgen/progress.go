package loadgen

import (
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows the run as it goes: a progress bar on a terminal (rate,
// errors, p99 so far), plain lines once a second otherwise.
type progress struct {
	out   io.Writer
	stats *Stats
	bar   *progressbar.ProgressBar
	stop  chan struct{}
	done  sync.WaitGroup
	mu    sync.Mutex
	step  float64
}

func newProgress(cfg Config, stats *Stats) *progress {
	p := &progress{out: cfg.Progress, stats: stats, stop: make(chan struct{})}
	if p.out == nil {
		return p
	}
	every := time.Second
	if cfg.TTY {
		total := int64(-1) // a spinner when the count is not known in advance
		if cfg.Mode == ModeRate && cfg.Rate > 0 {
			total = min(int64(math.Ceil(cfg.Rate*cfg.Duration.Seconds())), cfg.MaxRequests)
		}
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		)
		every = 250 * time.Millisecond
	}
	p.done.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-t.C:
				p.show(now)
			}
		}
	})
	return p
}

func (p *progress) show(now time.Time) {
	l := p.stats.Live(now)
	p.mu.Lock()
	step := p.step
	p.mu.Unlock()
	stepText := ""
	if step > 0 {
		stepText = fmt.Sprintf("step %.0f/s  ", step)
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s%6.0f req/s  errors %d  p99 %.1f ms", stepText, l.Rate, l.Errors, l.P99))
		p.bar.Set64(l.Requests)
		return
	}
	fmt.Fprintf(p.out, "%5.0fs  %ssent %d  rate %.0f/s  errors %d  p99 %.1f ms\n",
		l.Elapsed.Seconds(), stepText, l.Requests, l.Rate, l.Errors, l.P99)
}

func (p *progress) setStep(rate float64) {
	p.mu.Lock()
	p.step = rate
	p.mu.Unlock()
}

// stepLine reports a finished step of max mode.
func (p *progress) stepLine(st Step) {
	if p.out == nil {
		return
	}
	verdict := "holds"
	if !st.Pass {
		verdict = "misses: " + st.Why
	}
	line := fmt.Sprintf("step %.0f/s: %.0f req/s, p99 %.1f ms, %d errors, %s\n", st.Rate, st.Summary.Rate, st.Summary.Latency.P99, st.Summary.Errors, verdict)
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprint(p.out, line)
}

func (p *progress) finish() {
	if p.out == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	if p.bar != nil {
		p.bar.Finish()
	}
}
