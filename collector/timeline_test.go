package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapline"
	"tapline/collector"
	"tapline/matcher"
	"tapline/pebble"
	"tapline/postgres"
)

// The Tapstream Android SDK 4.x (github.com/tapstream/tapstream-sdk-android,
// commit 083baaa) asks for a timeline with
// tapstream-core/src/main/java/com/tapstream/sdk/http/RequestBuilders.java
// lines 26-47: GET /v1/timelines/lookup or /v1/timelines/summary with
// secret, event_session (Platform.loadSessionId(), the uuid its events
// carry: HttpApiClient.java line 142) and blocking=true. The helpers below
// read the answers the way its parsers do.

// sdkEmptyTimeline is TimelineApiResponse.legacyEmptyTimelinePattern
// (TimelineApiResponse.java line 12).
var sdkEmptyTimeline = regexp.MustCompile(`^\s*\[\s*\]\s*$`)

// sdkLookup reads a lookup answer as TimelineApiResponse does
// (TimelineApiResponse.java lines 18-57): empty for an empty body or "[]",
// else the body must be a JSON object (new JSONObject(raw), which throws
// on anything else and fails the SDK's request).
func sdkLookup(t *testing.T, body string) (obj map[string]json.RawMessage, empty bool) {
	t.Helper()
	if body == "" || sdkEmptyTimeline.MatchString(body) {
		return nil, true
	}
	if err := json.Unmarshal([]byte(body), &obj); err != nil || obj == nil {
		t.Fatalf("timeline %q is no JSON object, which the SDK's JSONObject cannot take: %v", body, err)
	}
	return obj, false
}

// sdkSummary is what TimelineSummaryResponse keeps of an answer.
type sdkSummary struct {
	LatestDeeplink          string
	LatestDeeplinkTimestamp int64
	Deeplinks, Campaigns    []string
	HitParams, EventParams  map[string]string
}

// isEmpty is TimelineSummaryResponse.isEmpty (lines 104-107).
func (s *sdkSummary) isEmpty() bool { return len(s.EventParams) == 0 && len(s.Campaigns) == 0 }

// sdkParseSummary reads a summary answer as
// TimelineSummaryResponse.createSummaryResponse does (lines 55-74): every
// field is read with org.json's getString, getLong, getJSONArray and
// getJSONObject, which throw on a missing field or one of another type;
// array elements and object values go through getString. Any throw makes
// it keep the empty summary (lines 70-73), which it reports as ok=false.
func sdkParseSummary(body string) (s sdkSummary, ok bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &obj) != nil {
		return sdkSummary{LatestDeeplinkTimestamp: -1}, false
	}
	str := func(raw json.RawMessage, out *string) bool {
		return raw != nil && raw[0] == '"' && json.Unmarshal(raw, out) == nil
	}
	strs := func(raw json.RawMessage, out *[]string) bool {
		var arr []json.RawMessage
		if raw == nil || raw[0] != '[' || json.Unmarshal(raw, &arr) != nil {
			return false
		}
		*out = make([]string, len(arr))
		for i, el := range arr {
			if !str(el, &(*out)[i]) {
				return false
			}
		}
		return true
	}
	strMap := func(raw json.RawMessage, out *map[string]string) bool {
		var m map[string]json.RawMessage
		if raw == nil || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
			return false
		}
		*out = make(map[string]string, len(m))
		for k, v := range m {
			var sv string
			if !str(v, &sv) {
				return false
			}
			(*out)[k] = sv
		}
		return true
	}
	long := func(raw json.RawMessage, out *int64) bool {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		*out = n
		return raw != nil && err == nil
	}
	ok = str(obj["latest_deeplink"], &s.LatestDeeplink) &&
		long(obj["latest_deeplink_timestamp"], &s.LatestDeeplinkTimestamp) &&
		strs(obj["deeplinks"], &s.Deeplinks) && strs(obj["campaigns"], &s.Campaigns) &&
		strMap(obj["hit_params"], &s.HitParams) && strMap(obj["event_params"], &s.EventParams)
	if !ok {
		return sdkSummary{LatestDeeplinkTimestamp: -1}, false
	}
	return s, true
}

