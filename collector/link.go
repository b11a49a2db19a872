package collector

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"tapline"
	"tapline/fingerprint"
	"tapline/internal/clientip"
	"tapline/internal/wire"
)

// Bounds on what a hit keeps of the link's query string.
const (
	maxHitParams     = 50
	maxHitParamKey   = 64
	maxHitParamValue = 1024
	maxHeaderValue   = 1024
)

// linkEntry is a cached link with its app.
type linkEntry struct {
	link *tapline.Link
	app  *tapline.App
}

func (c *Collector) loadLink(ctx context.Context, slug string) (*linkEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	l, err := c.Accounts.LinkBySlug(ctx, slug)
	if err != nil {
		return nil, err
	}
	app, err := c.Accounts.App(ctx, l.AppID)
	if err != nil {
		if isDomain(err, tapline.ENOTFOUND) {
			return nil, err
		}
		return nil, fmt.Errorf("load app %d of link %q: %w", l.AppID, slug, err)
	}
	return &linkEntry{link: l, app: app}, nil
}

func (c *Collector) loadAccount(ctx context.Context, name string) (*tapline.Account, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	return c.Accounts.AccountByName(ctx, name)
}

// serveLink redirects a tap on a tracking link and queues its hit.
func (c *Collector) serveLink(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	e, err := c.links.get(r.Context(), slug)
	if err != nil {
		c.linkError(w, r, err)
		return
	}
	h := c.newHit(r, e)
	dest := e.link.Destination(e.app, h.Platform)
	if dest == "" {
		c.Logger.WarnContext(r.Context(), "link has no destination", "slug", slug, "platform", h.Platform)
		writePage(w, http.StatusNotFound, pageNotFound)
		return
	}
	if h.ReferrerNamable() {
		dest = withPlayReferrer(dest, h.ID, h.Params)
	}
	// Link checkers, previews and crawlers get their redirect too; their
	// hits are counted apart and never credited (tapline.Hit.Bot).
	var first *tapline.Hit // the held first request this one retries
	if h.Bot == "" && r.Header.Get("Sec-Ch-Ua") != "" && !wantsHintRetry(r) {
		first = c.hints.take(hintKey(h, r))
	}
	switch {
	case h.Bot != "":
		c.enqueue(h)
	case first != nil:
		// The retry with the hints: the tap the first request was, under
		// its rate-limit verdict.
		c.m.hintRetries.Inc()
		h.Bot = first.Bot
		c.enqueue(h)
	case c.tapVerdict(h): // dropped
	case wantsHintRetry(r):
		c.hints.hold(hintKey(h, r), h, c.Config.HintRetryWait, c.enqueue)
	default:
		c.enqueue(h)
	}
	// Chromium: send the model and OS version (retrying this request for
	// them), as a User-Agent no longer says them.
	w.Header().Set("Accept-CH", acceptCH)
	w.Header().Set("Critical-CH", criticalCH)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	redirect(w, r, dest)
}

