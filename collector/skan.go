package collector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
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
// id, what was made of it and why.
type SKANResponse struct {
	ID     int64              `json:"id"`
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
	p, ok := c.readPostback(w, r)
	if !ok {
		return
	}
	app, err := c.appStoreIDs.get(r.Context(), strconv.FormatInt(p.AppID, 10))
	if err != nil {
		if isDomain(err, tapline.ENOTFOUND) {
			err = tapline.Errorf(tapline.ENOTFOUND, "No app has App Store id %d: set it on the app's settings page.", p.AppID)
		}
		c.skanError(w, r, tapline.SKANViaDeveloper, err)
		return
	}
	c.recordPostback(w, r, app, p, tapline.SKANViaDeveloper)
}

// serveSKANForward takes a postback an ad network received and forwards,
// as Apple sent it, with the app's SDK key as bearer token. Its app-id must
// be the app's App Store id.
func (c *Collector) serveSKANForward(w http.ResponseWriter, r *http.Request) {
	app, err := c.sdkKeyApp(w, r)
	if err != nil {
		c.skanError(w, r, tapline.SKANViaNetwork, err)
		return
	}
	p, ok := c.readPostback(w, r)
	if !ok {
		return
	}
	if app.AppStoreID == 0 || p.AppID != app.AppStoreID {
		c.skanError(w, r, tapline.SKANViaNetwork, tapline.Errorf(tapline.EFORBIDDEN,
			"The postback's app-id %d is not this app's App Store id: set the app's App Store id on its settings page.", p.AppID))
		return
	}
	c.recordPostback(w, r, app, p, tapline.SKANViaNetwork)
}

// readPostback reads and parses the body of a postback, answering a body
// over MaxPostbackBytes (413) or one that is not a postback (400) itself.
func (c *Collector) readPostback(w http.ResponseWriter, r *http.Request) (*skadnetwork.Postback, bool) {
	via := tapline.SKANViaDeveloper
	if r.URL.Path == skanForwardPath {
		via = tapline.SKANViaNetwork
	}
	if c.SKAN == nil { // Open said so
		c.skanError(w, r, via, errNoSKAN)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.Config.MaxPostbackBytes))
	if err != nil {
		bad := tapline.Errorf(tapline.EINVALID, "The body could not be read.")
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			bad = tapline.Errorf(tapline.ETOOLARGE, "The body is over %d bytes.", mbe.Limit)
		}
		c.skanError(w, r, via, bad)
		return nil, false
	}
	p, err := skadnetwork.Parse(body)
	if err != nil {
		c.skanError(w, r, via, err)
		return nil, false
	}
	return p, true
}

// recordPostback verifies p and stores it for app, with its fact row, in
// one transaction: 200 once stored (verified, rejected or duplicate),
// 503 when the database cannot take it (Apple and the networks retry).
func (c *Collector) recordPostback(w http.ResponseWriter, r *http.Request, app *tapline.App, p *skadnetwork.Postback, via string) {
	rec := postbackRecord(app.ID, p, via)
	if err := c.SKANVerifier.Verify(p); err != nil {
		rec.Status, rec.Reason = tapline.SKANRejected, tapline.ErrorMessage(err)
	}
	rec.ReceivedAt = c.now().UTC()
	ctx, cancel := context.WithTimeout(r.Context(), c.Config.StoreTimeout)
	defer cancel()
	if err := c.SKAN.RecordSKANPostback(ctx, rec); err != nil {
		if code := tapline.ErrorCode(err); code != tapline.EINVALID && code != tapline.ENOTFOUND {
			c.Logger.WarnContext(r.Context(), "store a SKAdNetwork postback", "app", app.ID, "key", rec.Key, "err", err)
			err = tapline.Errorf(tapline.EUNAVAILABLE, "The postback could not be stored now; retry later.")
		}
		c.skanError(w, r, via, err)
		return
	}
	c.m.skanPostbacks.WithLabelValues(via, string(rec.Status)).Inc()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(SKANResponse{ID: rec.ID, Status: rec.Status, Reason: rec.Reason})
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
