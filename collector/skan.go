package collector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"

	"tapline"
	"tapline/internal/httperr"
	"tapline/skadnetwork"
)

// Verifier checks Apple's signature on a postback: *skadnetwork.Verifier,
// or in tests one holding test keys. An error means the postback is not
// Apple's (it is kept, rejected, with the error's message as reason).
type Verifier interface {
	Verify(p *skadnetwork.Postback) error
}

// SKANResponse is the answer to a postback the collector took (200): its
// id, what was made of it and why. A rejected postback the collector did
// not store (its app keeps its day's bound of rejected ones) has no id.
type SKANResponse struct {
	ID     int64              `json:"id,omitempty"`
	Status tapline.SKANStatus `json:"status"`
	Reason string             `json:"reason,omitempty"`
}

// skanForwardPath is where ad networks forward postbacks.
const skanForwardPath = "/v1/skadnetwork/postbacks"

// errNoSKAN answers postbacks when the collector has no SKANStore.
var errNoSKAN = tapline.Errorf(tapline.EUNAVAILABLE, "This collector keeps no SKAdNetwork postbacks now; retry later.")

// serveSKANCopy takes the developer's copy of a SKAdNetwork or
// AdAttributionKit postback, which Apple posts to the host the app's
// Info.plist names (NSAdvertisingAttributionReportEndpoint,
// AttributionCopyEndpoint) under /.well-known/skadnetwork/report-attribution/
// or /.well-known/appattribution/report-attribution/. The postback's
// app-id names the app (tapline.App.AppStoreID); Apple's signature is the
// only credential.
func (c *Collector) serveSKANCopy(w http.ResponseWriter, r *http.Request) {
	const via = tapline.SKANViaDeveloper
	p, verr, ok := c.takePostback(w, r, via)
	if !ok {
		return
	}
	app, err := c.appStoreIDs.get(r.Context(), strconv.FormatInt(p.AppID, 10))
	if err != nil {
		if isDomain(err, tapline.ENOTFOUND) {
			err = tapline.Errorf(tapline.ENOTFOUND, "No app has App Store id %d: set it on the app's settings page.", p.AppID)
		}
		c.skanRefused(w, r, via, verr, err)
		return
	}
	c.recordPostback(w, r, app, p, verr, via)
}

// serveSKANForward takes a postback an ad network received and forwards,
// as Apple sent it, with the app's SDK key as bearer token. Its app-id must
// be the app's App Store id. The key is looked up after the signature is
// checked, so that a flood of postbacks that are not Apple's from one
// address is refused before it reaches the database.
func (c *Collector) serveSKANForward(w http.ResponseWriter, r *http.Request) {
	const via = tapline.SKANViaNetwork
	p, verr, ok := c.takePostback(w, r, via)
	if !ok {
		return
	}
	app, err := c.sdkKeyApp(w, r)
	if err == nil && (app.AppStoreID == 0 || p.AppID != app.AppStoreID) {
		err = tapline.Errorf(tapline.EFORBIDDEN,
			"The postback's app-id %d is not this app's App Store id: set the app's App Store id on its settings page.", p.AppID)
	}
	if err != nil {
		c.skanRefused(w, r, via, verr, err)
		return
	}
	c.recordPostback(w, r, app, p, verr, via)
}

// takePostback reads, parses and verifies the postback of r; verr is why
// Apple's signature does not check out, nil when it does. It answers
// itself (ok false) a body over MaxPostbackBytes (413), one that is not a
// postback (400), and, once the address of r has spent its tokens
// (postbackLimit), those two and every postback that does not verify
// (429 with Retry-After).
func (c *Collector) takePostback(w http.ResponseWriter, r *http.Request, via string) (p *skadnetwork.Postback, verr error, ok bool) {
	if c.SKAN == nil { // Open said so
		c.skanError(w, r, via, errNoSKAN)
		return nil, nil, false
	}
	c.warnNoProxy(c.clientIP(r))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.Config.MaxPostbackBytes))
	if err != nil {
		bad := tapline.Errorf(tapline.EINVALID, "The body could not be read.")
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			bad = tapline.Errorf(tapline.ETOOLARGE, "The body is over %d bytes.", mbe.Limit)
		}
		if c.limitPostback(w, r, via) {
			c.skanError(w, r, via, bad)
		}
		return nil, nil, false
	}
	if p, err = skadnetwork.Parse(body); err != nil {
		if c.limitPostback(w, r, via) {
			c.skanError(w, r, via, err)
		}
		return nil, nil, false
	}
	if verr = c.SKANVerifier.Verify(p); verr != nil && !c.limitPostback(w, r, via) {
		return nil, nil, false
	}
	return p, verr, true
}

