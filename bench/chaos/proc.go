package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tapline/bench"
)

// proc is a child process the harness can start, kill with SIGKILL and
// start again with the same arguments.
type proc struct {
	name   string
	bin    string
	args   []string
	dir    string // its log goes to dir/name.log
	url    string // its base URL (the broker: its host:port)
	health string // URL answering < 500 once it is ready; "" means none
	// metrics is the URL of its Prometheus /metrics, when it serves one.
	metrics string
	// profile adds -cpu-profile, a file per run in dir: a run ended by
	// kill -9 leaves an empty one.
	profile bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	starts int
	peak   int64 // highest VmHWM of any incarnation, KiB
}

// start runs the process and waits until its health URL answers (up to
// wait; 0 means a minute). It fails when the process exits first.
func (p *proc) start(ctx context.Context, wait time.Duration) error {
	if err := p.spawn(); err != nil {
		return err
	}
	return p.waitReady(ctx, wait)
}

// spawn starts the process without waiting for it to be ready.
func (p *proc) spawn() error {
	log, err := os.OpenFile(filepath.Join(p.dir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	fmt.Fprintf(log, "\n=== chaos: start %s %s at %s\n", p.bin, strings.Join(p.args, " "), time.Now().UTC().Format(time.RFC3339Nano))
	args := p.args
	if p.profile {
		p.mu.Lock()
		n := p.starts
		p.mu.Unlock()
		args = append(slices.Clone(args), "-cpu-profile", filepath.Join(p.dir, fmt.Sprintf("%s-%d.cpu.pprof", p.name, n)))
	}
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.starts++
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// waitReady waits until the health URL answers below 500.
func (p *proc) waitReady(ctx context.Context, wait time.Duration) error {
	if wait <= 0 {
		wait = time.Minute
	}
	if p.health == "" {
		return nil
	}
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(wait)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.health, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting: %v (log %s)", p.name, p.exitErr(), filepath.Join(p.dir, p.name+".log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (log %s)", p.name, wait, filepath.Join(p.dir, p.name+".log"))
		}
	}
}

func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// pid returns the running process's id, or 0.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || p.exitedLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) exitedLocked() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive reports whether the process runs.
func (p *proc) alive() bool { return p.pid() != 0 }

// notePeak records the current incarnation's peak resident set.
func (p *proc) notePeak() {
	if pid := p.pid(); pid != 0 {
		if v := bench.PeakRSS(pid); v > 0 {
			p.mu.Lock()
			p.peak = max(p.peak, v)
			p.mu.Unlock()
		}
	}
}

// peakRSS returns the highest peak resident set seen, in KiB.
func (p *proc) peakRSS() int64 {
	p.notePeak()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// signal sends sig and waits up to wait for the process to exit.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) error {
	p.notePeak()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %s of %s; killed", p.name, wait, sig)
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *proc) kill9() error { return p.signal(syscall.SIGKILL, 10*time.Second) }

// stop asks the process to shut down (SIGTERM) and waits.
func (p *proc) stop() error { return p.signal(syscall.SIGTERM, 60*time.Second) }

// scrape reads the process's /metrics and sums every sample of each
// metric name over its labels.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return out, nil
}
