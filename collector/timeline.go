package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tapline"
	"tapline/internal/httperr"
)

// The Tapstream SDKs' timeline lookups (deferred deep links): GET
// /v1/timelines/lookup and /v1/timelines/summary with the app's SDK secret,
// the installation's session (the uuid its events carry) and, from the
// Android SDK 4.x, blocking=true. The collector answers them from the raw
// store: the installation's conversion, its hit and link, its events.
// docs/collector-api.md describes the answers.

// Answers that the SDKs read as "nothing found" (the timeline is not known,
// or not yet): the legacy empty timeline "[]" (TimelineApiResponse.isEmpty,
// and the iOS SDK's getConversionData, which polls again a bounded number
// of times) and an empty object, from which TimelineSummaryResponse builds
// its empty summary.
const (
	emptyTimeline = "[]"
	emptySummary  = "{}"
)

// timelineHit is one hit of a timeline: the tap the installation is
// attributed to.
type timelineHit struct {
	ID string `json:"id"`
	// Created is the tap's time in milliseconds since the Unix epoch.
	Created int64 `json:"created"`
	// Tracker is the link's slug, TrackerName its name.
	Tracker     string `json:"tracker"`
	TrackerName string `json:"tracker_name"`
	// DeepLink is the link's deep link ("" when it has none).
	DeepLink string `json:"deeplink"`
	// MatchMethod tells how the install was joined to the tap.
	MatchMethod tapline.MatchMethod `json:"match_method"`
	// CustomParameters are the tap's query parameters (with the link's
	// own), without advertising ids.
	CustomParameters map[string]string `json:"custom_parameters"`
}

// timelineEvent is one SDK event of the installation.
type timelineEvent struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Kind             tapline.EventKind `json:"kind"`
	Created          int64             `json:"created"` // device time, Unix milliseconds
	CustomParameters map[string]string `json:"custom_parameters"`
}

// timeline is the answer of /v1/timelines/lookup: an object with hits and
// events (TimelineApiResponse.parse hands it to the app as a JSONObject;
// the iOS SDK's example reads its "hits" and "events" arrays).
type timeline struct {
	Hits   []timelineHit   `json:"hits"`
	Events []timelineEvent `json:"events"`
}

// timelineSummary is the answer of /v1/timelines/summary, in the shape
// TimelineSummaryResponse.createSummaryResponse reads: every field present
// (a missing one makes it drop the whole answer), latest_deeplink a string,
// latest_deeplink_timestamp an integer (milliseconds; -1 without a deep
// link, the SDK's own "none"), arrays of strings and objects of strings.
type timelineSummary struct {
	LatestDeeplink          string            `json:"latest_deeplink"`
	LatestDeeplinkTimestamp int64             `json:"latest_deeplink_timestamp"`
	Deeplinks               []string          `json:"deeplinks"`
	Campaigns               []string          `json:"campaigns"`
	HitParams               map[string]string `json:"hit_params"`
	EventParams             map[string]string `json:"event_params"`
}

// summary condenses t: the deep links and campaigns (link slugs) of its
// hits, oldest first, the newest hit's parameters and the events'
// parameters (a later event's value wins).
func (t *timeline) summary() *timelineSummary {
	s := &timelineSummary{LatestDeeplinkTimestamp: -1, Deeplinks: []string{}, Campaigns: []string{},
		HitParams: map[string]string{}, EventParams: map[string]string{}}
	for _, h := range t.Hits {
		if h.DeepLink != "" {
			s.Deeplinks = append(s.Deeplinks, h.DeepLink)
			s.LatestDeeplink, s.LatestDeeplinkTimestamp = h.DeepLink, h.Created
		}
		if h.Tracker != "" {
			s.Campaigns = append(s.Campaigns, h.Tracker)
		}
		s.HitParams = h.CustomParameters
	}
	for _, e := range t.Events {
		for k, v := range e.CustomParameters {
			s.EventParams[k] = v
		}
	}
	return s
}

func (c *Collector) serveTimelineLookup(w http.ResponseWriter, r *http.Request) {
	c.serveTimeline(w, r, false)
}

func (c *Collector) serveTimelineSummary(w http.ResponseWriter, r *http.Request) {
	c.serveTimeline(w, r, true)
}

