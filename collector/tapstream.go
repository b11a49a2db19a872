package collector

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
	"tapline/internal/httperr"
)

// Limits on a Tapstream event post.
const (
	maxEventName   = 255
	maxInstallID   = 128
	maxEventParams = 100
	maxParamKey    = 255
	maxParamValue  = 1024
	maxQuantity    = 1_000_000
	maxPriceCents  = 1_000_000_000 // ten million units of any currency
	// maxRevenueCents bounds price times quantity so that the micros fit
	// an int64 (the JSON API's bound: a trillion units).
	maxRevenueCents = 100_000_000_000_000
)

// minEventTime is the earliest device time taken at face value; earlier
// ones (a device clock at the epoch) are replaced by the receive time.
var minEventTime = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)

// tapstreamEvent is a Tapstream SDK event post, parsed but not yet tied to
// an app.
type tapstreamEvent struct {
	Event  *tapline.Event
	Secret string
	// seed holds the request fields that identify the event across SDK
	// retries (the SDKs stamp created-ms once per event).
	seed string
}

// parseTapstream parses the form body of POST /{account}/event/{name}. now
// is the receive time; device times after now+maxSkew or before 2010 are
// replaced by it. Errors are EINVALID with a message naming the field.
func parseTapstream(name string, body []byte, now time.Time, maxSkew time.Duration) (*tapstreamEvent, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, tapline.Errorf(tapline.EINVALID, "The body is not a valid form-encoded string.")
	}
	name = normalizeEventName(name)
	if name == "" || len(name) > maxEventName || !printable(name) {
		return nil, tapline.Errorf(tapline.EINVALID, "The event name must be 1 to %d printable characters.", maxEventName)
	}
	get := func(k string) string { return strings.TrimSpace(form.Get(k)) }

	e := &tapline.Event{
		Name:       name,
		Time:       now,
		ReceivedAt: now,
		InstallID:  get("uuid"),
		Protocol:   "tapstream",
		Referrer:   clip(form.Get("android-referrer"), maxParamValue),
		Device: tapline.Device{
			Model:      clip(get("model"), 128),
			Vendor:     clip(get("vendor"), 128),
			Locale:     clip(get("locale"), 64),
			Resolution: clip(get("resolution"), 32),
			AppVersion: clip(get("app-version"), 64),
			OSVersion:  osVersion(get("os")),
		},
	}
	if e.InstallID == "" || len(e.InstallID) > maxInstallID || !printable(e.InstallID) {
		return nil, tapline.Errorf(tapline.EINVALID, "The uuid field is required (at most %d printable characters).", maxInstallID)
	}
	e.Device.Platform = tapstreamPlatform(get("platform"), name)

	created := get("created-ms")
	if created != "" {
		ms, err := strconv.ParseInt(created, 10, 64)
		if err != nil || ms < 0 {
			return nil, tapline.Errorf(tapline.EINVALID, "The created-ms field must be milliseconds since the Unix epoch.")
		}
		if t := time.UnixMilli(ms).UTC(); !t.Before(minEventTime) && !t.After(now.Add(maxSkew)) {
			e.Time = t
		}
	}

	// Advertising ids: the all-zero IDFA means limited ad tracking.
	if raw := get("hardware-ios-idfa"); raw != "" {
		e.Device.IDFA = normalizeAdID(raw)
		if e.Device.IDFA == "" {
			e.Device.LimitAdTracking = true
		}
	}
	if raw := get("hardware-android-advertising-id"); raw != "" {
		e.Device.GAID = normalizeAdID(raw)
	}
	if lat := get("android-limit-ad-tracking"); lat != "" {
		e.Device.LimitAdTracking = strings.EqualFold(lat, "true")
	}
	// receipt-guid is the iOS identifierForVendor without its hyphens.
	if g := get("receipt-guid"); g != "" && e.Device.Platform == tapline.PlatformIOS {
		e.Device.IDFV = normalizeAdID(g)
	}

	for k, vals := range form {
		if len(vals) == 0 || !strings.HasPrefix(k, "custom-") {
			continue
		}
		key := strings.TrimPrefix(k, "custom-")
		if key == "" || len(key) > maxParamKey || len(e.Params) >= maxEventParams {
			continue
		}
		if e.Params == nil {
			e.Params = make(map[string]string)
		}
		e.Params[key] = clip(vals[0], maxParamValue)
	}

	txID, product := get("purchase-transaction-id"), get("purchase-product-id")
	if txID != "" || product != "" || get("purchase-price") != "" {
		if err := tapstreamPurchase(e, get); err != nil {
			return nil, err
		}
	}
	e.Kind = tapstreamKind(name, e)
	return &tapstreamEvent{
		Event:  e,
		Secret: form.Get("secret"),
		seed:   eventSeed(e.InstallID, name, created, txID),
	}, nil
}