// timelineEnv is a collector reading a real pebble raw store that a real
// matcher fills from the collector's bus.
type timelineEnv struct {
	*env
	raw *pebble.RawStore
}

func newTimelineEnv(tb testing.TB, cfg collector.Config) *timelineEnv {
	tb.Helper()
	e := newEnv(tb, cfg)
	raw := pebble.NewRawStore(tb.TempDir())
	if err := raw.Open(); err != nil {
		tb.Fatalf("open raw store: %v", err)
	}
	tb.Cleanup(func() { _ = raw.Close() })
	e.c.RawStore = raw // read by the timeline handlers only; no request has run yet
	m := matcher.New(matcher.NewConfig(), e.bus, raw, postgres.NewFactStore(e.db), e.accounts)
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Open(context.Background()); err != nil {
		tb.Fatalf("open matcher: %v", err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return &timelineEnv{env: e, raw: raw}
}

// timelineURL is the SDK's request for the session's timeline.
func timelineURL(kind, secret, session string, blocking bool) string {
	q := url.Values{"secret": {secret}, "event_session": {session}}
	if blocking {
		q.Set("blocking", "true")
	}
	return "/v1/timelines/" + kind + "?" + q.Encode()
}

// get serves GET target and returns the status and body.
func (e *env) get(target string) (int, string) {
	rec := e.do(httptest.NewRequest(http.MethodGet, target, nil), "10.0.0.1:1234")
	return rec.Code, rec.Body.String()
}

// tapIPhone taps the demo link from an iPhone whose IDFA the ad network
// filled in, and returns the hit's id once the matcher has stored it.
func (e *timelineEnv) tapIPhone(t *testing.T, idfa, query string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/l/demo?idfa="+idfa+"&"+query, nil)
	req.Header.Set("User-Agent", iphoneUA)
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	if rec := e.do(req, "10.0.0.2:1234"); rec.Code != http.StatusFound {
		t.Fatalf("tap: status %d, want 302", rec.Code)
	}
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, err := e.raw.HitsByAdID(ctx, e.app.ID, strings.ToLower(idfa), time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) > 0 {
			return hs[0].ID
		}
		if time.Now().After(deadline) {
			t.Fatal("the tap's hit is not in the raw store after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// install posts the Tapstream iOS SDK's install of session, with idfa
// ("" for none) and the form fields extra.
func (e *timelineEnv) install(t *testing.T, session, idfa string, extra url.Values) {
	t.Helper()
	form := url.Values{"secret": {demoSecret}, "uuid": {session}, "platform": {"iOS"}, "model": {"iPhone15,2"},
		"os": {"iOS 17.4.1"}, "created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	if idfa != "" {
		form.Set("hardware-ios-idfa", idfa)
	}
	for k, v := range extra {
		form[k] = v
	}
	req := httptest.NewRequest(http.MethodPost, "/demo/event/ios-demo-install/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "192.0.2.44") // another network: no fingerprint match
	if rec := e.do(req, "10.0.0.3:1234"); rec.Code != http.StatusOK {
		t.Fatalf("install: status %d: %s", rec.Code, rec.Body)
	}
}

// TestTimelineAttributedDeepLink follows a tap on a link with a deep link
// to an install whose conversion the matcher writes while the SDK's
// blocking lookups wait, and reads the answers as the SDK does.
func TestTimelineAttributedDeepLink(t *testing.T) {
	t.Parallel()
	e := newTimelineEnv(t, collector.Config{})
	ctx := context.Background()
	e.link.DeepLink = "demoapp://promo/spring"
	e.link.Params = map[string]string{"utm_source": "news"}
	if err := e.accounts.UpdateLink(ctx, e.link); err != nil {
		t.Fatal(err)
	}
	const idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
	const session = "3f1c9a52-8d6e-4b7a-9c1e-2a4b6c8d0e1f"
	hitID := e.tapIPhone(t, idfa, "utm_campaign=spring")

	// Before the install nothing is known.
	if code, body := e.get(timelineURL("summary", demoSecret, session, false)); code != http.StatusOK || body != "{}" {
		t.Fatalf("summary before the install: %d %q, want 200 {}", code, body)
	}

	type answer struct {
		code    int
		body    string
		elapsed time.Duration
	}
	wait := func(kind string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			code, body := e.get(timelineURL(kind, demoSecret, session, true))
			ch <- answer{code, body, time.Since(start)}
		}()
		return ch
	}
	summaryCh, lookupCh := wait("summary"), wait("lookup")
	time.Sleep(100 * time.Millisecond) // both are waiting
	e.install(t, session, idfa, url.Values{"custom-level": {"1"}})
	installed := time.Now()
	sum, look := <-summaryCh, <-lookupCh
	t.Logf("blocking answers %v after the install was posted (summary waited %v, lookup %v)", time.Since(installed), sum.elapsed, look.elapsed)

	if sum.code != http.StatusOK {
		t.Fatalf("summary: %d %s", sum.code, sum.body)
	}
	s, ok := sdkParseSummary(sum.body)
	if !ok || s.isEmpty() {
		t.Fatalf("the SDK reads summary %s as empty (parsed %v)", sum.body, ok)
	}
	if s.LatestDeeplink != "demoapp://promo/spring" || len(s.Deeplinks) != 1 || s.Deeplinks[0] != s.LatestDeeplink {
		t.Errorf("deep links: latest %q, all %q, want demoapp://promo/spring", s.LatestDeeplink, s.Deeplinks)
	}
	if len(s.Campaigns) != 1 || s.Campaigns[0] != "demo" {
		t.Errorf("campaigns = %q, want the link's slug", s.Campaigns)
	}
	if want := map[string]string{"utm_source": "news", "utm_campaign": "spring"}; fmt.Sprint(s.HitParams) != fmt.Sprint(want) {
		t.Errorf("hit_params = %v, want %v (no advertising id)", s.HitParams, want)
	}
	if s.EventParams["level"] != "1" {
		t.Errorf("event_params = %v, want level=1", s.EventParams)
	}
	hit, err := e.raw.Hit(ctx, e.app.ID, hitID)
	if err != nil {
		t.Fatal(err)
	}
	if s.LatestDeeplinkTimestamp != hit.Time.UnixMilli() {
		t.Errorf("latest_deeplink_timestamp = %d, want the tap's %d", s.LatestDeeplinkTimestamp, hit.Time.UnixMilli())
	}

	if look.code != http.StatusOK {
		t.Fatalf("lookup: %d %s", look.code, look.body)
	}
	obj, empty := sdkLookup(t, look.body)
	if empty {
		t.Fatalf("the SDK reads lookup %s as empty", look.body)
	}
	var tl struct {
		Hits []struct {
			ID, Tracker, Deeplink, MatchMethod string
			Created                            int64
			CustomParameters                   map[string]string `json:"custom_parameters"`
		}
		Events []struct {
			Name    string
			Created int64
		}
	}
	if err := json.Unmarshal([]byte(look.body), &tl); err != nil || obj["hits"] == nil || obj["events"] == nil {
		t.Fatalf("lookup %s: %v", look.body, err)
	}
	if len(tl.Hits) != 1 || tl.Hits[0].ID != hitID || tl.Hits[0].Deeplink != "demoapp://promo/spring" || tl.Hits[0].Tracker != "demo" ||
		tl.Hits[0].CustomParameters["idfa"] != "" || tl.Hits[0].Created != hit.Time.UnixMilli() {
		t.Errorf("hits = %+v, want the tap %s on demo with its deep link", tl.Hits, hitID)
	}
	if len(tl.Events) != 1 || tl.Events[0].Name != "ios-demo-install" {
		t.Errorf("events = %+v, want the install", tl.Events)
	}
	if sum.elapsed >= collector.DefaultTimelineWait {
		t.Errorf("the blocking summary took %v, the whole wait: it did not see the conversion arrive", sum.elapsed)
	}
}

// TestTimelineOrganic answers an organic install's timeline: no hits, its
// events, no deep link.
func TestTimelineOrganic(t *testing.T) {
	t.Parallel()
	e := newTimelineEnv(t, collector.Config{})
	const session = "organic-0001"
	e.install(t, session, "", url.Values{"custom-plan": {"free"}})

	code, body := e.get(timelineURL("lookup", demoSecret, session, true))
	if code != http.StatusOK {
		t.Fatalf("lookup: %d %s", code, body)
	}
	if _, empty := sdkLookup(t, body); empty {
		t.Fatalf("lookup %s: empty, want the organic install's timeline", body)
	}
	var tl struct {
		Hits   []json.RawMessage
		Events []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(body), &tl); err != nil || tl.Hits == nil || len(tl.Hits) != 0 || len(tl.Events) != 1 {
		t.Fatalf("lookup %s (%v): want no hits and the install", body, err)
	}

	code, body = e.get(timelineURL("summary", demoSecret, session, false))
	s, ok := sdkParseSummary(body)
	if code != http.StatusOK || !ok {
		t.Fatalf("summary: %d %s: the SDK cannot parse it", code, body)
	}
	if s.LatestDeeplink != "" || s.LatestDeeplinkTimestamp != -1 || len(s.Deeplinks) != 0 || len(s.Campaigns) != 0 || len(s.HitParams) != 0 {
		t.Errorf("summary %+v, want no deep link, campaign or hit parameter", s)
	}
	if s.EventParams["plan"] != "free" {
		t.Errorf("event_params = %v, want plan=free", s.EventParams)
	}
}

// TestTimelineNothingFound answers what the SDK reads as nothing found for
// an unknown session, at once without blocking and after TimelineWait
// with it, and for a session of another app: never an error it retries.
func TestTimelineNothingFound(t *testing.T) {
	t.Parallel()
	const wait = 400 * time.Millisecond
	e := newTimelineEnv(t, collector.Config{TimelineWait: wait})
	ctx := context.Background()
	other := &tapline.Account{Name: "rival"}
	if err := e.accounts.CreateAccount(ctx, other, &tapline.User{Email: "rival@example.com"}, "rival-password"); err != nil {
		t.Fatal(err)
	}
	rivalApp := &tapline.App{AccountID: other.ID, Name: "Rival", SDKSecret: "rival-secret-0123456789"}
	if err := e.accounts.CreateApp(ctx, rivalApp); err != nil {
		t.Fatal(err)
	}
	const session = "known-to-demo-only"
	e.install(t, session, "", nil)
	// The demo app's own lookup finds the install once the matcher has
	// stored it (polled: on a loaded machine that can take longer than
	// the short TimelineWait of this test).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := e.get(timelineURL("lookup", demoSecret, session, false))
		if code == http.StatusOK && body != "[]" {
			break
		}
		if code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("demo's own lookup: %d %s, want its timeline", code, body)
		}
	}

	for _, tc := range []struct {
		name, kind, secret, session string
		blocking                    bool
		want                        string
	}{
		{"lookup", "lookup", demoSecret, "no-such-session", false, "[]"},
		{"summary", "summary", demoSecret, "no-such-session", false, "{}"},
		{"blocking summary times out", "summary", demoSecret, "no-such-session", true, "{}"},
		{"blocking lookup times out", "lookup", demoSecret, "no-such-session", true, "[]"},
		{"another app's session", "summary", rivalApp.SDKSecret, session, false, "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, body := e.get(timelineURL(tc.kind, tc.secret, tc.session, tc.blocking))
			elapsed := time.Since(start)
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("%d %q, want 200 %q", code, body, tc.want)
			}
			if tc.kind == "summary" {
				if s, ok := sdkParseSummary(body); ok || !s.isEmpty() {
					t.Errorf("the SDK parses %q as a summary: %+v", body, s)
				}
			} else if _, empty := sdkLookup(t, body); !empty {
				t.Errorf("the SDK reads %q as a timeline", body)
			}
			switch {
			case tc.blocking && (elapsed < wait || elapsed > wait+2*time.Second):
				t.Errorf("blocking answer after %v, want about TimelineWait (%v)", elapsed, wait)
			case !tc.blocking && elapsed > wait:
				t.Errorf("non-blocking answer after %v, want at once", elapsed)
			}
		})
	}
}

// TestTimelineAuth refuses a missing or wrong secret with 403, which the
// SDK does not retry, and a missing session with 400.
func TestTimelineAuth(t *testing.T) {
	t.Parallel()
	e := newTimelineEnv(t, collector.Config{})
	for _, tc := range []struct {
		name, target string
		want         int
	}{
		{"wrong secret", timelineURL("lookup", "wrong-secret-0123456789", "s1", true), http.StatusForbidden},
		{"wrong secret summary", timelineURL("summary", "wrong-secret-0123456789", "s1", false), http.StatusForbidden},
		{"no secret", "/v1/timelines/summary?event_session=s1", http.StatusForbidden},
		{"no session", "/v1/timelines/summary?secret=" + demoSecret, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.get(tc.target); code != tc.want {
				t.Errorf("%d %s, want %d", code, body, tc.want)
			}
		})
	}
}

