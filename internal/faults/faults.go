// Package faults plays clients that misbehave against an HTTP server, to
// check its timeouts: one that sends its headers a byte at a time, one that
// sends its body a byte at a time, and one that keeps a connection open
// without asking anything. Each returns how long the server took to hang
// up, for the caller to compare with the timeout it configured.
package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Wait bounds how long each client waits for the server to hang up.
const Wait = 10 * time.Second

// SlowHeaders sends a GET of path to addr one header byte every interval
// and returns how long after the dial began the server closed the
// connection. The clock starts before the dial, so it never starts after
// the server's, even when this goroutine waits long for a core. It is an error when the server let the whole header through
// (it never timed the header out) or kept the connection past Wait.
func SlowHeaders(ctx context.Context, addr, path string, interval time.Duration) (time.Duration, error) {
	start := time.Now()
	conn, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	h := watch(conn, start)
	head := "GET " + path + " HTTP/1.1\r\nHost: tapline\r\nX-Slow: " + strings.Repeat("s", 200) + "\r\n\r\n"
	if d, cut, err := h.dribble(ctx, conn, []byte(head), interval); cut || err != nil {
		return d, err
	}
	d, err := h.wait(ctx)
	if err != nil {
		return 0, err
	}
	return d, fmt.Errorf("slow headers to %s%s: the server read the whole header (%d bytes over %s)", addr, path, len(head), d)
}

// SlowBody posts form (a URL-encoded body) to path on addr, the headers at
// once and the body one byte every interval, and returns how long after
// the dial began the server closed the connection (whatever it answered
// first): the server's read timeout covers the headers too. It is an error when the server read the whole body or kept the
// connection past Wait.
func SlowBody(ctx context.Context, addr, path string, form []byte, interval time.Duration) (time.Duration, error) {
	start := time.Now()
	conn, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	head := "POST " + path + " HTTP/1.1\r\nHost: tapline\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
		strconv.Itoa(len(form)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, fmt.Errorf("slow body to %s%s: %w", addr, path, err)
	}
	h := watch(conn, start)
	if d, cut, err := h.dribble(ctx, conn, form, interval); cut || err != nil {
		return d, err
	}
	d, err := h.wait(ctx)
	if err != nil {
		return 0, err
	}
	return d, fmt.Errorf("slow body to %s%s: the server read the whole body (%d bytes over %s)", addr, path, len(form), d)
}

// Idle sends a GET of path to addr, reads the answer, keeps the connection
// open without asking anything more and returns how long after the answer
// the server closed it. It is an error when the server closed the
// connection with the answer (no keep-alive) or kept it past Wait.
func Idle(ctx context.Context, addr, path string) (time.Duration, error) {
	conn, err := dial(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: tapline\r\n\r\n"); err != nil {
		return 0, fmt.Errorf("idle on %s: %w", addr, err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(Wait))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, fmt.Errorf("idle on %s: read the answer to %s: %w", addr, path, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.Close {
		return 0, fmt.Errorf("idle on %s: the server closed the connection with its answer (%d) to %s: no keep-alive to time out", addr, res.StatusCode, path)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(Wait))
	if _, err := br.ReadByte(); err != io.EOF {
		return 0, fmt.Errorf("idle on %s: read %v after %s, want the server to close the connection", addr, err, time.Since(start))
	}
	return time.Since(start), nil
}

func dial(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// hangup is when the server closed a connection.
type hangup struct {
	done  chan struct{} // closed when it did
	after time.Duration // how long after start; set before done closes
}

// watch reads conn, discarding what the server answers, until the server
// closes it or Wait passes after start.
func watch(conn net.Conn, start time.Time) *hangup {
	h := &hangup{done: make(chan struct{})}
	_ = conn.SetReadDeadline(start.Add(Wait))
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		h.after = time.Since(start)
		close(h.done)
	}()
	return h
}

// dribble writes data to conn one byte every interval until it is all
// written or the server hangs up (cut), and then returns wait's answer: a
// failed write is a hang-up too, as a reset can reach the writer before
// the reader sees it, and how long it took is the reader's.
func (h *hangup) dribble(ctx context.Context, conn net.Conn, data []byte, interval time.Duration) (d time.Duration, cut bool, err error) {
	for i := range data {
		if _, werr := conn.Write(data[i : i+1]); werr != nil {
			d, err = h.wait(ctx)
			return d, true, err
		}
		select {
		case <-h.done:
			d, err = h.wait(ctx)
			return d, true, err
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(interval):
		}
	}
	return 0, false, nil
}

func (h *hangup) wait(ctx context.Context) (time.Duration, error) {
	select {
	case <-h.done:
		if h.after >= Wait {
			return h.after, fmt.Errorf("the server kept the connection open for %s", Wait)
		}
		return h.after, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