// redirect answers 302 to dest. An absolute ASCII URL (every app store and
// web destination, and custom schemes) goes into Location as it is, with
// no body; http.Redirect, which also resolves relative paths, escapes
// non-ASCII bytes and writes a hypertext note, handles the rest.
func redirect(w http.ResponseWriter, r *http.Request, dest string) {
	if i := strings.IndexAny(dest, ":/?#"); i <= 0 || dest[i] != ':' || !isASCII(dest) {
		http.Redirect(w, r, dest, http.StatusFound)
		return
	}
	w.Header()["Location"] = []string{dest}
	w.WriteHeader(http.StatusFound)
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// servePixel answers a hit pixel with a transparent GIF and queues its hit.
// An unknown account or tracker still gets the GIF, with status 404, so
// mail clients show nothing broken.
func (c *Collector) servePixel(w http.ResponseWriter, r *http.Request) {
	account := chi.URLParam(r, "account")
	tracker := chi.URLParam(r, "tracker")
	status := http.StatusOK
	e, err := c.links.get(r.Context(), tracker)
	if err == nil {
		var acct *tapline.Account
		acct, err = c.names.get(r.Context(), account)
		if err == nil && acct.ID != e.app.AccountID {
			err = tapline.Errorf(tapline.ENOTFOUND, "no such tracker")
		}
	}
	switch {
	case err == nil:
		h := c.newHit(r, e)
		if r.Method == http.MethodPost {
			// The iOS SDK's fireHit posts "__ts=tag1,tag2".
			r.Body = http.MaxBytesReader(w, r.Body, c.Config.MaxBodyBytes)
			err := r.ParseForm()
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				// Not counted: the SDK learns it sent too much.
				c.bodyError(w, r, err)
				return
			}
			if err == nil {
				for k := range r.PostForm {
					addParam(h, k, r.PostForm.Get(k))
				}
			}
		}
		if h.Bot != "" || !c.tapVerdict(h) {
			c.enqueue(h)
		}
	case isDomain(err, tapline.ENOTFOUND):
		status = http.StatusNotFound
	default:
		c.Logger.ErrorContext(r.Context(), "pixel lookup", "account", account, "tracker", tracker, "err", err)
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(transparentGIF)
}

// botReason returns why request r is no tap: "head" for a HEAD request
// (link checkers), "prefetch" for a browser's speculative load
// (Sec-Purpose, Purpose, X-Purpose or X-Moz naming a prefetch, preview or
// prerender), else previewer, the link previewer or crawler its
// User-Agent names (fingerprint.Bot); "" for a tap.
func botReason(r *http.Request, previewer string) string {
	if r.Method == http.MethodHead {
		return tapline.BotHead
	}
	for _, name := range []string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"} {
		v := strings.ToLower(r.Header.Get(name))
		if strings.Contains(v, "prefetch") || strings.Contains(v, "preview") || strings.Contains(v, "prerender") {
			return tapline.BotPrefetch
		}
	}
	return previewer
}