// tapstreamPurchase reads the purchase-* fields: the SDKs send the unit
// price as an integer number of hundredths of the currency unit
// (priceInCents) and the quantity separately; Revenue is their product in
// micros.
func tapstreamPurchase(e *tapline.Event, get func(string) string) error {
	if e.Params == nil {
		e.Params = make(map[string]string)
	}
	for _, k := range []string{"purchase-transaction-id", "purchase-product-id", "purchase-quantity"} {
		if v := get(k); v != "" {
			e.Params[k] = clip(v, maxParamValue)
		}
	}
	qty := int64(1)
	if q := get("purchase-quantity"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < 1 || n > maxQuantity {
			return tapline.Errorf(tapline.EINVALID, "The purchase-quantity field must be an integer from 1 to %d.", maxQuantity)
		}
		qty = n
	}
	price := get("purchase-price")
	if price == "" {
		return nil
	}
	cents, err := strconv.ParseInt(price, 10, 64)
	if err != nil || cents < 0 || cents > maxPriceCents {
		return tapline.Errorf(tapline.EINVALID, "The purchase-price field must be a whole number of cents from 0 to %d.", maxPriceCents)
	}
	cur, ok := currency(get("purchase-currency"))
	if !ok {
		return tapline.Errorf(tapline.EINVALID, "The purchase-currency field must be an ISO 4217 code such as USD.")
	}
	if cents*qty > maxRevenueCents { // both bounded above, so the product cannot overflow
		return tapline.Errorf(tapline.EINVALID, "The purchase-price times purchase-quantity must be at most %d cents.", int64(maxRevenueCents))
	}
	e.Revenue = &tapline.Revenue{Micros: cents * qty * 10_000, Currency: cur}
	return nil
}

// serveTapstream takes a Tapstream SDK event: 200 once it is on the bus,
// 400 when malformed, 403 for a wrong or missing secret, 404 for an
// unknown account, 413 for an oversize body, 503 when the bus cannot take
// it (the SDKs retry 5xx only).
func (c *Collector) serveTapstream(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.Config.MaxBodyBytes))
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	c.takeTapstream(w, r, body)
}

// serveCookieMatch takes the event of an older iOS SDK's cookie match
// (attemptCookieMatch, removed from the SDK in 2.12): GET
// /{account}/event/{name}/?cookiematch=true&<the form fields>, loaded in a
// Safari view controller in place of the install and open events. Its
// query is the event's form, taken as serveTapstream takes a post; any
// other GET of an event URL is 400.
func (c *Collector) serveCookieMatch(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("cookiematch") != "true" {
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.EINVALID, "POST the event (a GET is only an SDK's cookie match, with cookiematch=true)."))
		return
	}
	if int64(len(r.URL.RawQuery)) > c.Config.MaxBodyBytes {
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.ETOOLARGE, "The query is over %d bytes.", c.Config.MaxBodyBytes))
		return
	}
	c.takeTapstream(w, r, []byte(r.URL.RawQuery))
}

// takeTapstream parses, authenticates and publishes the event form body
// posted (or, for a cookie match, requested) to /{account}/event/{name}.
func (c *Collector) takeTapstream(w http.ResponseWriter, r *http.Request, body []byte) {
	account := chi.URLParam(r, "account")
	name := chi.URLParam(r, "event")
	if r.URL.RawPath != "" {
		var err error
		if account, err = url.PathUnescape(account); err == nil {
			name, err = url.PathUnescape(name)
		}
		if err != nil {
			c.reject(w, r, "tapstream", tapline.Errorf(tapline.EINVALID, "The URL path is not validly escaped."))
			return
		}
	}
	now := c.now().UTC()
	te, err := parseTapstream(name, body, now, c.Config.MaxClockSkew)
	if err != nil {
		c.reject(w, r, "tapstream", err)
		return
	}
	if te.Secret == "" {
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.EFORBIDDEN, "The secret field is required."))
		return
	}
	app, err := c.secrets.get(r.Context(), account+"\x00"+te.Secret)
	if err != nil {
		c.authError(w, r, err)
		return
	}
	e := te.Event
	e.AppID = app.ID
	e.ID = tapstreamEventID(app.ID, te.seed)
	e.IP = c.clientIP(r)
	c.Fingerprinter.Event(e)
	msg, err := EventMessage(c.Config.EventsTopic, e, c.Config.BinaryMessages)
	if err != nil {
		httperr.Write(w, r, c.Logger, err)
		return
	}
	if err := c.publishEvents(r.Context(), []tapline.Message{msg}); err != nil {
		httperr.Write(w, r, c.Logger, err)
		return
	}
	c.m.eventsAccepted.WithLabelValues("tapstream").Inc()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "accepted", "id": e.ID})
}

