package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a server the benchmark started.
type Process interface {
	URL() string  // base URL, http://127.0.0.1:port
	PIDs() []int  // the processes whose peak memory counts
	Stop() error  // stops it and waits
	Name() string // for the table
}

// execProc is a child process.
type execProc struct {
	name string
	url  string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
	// children adds the child processes (nginx workers) to PIDs.
	children bool
	// debugURL is the base URL of the process's /debug/pprof/, when it
	// serves one (tapline run -debug-addr).
	debugURL string
}

func (p *execProc) URL() string  { return p.url }
func (p *execProc) Name() string { return p.name }

func (p *execProc) PIDs() []int {
	pids := []int{p.cmd.Process.Pid}
	if p.children {
		pids = append(pids, childrenOf(p.cmd.Process.Pid)...)
	}
	return pids
}

func (p *execProc) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		err = <-p.done
	}
	p.log.Close()
	var ee *exec.ExitError
	if err != nil && !(asExit(err, &ee) && ee.ExitCode() <= 0) {
		return fmt.Errorf("stop %s: %w (log %s)", p.name, err, p.log.Name())
	}
	return nil
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// startExec starts bin with args, logging to dir/name.log, and waits
// until url+health answers 200.
func startExec(ctx context.Context, name, dir, url, health string, bin string, args ...string) (*execProc, error) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &execProc{name: name, url: url, cmd: cmd, done: make(chan error, 1), log: log}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			log.Close()
			return nil, fmt.Errorf("%s exited at start: %v (log %s)", name, err, log.Name())
		case <-ctx.Done():
			_ = p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return nil, fmt.Errorf("%s did not answer %s within a minute (log %s)", name, health, log.Name())
		}
	}
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// PeakRSS returns the peak resident set (VmHWM) of pid in KiB, or 0.
func PeakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// peakRSS sums the peaks of a process's pids (nginx: master and workers).
func peakRSS(p Process) int64 {
	var total int64
	for _, pid := range p.PIDs() {
		total += PeakRSS(pid)
	}
	return total
}

// CPUTime returns the user and system CPU time process pid has used, from
// /proc/<pid>/stat (utime and stime, in the kernel's USER_HZ ticks,
// 100 a second on Linux); 0 when it cannot be read.
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces
	if i < 0 {
		return 0
	}
	// After the comm: state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	user, err1 := strconv.ParseInt(f[11], 10, 64)
	sys, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const userHZ = 100
	return time.Duration(user+sys) * time.Second / userHZ
}

// cpuTime sums the CPU time of a process's pids (nginx: master and
// workers).
func cpuTime(p Process) time.Duration {
	var total time.Duration
	for _, pid := range p.PIDs() {
		total += CPUTime(pid)
	}
	return total
}

// perRecord divides the CPU time a process used over a span by the
// records it handled in it.
func perRecord(cpu time.Duration, records int) time.Duration {
	if records <= 0 || cpu <= 0 {
		return 0
	}
	return cpu / time.Duration(records)
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// startNginx runs nginx in the foreground with a generated configuration
// whose every location answers `return 302` to the App Store.
func startNginx(ctx context.Context, bin, dir string) (*execProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	nd := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(nd, "logs"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	keepalive_requests 1000000;
	server {
		listen %[2]s;
		location = /healthz { return 200 "ok"; }
		location / { return 302 https://apps.apple.com/app/id1234567890; }
	}
}
`, nd, addr)
	cf := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startExec(ctx, "nginx", dir, "http://"+addr, "/healthz", bin, "-p", nd, "-c", cf, "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	p.children = true
	return p, nil
}

// StartExec starts bin with args as a child process called name, its
// output in dir/name.log, and returns once url+health answers below 500
// (within a minute). Other harnesses (bench/soak) start tapline with it.
func StartExec(ctx context.Context, name, dir, url, health, bin string, args ...string) (Process, error) {
	p, err := startExec(ctx, name, dir, url, health, bin, args...)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr() (string, error) { return freeAddr() }
