package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	"tapline"
	"tapline/internal/httperr"
)

const maxEventID = 128

// batchRequest is the body of POST /v1/events. Each event stays raw until
// it is decoded on its own, so one malformed event rejects only itself.
type batchRequest struct {
	Events []json.RawMessage `json:"events"`
}

// batchEvent is one event of a JSON batch. Unknown fields are ignored.
type batchEvent struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Kind      string            `json:"kind"`
	Time      string            `json:"time"`
	InstallID string            `json:"install_id"`
	Device    batchDevice       `json:"device"`
	Revenue   *batchRevenue     `json:"revenue"`
	Params    map[string]string `json:"params"`
	Referrer  string            `json:"referrer"`
}

type batchDevice struct {
	Platform        string `json:"platform"`
	OSVersion       string `json:"os_version"`
	Model           string `json:"model"`
	Vendor          string `json:"vendor"`
	Locale          string `json:"locale"`
	Resolution      string `json:"resolution"`
	AppVersion      string `json:"app_version"`
	IDFA            string `json:"idfa"`
	IDFV            string `json:"idfv"`
	GAID            string `json:"gaid"`
	LimitAdTracking bool   `json:"limit_ad_tracking"`
}

type batchRevenue struct {
	// Amount is a decimal string ("9.99") or a JSON number, in units of
	// Currency.
	Amount   json.Number `json:"amount"`
	Currency string      `json:"currency"`
}

// Result statuses of a batch event.
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
)

// BatchResult is the outcome of one event of a JSON batch, in request order.
type BatchResult struct {
	Index  int           `json:"index"`
	ID     string        `json:"id"`
	Status string        `json:"status"` // StatusAccepted or StatusRejected
	Error  *httperr.Body `json:"error,omitempty"`
}

// BatchResponse is the body of a POST /v1/events answer (200, or 400 when
// every event was rejected).
type BatchResponse struct {
	Accepted int           `json:"accepted"`
	Rejected int           `json:"rejected"`
	Results  []BatchResult `json:"results"`
}

// decodeBatch parses a JSON batch body into events of app appID received at
// now, with one result per event. It fails (EINVALID) only when the body as
// a whole is malformed, empty or longer than maxEvents.
func decodeBatch(body []byte, appID int64, now time.Time, maxSkew time.Duration, maxEvents int) ([]*tapline.Event, []BatchResult, error) {
	var req batchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, nil, tapline.Errorf(tapline.EINVALID, "The body is not valid JSON: %s.", jsonProblem(err))
	}
	if dec.More() {
		return nil, nil, tapline.Errorf(tapline.EINVALID, "The body must hold a single JSON object.")
	}
	if len(req.Events) == 0 {
		return nil, nil, tapline.Errorf(tapline.EINVALID, "The events array is missing or empty.")
	}
	if len(req.Events) > maxEvents {
		return nil, nil, tapline.Errorf(tapline.EINVALID, "A batch holds at most %d events, got %d.", maxEvents, len(req.Events))
	}
	events := make([]*tapline.Event, 0, len(req.Events))
	results := make([]BatchResult, len(req.Events))
	for i, raw := range req.Events {
		results[i].Index = i
		var be batchEvent
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		err := d.Decode(&be)
		if err != nil {
			err = tapline.Errorf(tapline.EINVALID, "The event is not a valid JSON object: %s.", jsonProblem(err))
		}
		results[i].ID = be.ID
		var e *tapline.Event
		if err == nil {
			e, err = be.event(appID, now, maxSkew)
		}
		if err != nil {
			results[i].Status = StatusRejected
			results[i].Error = &httperr.Body{Error: tapline.ErrorCode(err), Message: tapline.ErrorMessage(err)}
			continue
		}
		results[i].Status = StatusAccepted
		events = append(events, e)
	}
	return events, results, nil
}