func (c *Collector) loadAppBySecret(ctx context.Context, key string) (*tapline.App, error) {
	account, secret, _ := strings.Cut(key, "\x00")
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	return c.Accounts.AppBySecret(ctx, account, secret)
}

// authError answers a failed credential lookup: domain answers as they
// are, any other failure as 503 so SDKs retry.
func (c *Collector) authError(w http.ResponseWriter, r *http.Request, err error) {
	if tapline.ErrorCode(err) == tapline.EINTERNAL {
		c.Logger.ErrorContext(r.Context(), "credential lookup", "path", r.URL.Path, "err", err)
		err = tapline.Errorf(tapline.EUNAVAILABLE, "Credentials cannot be checked now; retry later.")
	}
	httperr.Write(w, r, c.Logger, err)
}

// reject answers an invalid request and counts it.
func (c *Collector) reject(w http.ResponseWriter, r *http.Request, protocol string, err error) {
	c.m.eventsRejected.WithLabelValues(protocol).Inc()
	httperr.Write(w, r, c.Logger, err)
}

// bodyError answers a failed body read: 413 over the limit, else 400.
func (c *Collector) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.ETOOLARGE, "The body is over %d bytes.", mbe.Limit))
		return
	}
	httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.EINVALID, "The body could not be read."))
}

// tapstreamEventID derives the event id from the app and the fields an SDK
// retry repeats, so a retried post is the same event.
// eventSeed returns what identifies an event across SDK retries. Without
// created-ms nothing tells two events of one name and install apart, so such
// an event gets a random seed: a retry of it may count twice, but distinct
// events are never merged. The published SDKs always send created-ms.
func eventSeed(installID, name, created, txID string) string {
	if created == "" {
		return "random\x00" + rand.Text()
	}
	return strings.Join([]string{installID, name, created, txID}, "\x00")
}

func tapstreamEventID(appID int64, seed string) string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(appID, 10) + "\x00" + seed))
	return "ts-" + hitIDEncoding.EncodeToString(sum[:16])
}

// normalizeEventName applies the iOS SDK's rule to every event name: lower
// case, trimmed, dots replaced by underscores.
func normalizeEventName(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), ".", "_")
}

// tapstreamPlatform maps the SDK's platform field ("iOS", "Android",
// "Mac"), or failing that the event name's prefix, to a Platform.
func tapstreamPlatform(field, name string) tapline.Platform {
	switch strings.ToLower(field) {
	case "ios":
		return tapline.PlatformIOS
	case "android":
		return tapline.PlatformAndroid
	case "":
		switch {
		case strings.HasPrefix(name, "ios-"):
			return tapline.PlatformIOS
		case strings.HasPrefix(name, "android-"):
			return tapline.PlatformAndroid
		}
	}
	return tapline.PlatformWeb
}

// tapstreamKind classifies an event by the names the SDKs give their
// automatic events: "<platform>-<app>-install", "<platform>-<app>-open"
// and "<platform>-<app>-purchase-<sku>" (or any event with purchase
// fields); everything else is custom.
func tapstreamKind(name string, e *tapline.Event) tapline.EventKind {
	auto := strings.HasPrefix(name, "ios-") || strings.HasPrefix(name, "android-") || strings.HasPrefix(name, "mac-")
	switch {
	case e.Revenue != nil || e.Params["purchase-transaction-id"] != "" || e.Params["purchase-product-id"] != "":
		return tapline.KindPurchase
	case auto && strings.Contains(name, "-purchase-"):
		return tapline.KindPurchase
	case auto && strings.HasSuffix(name, "-install"):
		return tapline.KindInstall
	case auto && strings.HasSuffix(name, "-open"):
		return tapline.KindOpen
	}
	return tapline.KindCustom
}

// osVersion returns the bare version in an SDK's os field: "iOS 17.4.1"
// and "iPhone OS 6.1" give "17.4.1" and "6.1", "Android 14" gives "14", a
// bare "14.4.1" (the Mac SDK) is kept.
func osVersion(os string) string {
	fields := strings.Fields(os)
	if len(fields) == 0 {
		return ""
	}
	v := fields[len(fields)-1]
	if v[0] < '0' || v[0] > '9' || len(v) > 32 {
		return ""
	}
	return v
}

// currency returns s as an upper-case ISO 4217 code.
func currency(s string) (string, bool) {
	if len(s) != 3 {
		return "", false
	}
	s = strings.ToUpper(s)
	for i := range 3 {
		if s[i] < 'A' || s[i] > 'Z' {
			return "", false
		}
	}
	return s, true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}
