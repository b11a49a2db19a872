package dashboard

import (
	"strings"
	"sync"
	"time"
)

// Login throttling: after MaxLoginFailures wrong passwords for one login
// within LoginFailureWindow, further attempts for that login are refused
// (429) until the window has passed, whatever the password, so passwords
// cannot be guessed at speed.
const (
	MaxLoginFailures   = 10
	LoginFailureWindow = 15 * time.Minute
	maxThrottled       = 100_000 // logins tracked at once; the oldest go first
)

type loginThrottle struct {
	mu       sync.Mutex
	failures map[string]*failures
}

type failures struct {
	count int
	since time.Time
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{failures: map[string]*failures{}}
}

func throttleKey(login string) string { return strings.ToLower(strings.TrimSpace(login)) }

// blocked reports whether login is locked out at now, and until when.
func (t *loginThrottle) blocked(login string, now time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.failures[throttleKey(login)]
	if !ok || now.Sub(f.since) >= LoginFailureWindow {
		return time.Time{}, false
	}
	return f.since.Add(LoginFailureWindow), f.count >= MaxLoginFailures
}

// fail records a wrong password for login at now.
func (t *loginThrottle) fail(login string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := throttleKey(login)
	f, ok := t.failures[k]
	if !ok || now.Sub(f.since) >= LoginFailureWindow {
		if len(t.failures) >= maxThrottled {
			t.prune(now)
		}
		f = &failures{since: now}
		t.failures[k] = f
	}
	f.count++
}

// succeed forgets the failures of login.
func (t *loginThrottle) succeed(login string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.failures, throttleKey(login))
}

// prune drops expired entries, and the oldest half if none expired.
func (t *loginThrottle) prune(now time.Time) {
	var oldest time.Time
	for k, f := range t.failures {
		if now.Sub(f.since) >= LoginFailureWindow {
			delete(t.failures, k)
		} else if oldest.IsZero() || f.since.Before(oldest) {
			oldest = f.since
		}
	}
	if len(t.failures) < maxThrottled {
		return
	}
	cut := oldest.Add(now.Sub(oldest) / 2)
	for k, f := range t.failures {
		if !f.since.After(cut) {
			delete(t.failures, k)
		}
	}
}