// event validates be and turns it into an Event.
func (be *batchEvent) event(appID int64, now time.Time, maxSkew time.Duration) (*tapline.Event, error) {
	bad := func(format string, args ...any) (*tapline.Event, error) {
		return nil, tapline.Errorf(tapline.EINVALID, format, args...)
	}
	if be.ID == "" || len(be.ID) > maxEventID || !printable(be.ID) {
		return bad("id is required (at most %d printable characters).", maxEventID)
	}
	name := strings.TrimSpace(be.Name)
	if name == "" || len(name) > maxEventName || !printable(name) {
		return bad("name is required (at most %d printable characters).", maxEventName)
	}
	if be.InstallID == "" || len(be.InstallID) > maxInstallID || !printable(be.InstallID) {
		return bad("install_id is required (at most %d printable characters).", maxInstallID)
	}
	e := &tapline.Event{
		ID:         be.ID,
		AppID:      appID,
		Name:       name,
		Time:       now,
		ReceivedAt: now,
		InstallID:  be.InstallID,
		Referrer:   clip(be.Referrer, maxParamValue),
		Protocol:   "v1",
		Device: tapline.Device{
			OSVersion:       clip(be.Device.OSVersion, 32),
			Model:           clip(be.Device.Model, 128),
			Vendor:          clip(be.Device.Vendor, 128),
			Locale:          clip(be.Device.Locale, 64),
			Resolution:      clip(be.Device.Resolution, 32),
			AppVersion:      clip(be.Device.AppVersion, 64),
			LimitAdTracking: be.Device.LimitAdTracking,
		},
	}
	if be.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, be.Time)
		if err != nil {
			return bad("time must be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z.")
		}
		if t = t.UTC(); !t.Before(minEventTime) && !t.After(now.Add(maxSkew)) {
			e.Time = t
		}
	}
	switch p := tapline.Platform(strings.ToLower(be.Device.Platform)); p {
	case tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb:
		e.Device.Platform = p
	case "":
		return bad("device.platform is required: ios, android or web.")
	default:
		return bad("device.platform must be ios, android or web.")
	}
	for _, id := range []struct {
		field string
		raw   string
		dst   *string
	}{{"idfa", be.Device.IDFA, &e.Device.IDFA}, {"idfv", be.Device.IDFV, &e.Device.IDFV}, {"gaid", be.Device.GAID, &e.Device.GAID}} {
		if id.raw == "" {
			continue
		}
		if *id.dst = normalizeAdID(id.raw); *id.dst == "" && strings.Trim(id.raw, "0-") != "" {
			return bad("device.%s must be a UUID.", id.field)
		}
	}
	if len(be.Params) > maxEventParams {
		return bad("params holds at most %d entries.", maxEventParams)
	}
	for k, v := range be.Params {
		if k == "" || len(k) > maxParamKey || len(v) > maxParamValue {
			return bad("params keys must be 1 to %d bytes and values at most %d bytes.", maxParamKey, maxParamValue)
		}
	}
	if len(be.Params) > 0 {
		e.Params = be.Params
	}
	if be.Revenue != nil {
		micros, ok := decimalMicros(string(be.Revenue.Amount))
		if !ok {
			return bad("revenue.amount must be a decimal number with at most 6 fraction digits, such as \"9.99\".")
		}
		cur, ok := currency(be.Revenue.Currency)
		if !ok {
			return bad("revenue.currency must be an ISO 4217 code such as USD.")
		}
		if micros < 0 {
			return bad("revenue.amount must not be negative: report a refund as an event of its own (such as \"refund\") with a positive amount.")
		}
		if limit := maxRevenueUnits(cur); micros > limit*1_000_000 {
			return bad("revenue.amount must be at most %d %s.", limit, cur)
		}
		e.Revenue = &tapline.Revenue{Micros: micros, Currency: cur}
	}
	switch k := tapline.EventKind(strings.ToLower(be.Kind)); k {
	case tapline.KindInstall, tapline.KindOpen, tapline.KindPurchase, tapline.KindCustom:
		e.Kind = k
	case "":
		switch k := tapline.EventKind(strings.ToLower(name)); k {
		case tapline.KindInstall, tapline.KindOpen, tapline.KindPurchase:
			e.Kind = k
		default:
			e.Kind = tapline.KindCustom
		}
	default:
		return bad("kind must be install, open, purchase or custom.")
	}
	return e, nil
}

