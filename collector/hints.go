package collector

import (
	"crypto/sha256"
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
// once); the retry's hit, which carries the hints, replaces it and takes
// its rate-limit verdict; a hit whose retry does not come within the wait
// is queued as it is. So a tap is one hit either way. The retry must reach
// the same collector process (a load balancer spreading one client's
// requests over several collectors records both). At most max hits are
// held: past that, a first request's hit is queued at once.
type hintHold struct {
	max int

	mu     sync.Mutex
	held   map[[sha256.Size]byte]*heldHit
	closed bool
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

// hintKey names a tap across its first request and the retry: the
// address, the request and every header a person's browser sends alike
// on both (User-Agent, Accept-Language, the low-entropy client hints), so
// that two people behind one address tapping one link at once are told
// apart as far as their browsers differ.
func hintKey(h *tapline.Hit, r *http.Request) [sha256.Size]byte {
	d := sha256.New()
	for _, v := range []string{h.IP, r.URL.RequestURI(), h.UserAgent, r.Header.Get("Accept-Language"),
		r.Header.Get("Sec-Ch-Ua"), r.Header.Get("Sec-Ch-Ua-Mobile"), r.Header.Get("Sec-Ch-Ua-Platform")} {
		d.Write([]byte(v))
		d.Write([]byte{0})
	}
	var k [sha256.Size]byte
	d.Sum(k[:0])
	return k
}

// hold keeps h until its retry replaces it or wait passes; then enqueue
// queues it. Once closed, or full, it queues h at once.
func (p *hintHold) hold(key [sha256.Size]byte, h *tapline.Hit, wait time.Duration, enqueue func(*tapline.Hit)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[[sha256.Size]byte]*heldHit{}
	}
	if old := p.held[key]; old != nil {
		// A second first request (a double tap): the earlier one stands.
		delete(p.held, key)
		old.timer.Stop()
		enqueue(old.hit)
	}
	if p.closed || len(p.held) >= p.max {
		enqueue(h)
		return
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

// take removes and returns the held first request of key, whose retry has
// come, or nil. A timer that fired meanwhile finds its hit gone and queues
// nothing.
func (p *hintHold) take(key [sha256.Size]byte) *tapline.Hit {
	p.mu.Lock()
	defer p.mu.Unlock()
	hh := p.held[key]
	if hh == nil {
		return nil
	}
	delete(p.held, key)
	hh.timer.Stop()
	return hh.hit
}

// flush queues every held hit now and holds no more (on Close).
func (p *hintHold) flush(enqueue func(*tapline.Hit)) {
	p.mu.Lock()
	p.closed = true
	var hs []*tapline.Hit
	for key, hh := range p.held {
		hh.timer.Stop()
		hs = append(hs, hh.hit)
		delete(p.held, key)
	}
	p.mu.Unlock()
	for _, h := range hs {
		enqueue(h)
	}
}
