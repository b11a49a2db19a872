package collector

import (
	"net/http"
	"sync"
	"time"

	"tapline"
)

// Client hints a redirect asks Chromium for. Sec-CH-UA-Model and
// Sec-CH-UA-Platform-Version are critical: without them Chromium's reduced
// User-Agent says only "Android 10; K", and the fingerprint can compare
// neither the model nor the OS version.
const (
	acceptCH   = "Sec-CH-UA-Model, Sec-CH-UA-Platform-Version, Sec-CH-UA-Full-Version-List"
	criticalCH = "Sec-CH-UA-Model, Sec-CH-UA-Platform-Version"
)

// DefaultHintRetryWait is how long the hit of a Chromium request without
// the critical hints waits for the browser's retry with them.
const DefaultHintRetryWait = 2 * time.Second

// hintHold deduplicates a tap whose browser retries it for the critical
// client hints. Chromium sends a first request without them, reads
// Critical-CH on the answer, discards it and sends the request again with
// them. The first request's hit is held back (the redirect is answered at
// once); the retry's hit, which carries the hints, replaces it; a hit
// whose retry does not come within the wait is queued as it is. So a tap is
// one hit either way. The retry must reach the same collector process (a
// load balancer spreading one client's requests over several collectors
// records both).
type hintHold struct {
	mu   sync.Mutex
	held map[string]*heldHit
}

type heldHit struct {
	hit   *tapline.Hit
	timer *time.Timer
}

// wantsHintRetry reports whether r comes from a browser that sends client
// hints (Sec-CH-UA) without the critical ones, and so will send it again.
func wantsHintRetry(r *http.Request) bool {
	return r.Header.Get("Sec-Ch-Ua") != "" && r.Header.Values("Sec-Ch-Ua-Model") == nil
}

// hintKey names a tap across its first request and the retry: address,
// User-Agent and URL.
func hintKey(h *tapline.Hit, r *http.Request) string {
	return h.IP + "\x00" + h.UserAgent + "\x00" + r.URL.RequestURI()
}

// hold keeps h until its retry replaces it or wait passes; then enqueue
// queues it.
func (p *hintHold) hold(key string, h *tapline.Hit, wait time.Duration, enqueue func(*tapline.Hit)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[string]*heldHit{}
	}
	if old := p.held[key]; old != nil {
		// A second first request (a double tap): the earlier one stands.
		old.timer.Stop()
		enqueue(old.hit)
	}
	hh := &heldHit{hit: h}
	hh.timer = time.AfterFunc(wait, func() {
		p.mu.Lock()
		cur := p.held[key]
		if cur == hh {
			delete(p.held, key)
		}
		p.mu.Unlock()
		if cur == hh {
			enqueue(h)
		}
	})
	p.held[key] = hh
}

// replace drops the held first request of key, whose retry has come, and
// reports whether there was one.
func (p *hintHold) replace(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	hh := p.held[key]
	if hh == nil || !hh.timer.Stop() {
		return false
	}
	delete(p.held, key)
	return true
}

// flush queues every held hit now (on Close).
func (p *hintHold) flush(enqueue func(*tapline.Hit)) {
	p.mu.Lock()
	var hs []*tapline.Hit
	for key, hh := range p.held {
		if hh.timer.Stop() {
			hs = append(hs, hh.hit)
		}
		delete(p.held, key)
	}
	p.mu.Unlock()
	for _, h := range hs {
		enqueue(h)
	}
}
