package postbacks

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"tapline"
	"tapline/webhook"
)

// Sender drains an outbox (ad networks' postbacks and customers' webhooks,
// the latter signed at each attempt): it claims due deliveries, calls each ad network
// within the network's concurrency and rate limits, and records every
// attempt. A 2xx answer delivers; a 4xx other than 408 and 429 is a refusal
// and the delivery is dead at once; anything else (5xx, 408, 429, a timeout,
// a refused connection) is retried after an exponential backoff with full
// jitter, until the delivery is PostbackDeliveryMaxAge old, when it is dead.
// Each call carries the delivery's key in the Idempotency-Key header, so a
// network that drops repeated keys sees each delivery once although a
// sender that dies mid-call sends it again after its lease.
type Sender struct {
	Outbox tapline.Outbox
	Client *http.Client
	Logger *slog.Logger
	// Batch deliveries are claimed at a time, held for Lease; Poll is the
	// wait when none is due.
	Batch int
	Lease time.Duration
	Poll  time.Duration
	// MinBackoff doubles per attempt up to MaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxAge: a delivery this old is dead after its next failure.
	MaxAge time.Duration
	// UserAgent names tapline to the networks.
	UserAgent string
	Now       func() time.Time
	// Registerer, when set, receives the sender's metrics.
	Registerer prometheus.Registerer

	mu       sync.Mutex
	networks map[string]*network
	metrics  struct {
		attempts  *prometheus.CounterVec
		delivered *prometheus.CounterVec
		dead      *prometheus.CounterVec
		latency   *prometheus.HistogramVec
	}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// network holds one app's ad network's limits.
type network struct {
	sem     chan struct{}
	limiter *rate.Limiter
	conc    int
	per     float64
}

// NewSender returns a Sender of outbox with the defaults: its client does
// not follow redirects and refuses private addresses (PublicOnly).
func NewSender(outbox tapline.Outbox) *Sender {
	return &Sender{
		Outbox: outbox, Client: NewClient(false),
		Logger: slog.Default(), Batch: 100, Lease: 2 * time.Minute, Poll: 500 * time.Millisecond,
		MinBackoff: 10 * time.Second, MaxBackoff: time.Hour, MaxAge: tapline.PostbackDeliveryMaxAge,
		UserAgent: "tapline-postbacks/1", Now: time.Now,
	}
}

// Open starts sending in the background.
func (s *Sender) Open() error {
	if s.Outbox == nil {
		return fmt.Errorf("postback sender: no outbox")
	}
	if s.Batch <= 0 || s.Lease <= 0 || s.Poll <= 0 || s.MinBackoff <= 0 || s.MaxBackoff < s.MinBackoff || s.MaxAge <= 0 {
		return fmt.Errorf("postback sender: batch, lease, poll, backoffs and max age must be positive")
	}
	if s.Lease < 2*leaseMargin {
		return fmt.Errorf("postback sender: a lease of %s leaves no time for a call: at least %s", s.Lease, 2*leaseMargin)
	}
	s.networks = map[string]*network{}
	s.metrics.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tapline_postback_attempts_total", Help: "Postback calls made, by network and outcome (delivered, retry, dead)."}, []string{"network", "outcome"})
	s.metrics.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tapline_postback_delivered_total", Help: "Postbacks delivered, by network."}, []string{"network"})
	s.metrics.dead = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tapline_postback_dead_total", Help: "Postbacks given up on, by network."}, []string{"network"})
	s.metrics.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tapline_postback_seconds", Help: "Postback call latency, by network.", Buckets: prometheus.DefBuckets}, []string{"network"})
	if s.Registerer != nil {
		for _, c := range []prometheus.Collector{s.metrics.attempts, s.metrics.delivered, s.metrics.dead, s.metrics.latency} {
			if err := s.Registerer.Register(c); err != nil {
				return fmt.Errorf("postback sender: register metrics: %w", err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.run(ctx) })
	return nil
}

// Close stops claiming, gives back the deliveries claimed but not started,
// waits for the calls under way (each within its timeout) and returns.
func (s *Sender) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.cancel = nil
	}
	return nil
}

func (s *Sender) run(ctx context.Context) {
	// slots bounds the deliveries held at once: claimed, waiting for
	// their network's limits, or being sent.
	slots := make(chan struct{}, s.Batch)
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := s.Poll
	for ctx.Err() == nil {
		// Claim as many as there are free slots, at least one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
		for free < s.Batch {
			select {
			case slots <- struct{}{}:
				free++
				continue
			default:
			}
			break
		}
		ds, err := s.Outbox.ClaimDeliveries(ctx, free, s.Lease)
		for range free - len(ds) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Logger.Warn("claim postback deliveries", "err", err)
			backoff = min(2*backoff, time.Minute)
			sleep(ctx, backoff)
			continue
		}
		backoff = s.Poll
		claimed := time.Now()
		for _, d := range ds {
			wg.Go(func() {
				defer func() { <-slots }()
				s.send(ctx, d, claimed)
			})
		}
		if len(ds) == 0 {
			sleep(ctx, s.Poll)
		}
	}
}