// serveTimeline answers a timeline lookup or summary: 403 for a missing
// or wrong secret, 400 for a missing session, 503 when the raw store
// fails (the SDK retries 5xx a few times), else 200 with the timeline or
// the SDK's "nothing found". With blocking=true it waits up to
// TimelineWait for the installation's conversion.
func (c *Collector) serveTimeline(w http.ResponseWriter, r *http.Request, summary bool) {
	q := r.URL.Query()
	secret, session := q.Get("secret"), strings.TrimSpace(q.Get("event_session"))
	if secret == "" {
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.EFORBIDDEN, "The secret parameter is required."))
		return
	}
	app, err := c.bySecret.get(r.Context(), secret)
	if err != nil {
		c.authError(w, r, err)
		return
	}
	if session == "" || len(session) > maxInstallID || !printable(session) {
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.EINVALID, "The event_session parameter is required (at most %d printable characters).", maxInstallID))
		return
	}
	var t *timeline
	if c.RawStore == nil {
		c.warnNoRaw.Do(func() {
			c.Logger.Warn("the collector has no raw store configured: Tapstream timeline lookups (deferred deep links) answer nothing found; give it the raw store (-cassandra-hosts)")
		})
	} else if t, err = c.timeline(r.Context(), app, session, q.Get("blocking") == "true"); err != nil {
		if r.Context().Err() != nil {
			return // the SDK hung up
		}
		c.Logger.ErrorContext(r.Context(), "timeline lookup", "app", app.ID, "err", err)
		httperr.Write(w, r, c.Logger, tapline.Errorf(tapline.EUNAVAILABLE, "The timeline cannot be read now; retry later."))
		return
	}
	c.m.timelineLookups.WithLabelValues(timelineEndpoint(summary), timelineOutcome(t)).Inc()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case t == nil && summary:
		_, _ = w.Write([]byte(emptySummary))
	case t == nil:
		_, _ = w.Write([]byte(emptyTimeline))
	case summary:
		_ = json.NewEncoder(w).Encode(t.summary())
	default:
		_ = json.NewEncoder(w).Encode(t)
	}
}

func timelineEndpoint(summary bool) string {
	if summary {
		return "summary"
	}
	return "lookup"
}

func timelineOutcome(t *timeline) string {
	switch {
	case t == nil:
		return "not_found"
	case len(t.Hits) == 0:
		return "organic"
	}
	return "attributed"
}

// timeline returns the timeline of the app's installation session: nil
// when its install has no conversion (yet). With blocking it looks again
// after TimelinePoll, then at doubling intervals up to four times that,
// until TimelineWait has passed: a handful of reads per lookup however
// long the matcher takes.
func (c *Collector) timeline(ctx context.Context, app *tapline.App, session string, blocking bool) (*timeline, error) {
	deadline := c.now().Add(c.Config.TimelineWait)
	poll := c.Config.TimelinePoll
	var conv *tapline.Conversion
	for {
		var err error
		conv, err = c.conversion(ctx, app.ID, session)
		if err != nil {
			return nil, err
		}
		if conv != nil {
			break
		}
		left := deadline.Sub(c.now())
		if !blocking || left <= 0 {
			return nil, nil
		}
		t := time.NewTimer(min(left, poll))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		poll = min(2*poll, 4*c.Config.TimelinePoll)
	}

	t := &timeline{Hits: []timelineHit{}, Events: []timelineEvent{}}
	rctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	events, err := c.RawStore.EventsByInstall(rctx, app.ID, session)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		t.Events = append(t.Events, timelineEvent{ID: e.ID, Name: e.Name, Kind: e.Kind, Created: e.Time.UnixMilli(),
			CustomParameters: stringMap(e.Params)})
	}
	if conv.HitID == "" {
		return t, nil // organic
	}
	h := timelineHit{ID: conv.HitID, Created: conv.HitTime.UnixMilli(), MatchMethod: conv.Method}
	params := conv.HitParams
	if params == nil {
		// A conversion stored before they were copied: the hit has them
		// while it is kept.
		hit, err := c.RawStore.HitAt(rctx, app.ID, conv.HitID, conv.HitTime)
		switch {
		case err == nil:
			params = hit.Params
		case tapline.ErrorCode(err) != tapline.ENOTFOUND:
			return nil, err
		}
	}
	h.CustomParameters = stringMap(tapline.WithoutAdIDs(params))
	if link, err := c.linkIDs.get(ctx, strconv.FormatInt(conv.LinkID, 10)); err == nil && link.AppID == app.ID {
		h.Tracker, h.TrackerName, h.DeepLink = link.Slug, link.Name, link.DeepLink
	} else if err != nil && tapline.ErrorCode(err) != tapline.ENOTFOUND {
		return nil, err
	}
	t.Hits = append(t.Hits, h)
	return t, nil
}

// conversion returns the conversion of the app's installation, or nil.
func (c *Collector) conversion(ctx context.Context, appID int64, installID string) (*tapline.Conversion, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	conv, err := c.RawStore.ConversionByInstall(ctx, appID, installID)
	if tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return nil, nil
	}
	return conv, err
}

func (c *Collector) loadAppBySDKSecret(ctx context.Context, secret string) (*tapline.App, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	return c.Accounts.AppBySDKSecret(ctx, secret)
}

func (c *Collector) loadLinkByID(ctx context.Context, id string) (*tapline.Link, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Link not found.")
	}
	ctx, cancel := context.WithTimeout(ctx, c.Config.LookupTimeout)
	defer cancel()
	return c.Accounts.Link(ctx, n)
}

// stringMap returns m, or an empty map for nil (the SDK reads an object).
func stringMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// deeplinkQueryNotFound is the answer to the iOS SDK's universal link query
// (GET /{account}/deeplink_query/?__tsdqu=URL): no registered or fallback
// URL, which TSUniversalLink reads as an unknown link (status
// kTSULUnknown), so the SDK neither retries nor fires its simulated click
// and the app handles the link itself. tapline's links are served from the
// collector's host, which serves no apple-app-site-association file, so no
// universal link of tapline's can open an app.
const deeplinkQueryNotFound = `{"registered_url":null,"fallback_url":null,"enable_universal_links":false}`

func (c *Collector) serveDeeplinkQuery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(deeplinkQueryNotFound))
}