// linkError answers a failed link lookup with an HTML page.
func (c *Collector) linkError(w http.ResponseWriter, r *http.Request, err error) {
	if isDomain(err, tapline.ENOTFOUND) {
		writePage(w, http.StatusNotFound, pageNotFound)
		return
	}
	c.Logger.ErrorContext(r.Context(), "link lookup", "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "5")
	writePage(w, http.StatusServiceUnavailable, pageUnavailable)
}

// newHit builds the hit of request r on link e, marked when it is no tap
// (botReason); the publisher fills in the fingerprint later, off the
// request path.
func (c *Collector) newHit(r *http.Request, e *linkEntry) *tapline.Hit {
	h := &tapline.Hit{
		ID:             newHitID(),
		Time:           c.now().UTC(),
		AppID:          e.app.ID,
		LinkID:         e.link.ID,
		IP:             c.clientIP(r),
		UserAgent:      clip(r.UserAgent(), maxHeaderValue),
		Referer:        clip(r.Referer(), maxHeaderValue),
		AcceptLanguage: clip(r.Header.Get("Accept-Language"), maxHeaderValue),
	}
	for name, vals := range r.Header {
		if len(vals) == 0 || !strings.HasPrefix(name, "Sec-Ch-Ua") {
			continue
		}
		if h.ClientHints == nil {
			h.ClientHints = make(map[string]string)
		}
		h.ClientHints[strings.ToLower(name)] = clip(vals[0], maxHeaderValue)
	}
	// Advertising-id parameters first, then the rest in name order, so the
	// parameter cap never drops the ad id and always keeps the same ones.
	query := r.URL.Query()
	keys := slices.Sorted(maps.Keys(query))
	for _, adID := range []bool{true, false} {
		for _, k := range keys {
			if vals := query[k]; len(vals) > 0 && tapline.IsAdIDParam(k) == adID {
				addParam(h, k, vals[0])
			}
		}
	}
	// The link's own parameters, where the tap's URL has none of that name
	// (in name order, so the parameter cap keeps the same ones).
	if len(e.link.Params) > 0 {
		for _, k := range slices.Sorted(maps.Keys(e.link.Params)) {
			if _, ok := h.Params[k]; !ok {
				addParam(h, k, e.link.Params[k])
			}
		}
	}
	var previewer string
	h.Platform, previewer = c.Fingerprinter.Classify(h.UserAgent, h.ClientHints)
	h.Bot = botReason(r, previewer)
	return h
}

// addParam records one query parameter on h, and its advertising id when
// the parameter carries an expanded one.
func addParam(h *tapline.Hit, k, v string) {
	if k == "" || len(k) > maxHitParamKey || len(h.Params) >= maxHitParams {
		return
	}
	if h.Params == nil {
		h.Params = make(map[string]string)
	}
	h.Params[k] = clip(v, maxHitParamValue)
	if h.AdID == "" && tapline.IsAdIDParam(k) {
		h.AdID = normalizeAdID(v)
	}
}

// normalizeAdID returns the advertising id v in lower-case hyphenated UUID
// form, or "" when v is not one: an unexpanded macro ("{idfa}",
// "%%IDFA%%"), garbage, or the all-zero id of limited ad tracking.
func normalizeAdID(v string) string {
	u, err := uuid.Parse(strings.TrimSpace(v))
	if err != nil || u == uuid.Nil {
		return ""
	}
	if n := len(strings.TrimSpace(v)); n != 36 && n != 32 {
		return "" // reject the urn: and braced forms uuid.Parse accepts
	}
	return u.String()
}

// hitIDEncoding writes hit ids in lower-case base32hex, which sorts like
// the bytes it encodes.
var hitIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newHitID returns a 26-character URL-safe id: a UUIDv7 (time-ordered,
// 74 random bits) in base32hex.
func newHitID() string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return hitIDEncoding.EncodeToString(u[:])
}

// withPlayReferrer adds the hit id, and the link's utm_ parameters, to the
// referrer parameter of a Play Store destination so the install referrer
// the app reports names the hit. Other destinations are returned as is.
func withPlayReferrer(dest, hitID string, params map[string]string) string {
	u, err := url.Parse(dest)
	if err != nil {
		return dest
	}
	if !(u.Scheme == "market" || strings.EqualFold(u.Hostname(), "play.google.com")) {
		return dest
	}
	q := u.Query()
	ref, err := url.ParseQuery(q.Get("referrer"))
	if err != nil {
		ref = url.Values{}
	}
	for k, v := range params {
		if strings.HasPrefix(k, "utm_") && ref.Get(k) == "" {
			ref.Set(k, v)
		}
	}
	ref.Set(tapline.ReferrerHitParam, hitID)
	q.Set("referrer", ref.Encode())
	u.RawQuery = q.Encode()
	return u.String()
}

// clientIP returns the client address of r behind the trusted proxies,
// "" when the peer is not an address.
func (c *Collector) clientIP(r *http.Request) string {
	if a := clientip.Of(r, c.Config.TrustedProxies); a.IsValid() {
		return a.String()
	}
	return ""
}

// HitMessage returns the bus message of hit h on topic, keyed by its app
// and fingerprint and stamped with its time. Its value is JSON, or the
// binary format of package internal/wire when binary
// (Config.BinaryMessages); the matcher reads either.
func HitMessage(topic string, h *tapline.Hit, binary bool) (tapline.Message, error) {
	b, err := encodeValue(h, binary, wire.AppendHit)
	if err != nil {
		return tapline.Message{}, fmt.Errorf("encode hit %s: %w", h.ID, err)
	}
	return tapline.Message{Topic: topic, Key: fingerprint.BusKey(h.AppID, h.Fingerprint), Value: b, Time: h.Time}, nil
}

// EventMessage is HitMessage for event e, stamped with its receive time.
func EventMessage(topic string, e *tapline.Event, binary bool) (tapline.Message, error) {
	b, err := encodeValue(e, binary, wire.AppendEvent)
	if err != nil {
		return tapline.Message{}, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return tapline.Message{Topic: topic, Key: fingerprint.BusKey(e.AppID, e.Fingerprint), Value: b, Time: e.ReceivedAt}, nil
}

func encodeValue[T any](v *T, binary bool, appendBinary func([]byte, *T) []byte) ([]byte, error) {
	if binary {
		return appendBinary(nil, v), nil
	}
	return json.Marshal(v)
}

// clip cuts s to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