// maxNetworkWait is how long a claimed delivery waits for its network's
// limits before it is given back, so that a busy or slow network does not
// keep the claim's slots from the others.
const maxNetworkWait = 2 * time.Second

// leaseMargin is kept between the end of a call and the end of its lease.
const leaseMargin = time.Second

// send waits for d's network's limits and delivers d within its lease. A
// delivery that cannot start in time, or while the sender stops, is given
// back at once for a later claim, without counting an attempt.
func (s *Sender) send(ctx context.Context, d *tapline.Delivery, claimed time.Time) {
	if d.Stopped != "" {
		s.finish(ctx, d, tapline.DeliveryDead, s.Now(), tapline.DeliveryResult{Error: "the postback was " + d.Stopped + ": given up"}, "dead")
		return
	}
	n := s.network(d)
	wait, cancel := context.WithTimeout(ctx, maxNetworkWait)
	defer cancel()
	giveBack := func() {
		if err := s.Outbox.ReleaseDelivery(context.WithoutCancel(ctx), d.ID, d.Claim); err != nil {
			s.Logger.Warn("give a postback delivery back", "delivery", d.ID, "err", err)
		}
	}
	select {
	case n.sem <- struct{}{}:
	case <-wait.Done():
		giveBack()
		return
	}
	defer func() { <-n.sem }()
	if err := n.limiter.Wait(wait); err != nil {
		giveBack()
		return
	}
	// The call ends before the lease does: no other claim sends it
	// meanwhile.
	left := time.Until(claimed.Add(s.Lease)) - leaseMargin
	timeout := min(cmp.Or(d.Timeout, tapline.DefaultPostbackTimeout), left)
	if timeout <= 0 {
		giveBack()
		return
	}
	// A call under way is finished even while the sender stops.
	s.deliver(context.WithoutCancel(ctx), d, timeout)
}

// network returns the limits of d's app's network: one app's settings
// never limit another's deliveries, whatever the networks' names. They
// follow d's postback's settings as rendered; a change makes new limits
// (calls under the old ones finish under them).
func (s *Sender) network(d *tapline.Delivery) *network {
	conc := cmp.Or(max(d.MaxConcurrent, 0), tapline.DefaultPostbackConcurrent)
	per := cmp.Or(max(d.MaxPerSecond, 0), tapline.DefaultPostbackPerSecond)
	key := strconv.FormatInt(d.AppID, 10) + "/" + d.Network
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.networks[key]; ok && n.conc == conc && n.per == per {
		return n
	}
	n := &network{sem: make(chan struct{}, conc), limiter: rate.NewLimiter(rate.Limit(per), max(1, int(per))), conc: conc, per: per}
	s.networks[key] = n
	return n
}

// deliver makes one attempt at d, with timeout, and records it.
func (s *Sender) deliver(ctx context.Context, d *tapline.Delivery, timeout time.Duration) {
	sign, ok := signer(d)
	if !ok {
		s.finish(ctx, d, tapline.DeliveryDead, s.Now(), tapline.DeliveryResult{Error: errNoSecret}, "dead")
		return
	}
	start := time.Now()
	res := s.call(ctx, d, timeout, sign)
	s.metrics.latency.WithLabelValues(d.Network).Observe(time.Since(start).Seconds())
	now := s.Now()
	status, next, outcome := tapline.DeliveryPending, now.Add(s.backoff(d.Attempts+1)), "retry"
	switch {
	case res.Code >= 200 && res.Code < 300:
		status, outcome = tapline.DeliveryDelivered, "delivered"
	case res.Code >= 300 && res.Code < 400:
		// Redirects are not followed: the URL is wrong, and retrying
		// will not right it.
		status, outcome = tapline.DeliveryDead, "dead"
		res.Error = fmt.Sprintf("answered %d, a redirect: postbacks follow none; fix the URL", res.Code)
	case res.Code >= 400 && res.Code < 500 && res.Code != http.StatusRequestTimeout && res.Code != http.StatusTooManyRequests:
		status, outcome = tapline.DeliveryDead, "dead"
	case next.Sub(d.CreatedAt) > s.MaxAge:
		status, outcome = tapline.DeliveryDead, "dead"
	}
	s.finish(ctx, d, status, next, res, outcome)
}