// maxRevenueUnits bounds one event's revenue in cur: ten million units,
// or ten billion in the currencies whose unit is worth little (a million
// yen is no fortune); far above any in-app purchase, far below what would
// wreck an app's totals by mistake.
func maxRevenueUnits(cur string) int64 {
	switch cur {
	case "JPY", "KRW", "IDR", "VND", "IRR", "COP", "HUF", "CLP", "PYG", "UGX", "LAK", "UZS", "MMK", "KHR", "TZS", "LBP",
		"SLE", "SLL", "GNF", "MGA", "BIF", "KMF", "XAF", "XOF", "IQD", "RWF", "MNT", "AMD", "NGN", "KZT", "ISK", "LKR", "PKR":
		return 10_000_000_000
	}
	return 10_000_000
}

// maxMicros bounds what decimalMicros reads (a trillion units).
var maxMicros = new(big.Rat).SetInt64(1_000_000_000_000_000_000)

// decimalMicros converts a decimal amount to micros exactly, refusing more
// than 6 fraction digits, exponents beyond them and absurd sizes.
func decimalMicros(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 40 || strings.ContainsAny(s, "/") {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(1_000_000, 1))
	if !r.IsInt() || r.Cmp(maxMicros) > 0 || r.Cmp(new(big.Rat).Neg(maxMicros)) < 0 {
		return 0, false
	}
	return r.Num().Int64(), true
}

// jsonProblem describes a JSON decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + itoa(se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return "field " + te.Field + " has the wrong type"
		}
		return "a value has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "malformed input"
}

func itoa(n int64) string { return big.NewInt(n).String() }

// sdkKeyApp returns the app whose SDK key the request's bearer token is;
// on failure it sets WWW-Authenticate and returns the error to answer
// (EUNAUTHORIZED, or the lookup's own).
func (c *Collector) sdkKeyApp(w http.ResponseWriter, r *http.Request) (*tapline.App, error) {
	key, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tapline"`)
		return nil, tapline.Errorf(tapline.EUNAUTHORIZED, "An Authorization: Bearer <SDK key> header is required.")
	}
	app, err := c.keys.get(r.Context(), key)
	if err != nil && isDomain(err, tapline.ENOTFOUND, tapline.EFORBIDDEN, tapline.EUNAUTHORIZED) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tapline", error="invalid_token"`)
		err = tapline.Errorf(tapline.EUNAUTHORIZED, "The SDK key is not valid.")
	}
	return app, err
}

// serveBatch takes a JSON batch of events from an app's SDK key.
func (c *Collector) serveBatch(w http.ResponseWriter, r *http.Request) {
	app, err := c.sdkKeyApp(w, r)
	if err != nil {
		c.authError(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.Config.MaxBodyBytes))
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	events, results, err := decodeBatch(body, app.ID, c.now().UTC(), c.Config.MaxClockSkew, c.Config.MaxBatchEvents)
	if err != nil {
		c.reject(w, r, "v1", err)
		return
	}
	resp := BatchResponse{Results: results, Accepted: len(events), Rejected: len(results) - len(events)}
	c.m.eventsRejected.WithLabelValues("v1").Add(float64(resp.Rejected))
	if len(events) > 0 {
		ip := c.clientIP(r)
		msgs := make([]tapline.Message, 0, len(events))
		for _, e := range events {
			e.IP = ip
			c.Fingerprinter.Event(e)
			msg, err := EventMessage(c.Config.EventsTopic, e, c.Config.BinaryMessages)
			if err != nil {
				httperr.Write(w, r, c.Logger, err)
				return
			}
			msgs = append(msgs, msg)
		}
		if err := c.publishEvents(r.Context(), msgs); err != nil {
			httperr.Write(w, r, c.Logger, err)
			return
		}
		c.m.eventsAccepted.WithLabelValues("v1").Add(float64(len(events)))
	}
	status := http.StatusOK
	if len(events) == 0 {
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func (c *Collector) loadAppBySDKKey(ctx context.Context, key string) (*tapline.App, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	return c.Accounts.AppBySDKKey(ctx, key)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 256 {
		return "", false
	}
	return token, true
}