// TestTimelineWithoutRawStore answers nothing found when the collector has
// no raw store, and says so in the log once.
func TestTimelineWithoutRawStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	var log bytes.Buffer
	e.c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	for range 2 {
		if code, body := e.get(timelineURL("summary", demoSecret, "s1", true)); code != http.StatusOK || body != "{}" {
			t.Fatalf("summary: %d %q, want 200 {}", code, body)
		}
		if code, body := e.get(timelineURL("lookup", demoSecret, "s1", true)); code != http.StatusOK || body != "[]" {
			t.Fatalf("lookup: %d %q, want 200 []", code, body)
		}
	}
	if n := strings.Count(log.String(), "no raw store"); n != 1 {
		t.Errorf("logged %d times, want once: %s", n, log.String())
	}
}

// TestDeeplinkQuery answers the iOS SDK's universal link query with no
// registered or fallback URL: TSUniversalLink's unknown link.
func TestDeeplinkQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	q := url.Values{"__tsdqu": {"https://taps.example/l/demo"}, "__tsdqp": {"iOS"}}
	code, body := e.get("/demo/deeplink_query/?" + q.Encode())
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
		t.Fatalf("%d %q: %v", code, body, err)
	}
	// TSUniversalLink.m lines 39-66: a link is known when registered_url
	// or fallback_url is not null.
	if got["registered_url"] != nil || got["fallback_url"] != nil || got["enable_universal_links"] != false {
		t.Errorf("answer %v, want an unknown link", got)
	}
}

// TestCookieMatch takes an older iOS SDK's cookie-match request, a GET of
// the event URL with the form in the query, as the event.
func TestCookieMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	form := url.Values{"cookiematch": {"true"}, "secret": {demoSecret}, "uuid": {"cm-1"}, "platform": {"iOS"},
		"created-ms": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	if code, body := e.get("/demo/event/ios-demo-install/?" + form.Encode()); code != http.StatusOK {
		t.Fatalf("cookie match: %d %s", code, body)
	}
	got := events(t, e.bus, 1)
	if got[0].InstallID != "cm-1" || got[0].Kind != tapline.KindInstall || got[0].AppID != e.app.ID {
		t.Errorf("event %+v, want the install of cm-1", got[0])
	}
	form.Del("cookiematch")
	if code, _ := e.get("/demo/event/ios-demo-install/?" + form.Encode()); code != http.StatusBadRequest {
		t.Errorf("GET without cookiematch: %d, want 400", code)
	}
	form.Set("cookiematch", "true")
	form.Set("secret", "wrong")
	if code, _ := e.get("/demo/event/ios-demo-install/?" + form.Encode()); code != http.StatusForbidden {
		t.Errorf("cookie match with a wrong secret: %d, want 403", code)
	}
}