// finish counts and records the outcome of d's attempt.
func (s *Sender) finish(ctx context.Context, d *tapline.Delivery, status tapline.DeliveryStatus, next time.Time, res tapline.DeliveryResult, outcome string) {
	s.metrics.attempts.WithLabelValues(d.Network, outcome).Inc()
	switch status {
	case tapline.DeliveryDelivered:
		s.metrics.delivered.WithLabelValues(d.Network).Inc()
	case tapline.DeliveryDead:
		s.metrics.dead.WithLabelValues(d.Network).Inc()
		s.Logger.Warn("postback given up", "app", d.AppID, "network", d.Network, "delivery", d.ID, "attempts", d.Attempts+1, "code", res.Code, "err", res.Error)
	}
	if err := s.Outbox.RecordAttempt(context.WithoutCancel(ctx), d.ID, d.Claim, status, next, res); err != nil {
		s.Logger.Warn("record postback attempt", "delivery", d.ID, "err", err)
	}
}

// NewClient returns the HTTP client postbacks and webhooks are sent with:
// it follows no redirect (a 3xx is the answer) and, unless allowPrivate,
// connects to public addresses only, so that a URL an account enters
// cannot reach tapline's own network (loopback, private, link-local and
// other special ranges; checked on the address dialled, after DNS).
func NewClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = PublicOnly
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = dialer.DialContext
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// PublicOnly is a net.Dialer Control refusing any address that is not a
// public unicast one.
func PublicOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("postback address %q: %w", address, err)
	}
	if !public(ip) {
		return fmt.Errorf("postback address %s is not public: refused", ip)
	}
	return nil
}

// public reports whether ip is a public unicast address, looking through
// the IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4).
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return public(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			return public(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !special(ip)
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// specialRanges are non-public ranges netip does not name.
var specialRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("0.0.0.0/8"),       // this network
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo, ORCHIDs, benchmarking)
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
}

func special(ip netip.Addr) bool {
	for _, p := range specialRanges {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Try makes one attempt at d, signed when it is a webhook's, records
// nothing and returns its result: the dashboard's test button.
func (s *Sender) Try(ctx context.Context, d *tapline.Delivery) tapline.DeliveryResult {
	sign, ok := signer(d)
	if !ok {
		return tapline.DeliveryResult{Error: errNoSecret}
	}
	return s.call(ctx, d, cmp.Or(d.Timeout, tapline.DefaultPostbackTimeout), sign)
}

// errNoSecret is the error of a webhook delivery no secret can sign (its
// webhook was deleted).
const errNoSecret = "no secret signs this webhook"

// signer returns what signs d: nil for an ad network's postback, its
// secrets in force for a webhook's; false when a webhook has none.
func signer(d *tapline.Delivery) (*webhook.Signer, bool) {
	if d.Kind != tapline.PostbackKindWebhook {
		return nil, true
	}
	sign := &webhook.Signer{}
	for _, sec := range d.Secrets {
		if k, err := webhook.ParseSecret(sec); err == nil {
			sign.Secrets = append(sign.Secrets, k)
		}
	}
	return sign, len(sign.Secrets) > 0
}

// maxBody is how much of an answer is kept.
const maxBody = 512

// call sends d once.
func (s *Sender) call(ctx context.Context, d *tapline.Delivery, timeout time.Duration, sign *webhook.Signer) tapline.DeliveryResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if d.Body != nil {
		body = bytes.NewReader(d.Body)
	}
	req, err := http.NewRequestWithContext(ctx, d.Method, d.URL, body)
	if err != nil {
		return tapline.DeliveryResult{Error: fmt.Sprintf("build request: %v", err)}
	}
	if d.ContentType != "" && d.Body != nil {
		req.Header.Set("Content-Type", d.ContentType)
	}
	req.Header.Set("Idempotency-Key", d.Key)
	req.Header.Set("User-Agent", s.UserAgent)
	if sign != nil {
		// Signed now: the timestamp is the attempt's, the id the
		// delivery's, the same on every retry.
		h, err := sign.Headers(d.Key, s.Now(), d.Body)
		if err != nil {
			return tapline.DeliveryResult{Error: fmt.Sprintf("sign webhook: %v", err)}
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		// Without the URL (a *url.Error names it): it may carry a
		// network's credentials and a device's advertising id.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("no answer within %s", timeout)
		}
		return tapline.DeliveryResult{Error: msg}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return tapline.DeliveryResult{Code: resp.StatusCode, Body: string(b)}
}

// backoff returns the wait before attempt n+1 after n failed ones: between
// half and all of MinBackoff doubled n-1 times, at most MaxBackoff, drawn at
// random so that a network's failed deliveries do not return together.
func (s *Sender) backoff(n int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < n && d < s.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