// limitPostback spends a token of r's address for a postback that is not
// Apple's or is refused. With none left it answers 429 with Retry-After
// (the wait for the next token) and returns false.
func (c *Collector) limitPostback(w http.ResponseWriter, r *http.Request, via string) bool {
	ok, wait := c.skanLimit.take(c.clientIP(r), c.now())
	if ok {
		return true
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.skanError(w, r, via, tapline.Errorf(tapline.ERATELIMITED,
		"Too many postbacks from this address were not Apple's or were refused; retry in %d s.", secs))
	return false
}

// skanRefused answers a parsed postback refused before it was stored (no
// such app, a wrong SDK key or app-id). One Apple signed spends a token of
// its address here (one that is not Apple's spent its token in
// takePostback); a database that cannot answer costs a signed one
// nothing more.
func (c *Collector) skanRefused(w http.ResponseWriter, r *http.Request, via string, verr, err error) {
	if code := tapline.ErrorCode(err); verr == nil && code != tapline.EUNAVAILABLE && code != tapline.EINTERNAL {
		c.skanLimit.take(c.clientIP(r), c.now())
	}
	c.skanError(w, r, via, err)
}

// recordPostback stores p for app, with its fact row, in one transaction:
// 200 once stored (verified, rejected or duplicate), 503 when the database
// cannot take it (Apple and the networks retry). verr is why p does not
// verify (rejected), nil when it does. A rejected postback of an app that
// keeps its day's bound of rejected ones is answered 200 without an id and
// counted in tapline_collector_skan_rejected_unstored_total; once the
// store has said so, the app's further rejected postbacks of the UTC day
// do not reach the database.
func (c *Collector) recordPostback(w http.ResponseWriter, r *http.Request, app *tapline.App, p *skadnetwork.Postback, verr error, via string) {
	rec := postbackRecord(app.ID, p, via)
	if verr != nil {
		rec.Status, rec.Reason = tapline.SKANRejected, tapline.ErrorMessage(verr)
	}
	rec.ReceivedAt = c.now().UTC()
	day := rec.ReceivedAt.Unix() / 86400
	if rec.Status == tapline.SKANRejected {
		if full, ok := c.rejectedFull.Load(app.ID); ok && full.(int64) == day {
			c.rejectedUnstored(w, rec, via)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.Config.StoreTimeout)
	defer cancel()
	if err := c.SKAN.RecordSKANPostback(ctx, rec); err != nil {
		if errors.Is(err, tapline.ErrSKANRejectedFull) {
			c.rejectedFull.Store(app.ID, day)
			c.rejectedUnstored(w, rec, via)
			return
		}
		if code := tapline.ErrorCode(err); code != tapline.EINVALID && code != tapline.ENOTFOUND {
			c.Logger.WarnContext(r.Context(), "store a SKAdNetwork postback", "app", app.ID, "key", rec.Key, "err", err)
			err = tapline.Errorf(tapline.EUNAVAILABLE, "The postback could not be stored now; retry later.")
		}
		c.skanError(w, r, via, err)
		return
	}
	c.m.skanPostbacks.WithLabelValues(via, string(rec.Status)).Inc()
	c.writeSKAN(w, SKANResponse{ID: rec.ID, Status: rec.Status, Reason: rec.Reason})
}

// rejectedUnstored answers a rejected postback that was not stored: 200,
// since sending it again changes nothing (it would be rejected again),
// with the reason and why it was not kept.
func (c *Collector) rejectedUnstored(w http.ResponseWriter, rec *tapline.SKANPostback, via string) {
	c.m.skanPostbacks.WithLabelValues(via, "rejected_unstored").Inc()
	c.m.skanRejectedUnstored.WithLabelValues(via).Inc()
	c.writeSKAN(w, SKANResponse{Status: tapline.SKANRejected, Reason: rec.Reason + " " + tapline.ErrSKANRejectedFull.Message})
}

func (c *Collector) writeSKAN(w http.ResponseWriter, res SKANResponse) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(res)
}

// skanError answers a postback that was not stored, counting it by its
// error code.
func (c *Collector) skanError(w http.ResponseWriter, r *http.Request, via string, err error) {
	c.m.skanPostbacks.WithLabelValues(via, tapline.ErrorCode(err)).Inc()
	if tapline.ErrorCode(err) == tapline.EINTERNAL {
		c.Logger.ErrorContext(r.Context(), "SKAdNetwork postback", "path", r.URL.Path, "err", err)
		err = tapline.Errorf(tapline.EUNAVAILABLE, "The postback cannot be taken now; retry later.")
	}
	httperr.Write(w, r, c.Logger, err)
}

// postbackRecord is p as tapline keeps it for app, verified until Verify
// says otherwise.
func postbackRecord(appID int64, p *skadnetwork.Postback, via string) *tapline.SKANPostback {
	return &tapline.SKANPostback{
		AppID: appID, Kind: p.Kind, Version: p.Version, Via: via,
		AdNetworkID: p.AdNetworkID, SourceIdentifier: p.SourceIdentifier, AppStoreID: p.AppID, TransactionID: p.TransactionID,
		Window: p.Window(), ConversionValue: p.ConversionValue, CoarseValue: p.CoarseValue, ConversionType: p.ConversionType,
		FidelityType: p.FidelityType,
		Redownload:   p.Redownload, DidWin: p.DidWin, SourceAppID: p.SourceAppID, SourceDomain: p.SourceDomain,
		Status: tapline.SKANVerified, Key: p.Key(), Raw: p.Raw,
	}
}

func (c *Collector) loadAppByAppStoreID(ctx context.Context, id string) (*tapline.App, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "App not found.")
	}
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	return c.Accounts.AppByAppStoreID(ctx, n)
}
