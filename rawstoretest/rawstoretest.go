package rawstoretest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"tapline"
)

// Run runs the conformance suite; open returns a new, empty store for each
// subtest. Run closes each store when its subtest ends (Close must be safe
// twice, so open may register its own Close too).
func Run(t *testing.T, open func(t *testing.T) tapline.RawStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tapline.RawStore)
	}{
		{"PutHitIfAbsent", testPutHitIfAbsent},
		{"PutEventIfAbsent", testPutEventIfAbsent},
		{"ConcurrentPutEvent", testConcurrentPutEvent},
		{"ConcurrentPutHit", testConcurrentPutHit},
		{"NotFound", testNotFound},
		{"HitsByFingerprintRange", testHitsByFingerprintRange},
		{"LookupBounded", testLookupBounded},
		{"InstallsByFingerprintRange", testInstallsByFingerprintRange},
		{"AppIsolation", testAppIsolation},
		{"InstallsOnly", testInstallsOnly},
		{"ReferrerHit", testReferrerHit},
		{"AdID", testAdID},
		{"HitAt", testHitAt},
		{"ConversionReplace", testConversionReplace},
		{"ConversionsByHitMany", testConversionsByHitMany},
		{"DeleteBefore", testDeleteBefore},
		{"Sync", testSync},
		{"ConversionConflict", testConversionConflict},
		{"EventsByInstall", testEventsByInstall},
		{"ScanInstallations", testScanInstallations},
		{"ScanInstallationsResume", testScanInstallationsResume},
		{"FunnelState", testFunnelState},
		{"VendorID", testVendorID},
		{"Reengagement", testReengagement},
		{"ConcurrentReengagement", testConcurrentReengagement},
		{"ReinstallConversion", testReinstallConversion},
		{"EraseByAdID", testEraseByAdID},
		{"EraseByInstallID", testEraseByInstallID},
		{"EraseConversionIDs", testEraseConversionIDs},
		{"EraseReengagement", testEraseReengagement},
		{"ScanRows", testScanRows},
		{"ScanRowsResumeAfterErased", testScanRowsResumeAfterErased},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// appID returns a random app id so subtests sharing a database do not meet.
func appID() int64 { return rand.Int64N(1<<50) + 1 }

// base returns a recent time with millisecond precision in UTC, which every
// store keeps exactly.
func base() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func newHit(app int64, id, fp string, at time.Time) *tapline.Hit {
	return &tapline.Hit{
		ID:             id,
		Time:           at,
		AppID:          app,
		LinkID:         42,
		IP:             "203.0.113.7",
		UserAgent:      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
		AcceptLanguage: "en-US",
		Params:         map[string]string{"utm_source": "ads"},
		Platform:       tapline.PlatformIOS,
		OSVersion:      "17.4",
		Fingerprint:    fp,
	}
}

func newEvent(app int64, id string, kind tapline.EventKind, fp string, at time.Time) *tapline.Event {
	return &tapline.Event{
		ID:          id,
		AppID:       app,
		Name:        string(kind),
		Kind:        kind,
		Time:        at,
		ReceivedAt:  at.Add(time.Second),
		InstallID:   "inst-" + id,
		IP:          "203.0.113.7",
		Device:      tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: "14", Model: "Pixel 7"},
		Protocol:    "v1",
		Fingerprint: fp,
	}
}

func newConversion(app int64, eventID, hitID string, at time.Time) *tapline.Conversion {
	method := tapline.MethodFingerprint
	if hitID == "" {
		method = tapline.MethodOrganic
	}
	return &tapline.Conversion{
		ID:          tapline.ConversionID(eventID),
		AppID:       app,
		EventID:     eventID,
		InstallID:   "inst-" + eventID,
		InstallTime: at,
		Platform:    tapline.PlatformAndroid,
		Fingerprint: "fp",
		Attribution: tapline.Attribution{HitID: hitID, LinkID: 42, Method: method},
		History: []tapline.AttributionChange{
			{By: "events/0/1", To: tapline.Attribution{HitID: hitID, LinkID: 42, Method: method}, At: at},
		},
		UpdatedAt: at,
	}
}

func mustPutHit(t *testing.T, s tapline.RawStore, h *tapline.Hit) {
	t.Helper()
	got, err := s.PutHit(t.Context(), h)
	if err != nil {
		t.Fatalf("PutHit(%s): %v", h.ID, err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("PutHit(%s) of a new hit returned\n%+v\nwant\n%+v", h.ID, got, h)
	}
}

func mustPutEvent(t *testing.T, s tapline.RawStore, e *tapline.Event) {
	t.Helper()
	got, err := s.PutEvent(t.Context(), e)
	if err != nil {
		t.Fatalf("PutEvent(%s): %v", e.ID, err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("PutEvent(%s) of a new event returned\n%+v\nwant\n%+v", e.ID, got, e)
	}
}

func mustPutConversion(t *testing.T, s tapline.RawStore, c *tapline.Conversion) {
	t.Helper()
	if err := s.PutConversion(t.Context(), c); err != nil {
		t.Fatalf("PutConversion(%s): %v", c.ID, err)
	}
}

func hitIDs(hs []*tapline.Hit) []string {
	ids := []string{}
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	return ids
}

func eventIDs(es []*tapline.Event) []string {
	ids := []string{}
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func conversionIDs(cs []*tapline.Conversion) []string {
	ids := []string{}
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

// want compares id lists, an empty result and nil being equal.
func want(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func testPutHitIfAbsent(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	first := newHit(app, "h1", "fp-a", now)
	mustPutHit(t, s, first)

	// Same id, other content, in another week: the first row stays.
	second := newHit(app, "h1", "fp-b", now.Add(8*24*time.Hour))
	second.IP, second.LinkID = "198.51.100.1", 43
	got, err := s.PutHit(ctx, second)
	if err != nil {
		t.Fatalf("second PutHit: %v", err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("second PutHit returned\n%+v\nwant the first\n%+v", got, first)
	}
	stored, err := s.Hit(ctx, app, "h1")
	if err != nil {
		t.Fatalf("Hit: %v", err)
	}
	if !reflect.DeepEqual(stored, first) {
		t.Errorf("Hit = \n%+v\nwant\n%+v", stored, first)
	}
	hs, err := s.HitsByFingerprint(ctx, app, "fp-b", now.Add(-time.Hour), now.Add(10*24*time.Hour))
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	want(t, "HitsByFingerprint(fp-b) after a refused put", hitIDs(hs), nil)
}

func testPutEventIfAbsent(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	first := newEvent(app, "e1", tapline.KindInstall, "fp-a", now)
	first.Revenue = &tapline.Revenue{Micros: 990000, Currency: "USD"}
	first.Params = map[string]string{"level": "3"}
	mustPutEvent(t, s, first)

	second := newEvent(app, "e1", tapline.KindInstall, "fp-b", now.Add(-8*24*time.Hour))
	second.Name = "other"
	got, err := s.PutEvent(ctx, second)
	if err != nil {
		t.Fatalf("second PutEvent: %v", err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("second PutEvent returned\n%+v\nwant the first\n%+v", got, first)
	}
	stored, err := s.Event(ctx, app, "e1")
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	if !reflect.DeepEqual(stored, first) {
		t.Errorf("Event = \n%+v\nwant\n%+v", stored, first)
	}
	es, err := s.InstallsByFingerprint(ctx, app, "fp-b", now.Add(-10*24*time.Hour), now)
	if err != nil {
		t.Fatalf("InstallsByFingerprint: %v", err)
	}
	want(t, "InstallsByFingerprint(fp-b) after a refused put", eventIDs(es), nil)
}

func testConcurrentPutEvent(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	const n = 16
	results := make([]*tapline.Event, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e := newEvent(app, "e1", tapline.KindInstall, "fp", now)
			e.Name = fmt.Sprintf("writer-%d", i)
			results[i], errs[i] = s.PutEvent(ctx, e)
		})
	}
	wg.Wait()
	stored, err := s.Event(ctx, app, "e1")
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("PutEvent %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(results[i], stored) {
			t.Errorf("PutEvent %d returned name %q, want the stored %q", i, results[i].Name, stored.Name)
		}
	}
	es, err := s.InstallsByFingerprint(ctx, app, "fp", now, now)
	if err != nil {
		t.Fatalf("InstallsByFingerprint: %v", err)
	}
	if len(es) != 1 || es[0].Name != stored.Name {
		t.Errorf("InstallsByFingerprint = %d rows (%q), want the one stored %q", len(es), eventIDs(es), stored.Name)
	}
}

func testConcurrentPutHit(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	const n = 16
	results := make([]*tapline.Hit, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			h := newHit(app, "h1", "fp", now)
			h.LinkID = int64(i)
			results[i], errs[i] = s.PutHit(ctx, h)
		})
	}
	wg.Wait()
	stored, err := s.Hit(ctx, app, "h1")
	if err != nil {
		t.Fatalf("Hit: %v", err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("PutHit %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(results[i], stored) {
			t.Errorf("PutHit %d returned link %d, want the stored %d", i, results[i].LinkID, stored.LinkID)
		}
	}
	hs, err := s.HitsByFingerprint(ctx, app, "fp", now, now)
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	if len(hs) != 1 {
		t.Errorf("HitsByFingerprint = %d rows, want 1", len(hs))
	}
}

func testNotFound(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	// Rows under other ids and in another app must not answer.
	mustPutHit(t, s, newHit(app, "h1", "fp", now))
	mustPutEvent(t, s, newEvent(app, "e1", tapline.KindInstall, "fp", now))
	mustPutConversion(t, s, newConversion(app, "e1", "h1", now))
	other := app + 1
	tests := []struct {
		name string
		call func() error
	}{
		{"Hit", func() error { _, err := s.Hit(ctx, app, "nope"); return err }},
		{"HitOtherApp", func() error { _, err := s.Hit(ctx, other, "h1"); return err }},
		{"HitPrefix", func() error { _, err := s.Hit(ctx, app, "h"); return err }},
		{"Event", func() error { _, err := s.Event(ctx, app, "nope"); return err }},
		{"EventOtherApp", func() error { _, err := s.Event(ctx, other, "e1"); return err }},
		{"EventWithHitID", func() error { _, err := s.Event(ctx, app, "h1"); return err }},
		{"Conversion", func() error { _, err := s.Conversion(ctx, app, "nope"); return err }},
		{"ConversionOtherApp", func() error { _, err := s.Conversion(ctx, other, tapline.ConversionID("e1")); return err }},
		{"ConversionByInstall", func() error { _, err := s.ConversionByInstall(ctx, app, "nope"); return err }},
		{"ConversionByInstallOtherApp", func() error { _, err := s.ConversionByInstall(ctx, other, "inst-e1"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := tapline.ErrorCode(err); got != tapline.ENOTFOUND {
				t.Errorf("error code = %q (%v), want %q", got, err, tapline.ENOTFOUND)
			}
		})
	}
}

// testLookupBounded stores more taps on one network than a lookup returns,
// over three days (two of them outside the newest rows), and checks that
// the lookup returns the newest tapline.MaxLookupRows, newest first.
func testLookupBounded(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	n := tapline.MaxLookupRows + 40
	var ids []string // newest first
	for i := range n {
		id := fmt.Sprintf("busy-%04d", i)
		// Every 17 minutes back: the oldest lie two days back.
		mustPutHit(t, s, newHit(app, id, "busy", now.Add(-time.Duration(i)*17*time.Minute)))
		ids = append(ids, id)
	}
	hs, err := s.HitsByFingerprint(ctx, app, "busy", now.Add(-4*24*time.Hour), now)
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	want(t, "HitsByFingerprint of a busy network", hitIDs(hs), ids[:tapline.MaxLookupRows])
	// A range holding fewer is returned whole.
	hs, err = s.HitsByFingerprint(ctx, app, "busy", now.Add(-time.Duration(9)*17*time.Minute), now)
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	want(t, "HitsByFingerprint of its last ten", hitIDs(hs), ids[:10])
}

func testHitsByFingerprintRange(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	day := 24 * time.Hour
	at := map[string]time.Time{
		"old":   now.Add(-20 * day),
		"week":  now.Add(-8 * day),
		"h3":    now.Add(-3 * time.Hour),
		"h2":    now.Add(-2 * time.Hour),
		"h1":    now.Add(-time.Hour),
		"now":   now,
		"later": now.Add(2 * day),
	}
	for id, ts := range at {
		mustPutHit(t, s, newHit(app, id, "fp", ts))
	}
	mustPutHit(t, s, newHit(app, "otherfp", "fp2", now.Add(-time.Hour)))
	mustPutHit(t, s, newHit(app, "prefixfp", "f", now.Add(-time.Hour)))
	ms := time.Millisecond
	tests := []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"Inclusive", at["h2"], at["h1"], []string{"h1", "h2"}},
		{"ExclusiveByAMillisecond", at["h2"].Add(ms), at["h1"].Add(-ms), nil},
		{"Single", at["h3"], at["h3"], []string{"h3"}},
		{"LastDay", now.Add(-day), now, []string{"now", "h1", "h2", "h3"}},
		{"AcrossWeeks", now.Add(-30 * day), now.Add(30 * day), []string{"later", "now", "h1", "h2", "h3", "week", "old"}},
		{"OldOnly", now.Add(-21 * day), now.Add(-7 * day), []string{"week", "old"}},
		{"Empty", now.Add(-19 * day), now.Add(-9 * day), nil},
		{"Reversed", now, now.Add(-day), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := s.HitsByFingerprint(ctx, app, "fp", tt.from, tt.to)
			if err != nil {
				t.Fatalf("HitsByFingerprint: %v", err)
			}
			want(t, "HitsByFingerprint", hitIDs(hs), tt.want)
			for _, h := range hs {
				if !reflect.DeepEqual(h, newHit(app, h.ID, "fp", at[h.ID])) {
					t.Errorf("HitsByFingerprint row %s = %+v, want it as stored", h.ID, h)
				}
			}
		})
	}
}

func testInstallsByFingerprintRange(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	day := 24 * time.Hour
	for i, ago := range []time.Duration{10 * day, 2 * day, time.Hour, 0} {
		mustPutEvent(t, s, newEvent(app, fmt.Sprintf("i%d", i), tapline.KindInstall, "fp", now.Add(-ago)))
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"All", now.Add(-11 * day), now, []string{"i3", "i2", "i1", "i0"}},
		{"Inclusive", now.Add(-2 * day), now.Add(-time.Hour), []string{"i2", "i1"}},
		{"Exclusive", now.Add(-2*day + time.Millisecond), now.Add(-time.Hour - time.Millisecond), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := s.InstallsByFingerprint(ctx, app, "fp", tt.from, tt.to)
			if err != nil {
				t.Fatalf("InstallsByFingerprint: %v", err)
			}
			want(t, "InstallsByFingerprint", eventIDs(es), tt.want)
		})
	}
}

func testAppIsolation(t *testing.T, s tapline.RawStore) {
	ctx, now := t.Context(), base()
	a, b := appID(), appID()
	ha, hb := newHit(a, "h1", "fp", now), newHit(b, "h1", "fp", now)
	hb.LinkID = 99
	ea, eb := newEvent(a, "e1", tapline.KindInstall, "fp", now), newEvent(b, "e1", tapline.KindInstall, "fp", now)
	eb.Name = "b's install"
	mustPutHit(t, s, ha)
	mustPutHit(t, s, hb) // not a duplicate: another app
	mustPutEvent(t, s, ea)
	mustPutEvent(t, s, eb)
	only := mustPutHitOnly(t, s, newHit(a, "only-a", "fp", now.Add(-time.Minute)))

	for _, tc := range []struct {
		app  int64
		hit  *tapline.Hit
		ev   *tapline.Event
		hits []string
	}{
		{a, ha, ea, []string{"h1", only}},
		{b, hb, eb, []string{"h1"}},
	} {
		got, err := s.Hit(ctx, tc.app, "h1")
		if err != nil || !reflect.DeepEqual(got, tc.hit) {
			t.Errorf("Hit(app %d) = %+v, %v; want %+v", tc.app, got, err, tc.hit)
		}
		ev, err := s.Event(ctx, tc.app, "e1")
		if err != nil || !reflect.DeepEqual(ev, tc.ev) {
			t.Errorf("Event(app %d) = %+v, %v; want %+v", tc.app, ev, err, tc.ev)
		}
		hs, err := s.HitsByFingerprint(ctx, tc.app, "fp", now.Add(-time.Hour), now)
		if err != nil {
			t.Fatalf("HitsByFingerprint: %v", err)
		}
		want(t, fmt.Sprintf("HitsByFingerprint(app %d)", tc.app), hitIDs(hs), tc.hits)
		if len(hs) > 0 && hs[0].AppID != tc.app {
			t.Errorf("HitsByFingerprint(app %d) returned a hit of app %d", tc.app, hs[0].AppID)
		}
		es, err := s.InstallsByFingerprint(ctx, tc.app, "fp", now.Add(-time.Hour), now)
		if err != nil {
			t.Fatalf("InstallsByFingerprint: %v", err)
		}
		if len(es) != 1 || !reflect.DeepEqual(es[0], tc.ev) {
			t.Errorf("InstallsByFingerprint(app %d) = %q, want [%s of app %d]", tc.app, eventIDs(es), tc.ev.ID, tc.app)
		}
	}
}

func mustPutHitOnly(t *testing.T, s tapline.RawStore, h *tapline.Hit) string {
	t.Helper()
	mustPutHit(t, s, h)
	return h.ID
}

func testInstallsOnly(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	for _, kind := range []tapline.EventKind{tapline.KindInstall, tapline.KindOpen, tapline.KindPurchase, tapline.KindCustom} {
		e := newEvent(app, string(kind), kind, "fp", now)
		e.Device.GAID = "gaid-1"
		e.Referrer = "utm_source=ads&tapline_hit=h1"
		mustPutEvent(t, s, e)
	}
	es, err := s.InstallsByFingerprint(ctx, app, "fp", now.Add(-time.Hour), now)
	if err != nil {
		t.Fatalf("InstallsByFingerprint: %v", err)
	}
	want(t, "InstallsByFingerprint", eventIDs(es), []string{"install"})
	es, err = s.InstallsByAdID(ctx, app, "gaid-1", now.Add(-time.Hour), now)
	if err != nil {
		t.Fatalf("InstallsByAdID: %v", err)
	}
	want(t, "InstallsByAdID", eventIDs(es), []string{"install"})
	es, err = s.InstallsByReferrerHit(ctx, app, "h1")
	if err != nil {
		t.Fatalf("InstallsByReferrerHit: %v", err)
	}
	want(t, "InstallsByReferrerHit", eventIDs(es), []string{"install"})
	for _, id := range []string{"open", "purchase", "custom"} {
		if e, err := s.Event(ctx, app, id); err != nil || e.ID != id {
			t.Errorf("Event(%s) = %v, %v; want the stored event", id, e, err)
		}
	}
}

func testReferrerHit(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	day := 24 * time.Hour
	referrers := []struct {
		id, referrer string
		at           time.Time
	}{
		{"plain", "utm_source=ads&tapline_hit=h1", now.Add(-time.Hour)},
		{"encoded", "utm_source%3Dads%26tapline_hit%3Dh2", now},
		{"later", "tapline_hit=h1", now},
		{"oldweek", "tapline_hit=h1", now.Add(-9 * day)},
		{"none", "utm_source=ads", now},
		{"prefix", "tapline_hit=h", now},
	}
	for _, r := range referrers {
		e := newEvent(app, r.id, tapline.KindInstall, "", r.at)
		e.Referrer = r.referrer
		mustPutEvent(t, s, e)
	}
	tests := []struct {
		name, hit string
		want      []string
	}{
		{"NewestFirstAcrossWeeks", "h1", []string{"later", "plain", "oldweek"}},
		{"EncodedReferrer", "h2", []string{"encoded"}},
		{"NoInstalls", "h3", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := s.InstallsByReferrerHit(ctx, app, tt.hit)
			if err != nil {
				t.Fatalf("InstallsByReferrerHit: %v", err)
			}
			want(t, "InstallsByReferrerHit("+tt.hit+")", eventIDs(es), tt.want)
		})
	}
	es, err := s.InstallsByReferrerHit(ctx, app+1, "h1")
	if err != nil {
		t.Fatalf("InstallsByReferrerHit: %v", err)
	}
	want(t, "InstallsByReferrerHit of another app", eventIDs(es), nil)
}

func testAdID(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	for i, ago := range []time.Duration{3 * time.Hour, time.Hour, 0} {
		h := newHit(app, fmt.Sprintf("h%d", i), fmt.Sprintf("fp%d", i), now.Add(-ago))
		h.AdID = "idfa-1"
		mustPutHit(t, s, h)
	}
	mustPutHit(t, s, newHit(app, "noad", "fp", now))
	idfa := newEvent(app, "ios", tapline.KindInstall, "fp", now)
	idfa.Device = tapline.Device{Platform: tapline.PlatformIOS, IDFA: "idfa-1", IDFV: "v"}
	mustPutEvent(t, s, idfa)
	gaid := newEvent(app, "android", tapline.KindInstall, "fp", now.Add(-time.Hour))
	gaid.Device.GAID = "gaid-1"
	mustPutEvent(t, s, gaid)

	hs, err := s.HitsByAdID(ctx, app, "idfa-1", now.Add(-2*time.Hour), now)
	if err != nil {
		t.Fatalf("HitsByAdID: %v", err)
	}
	want(t, "HitsByAdID", hitIDs(hs), []string{"h2", "h1"})
	tests := []struct {
		name, adID string
		want       []string
	}{
		{"IDFA", "idfa-1", []string{"ios"}},
		{"GAID", "gaid-1", []string{"android"}},
		{"IDFV is no advertising id", "v", nil},
		{"Unknown", "idfa-2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := s.InstallsByAdID(ctx, app, tt.adID, now.Add(-time.Hour), now)
			if err != nil {
				t.Fatalf("InstallsByAdID: %v", err)
			}
			want(t, "InstallsByAdID("+tt.adID+")", eventIDs(es), tt.want)
		})
	}
}

// testHitAt reads hits by id and time: the time they were stored with, a
// time in another week, none.
func testHitAt(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	hits := []*tapline.Hit{newHit(app, "h1", "fp", now), newHit(app, "h2", "fp", now.Add(-20*24*time.Hour))}
	for _, h := range hits {
		mustPutHit(t, s, h)
	}
	for _, h := range hits {
		for _, at := range []time.Time{h.Time, h.Time.Add(-10 * 24 * time.Hour), {}} {
			got, err := s.HitAt(ctx, app, h.ID, at)
			if err != nil || !reflect.DeepEqual(got, h) {
				t.Errorf("HitAt(%s, %v) = %+v, %v; want %+v", h.ID, at, got, err, h)
			}
		}
	}
	for _, tt := range []struct {
		app int64
		id  string
	}{{app, "nope"}, {appID(), "h1"}} {
		if _, err := s.HitAt(ctx, tt.app, tt.id, now); tapline.ErrorCode(err) != tapline.ENOTFOUND {
			t.Errorf("HitAt(app %d, %s) = %v, want ENOTFOUND", tt.app, tt.id, err)
		}
	}
}

func testConversionReplace(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	c := newConversion(app, "e1", "h1", now)
	mustPutConversion(t, s, c)
	check := func(step string, wantConv *tapline.Conversion, byHit map[string][]string) {
		t.Helper()
		got, err := s.Conversion(ctx, app, c.ID)
		if err != nil || !reflect.DeepEqual(got, wantConv) {
			t.Errorf("%s: Conversion = %+v, %v; want %+v", step, got, err, wantConv)
		}
		got, err = s.ConversionByInstall(ctx, app, c.InstallID)
		if err != nil || !reflect.DeepEqual(got, wantConv) {
			t.Errorf("%s: ConversionByInstall = %+v, %v; want %+v", step, got, err, wantConv)
		}
		for hit, ids := range byHit {
			cs, err := s.ConversionsByHit(ctx, app, hit)
			if err != nil {
				t.Fatalf("%s: ConversionsByHit(%s): %v", step, hit, err)
			}
			want(t, step+": ConversionsByHit("+hit+")", conversionIDs(cs), ids)
			for _, got := range cs {
				if !reflect.DeepEqual(got, wantConv) {
					t.Errorf("%s: ConversionsByHit(%s) row = %+v, want %+v", step, hit, got, wantConv)
				}
			}
		}
	}
	check("first", c, map[string][]string{"h1": {c.ID}, "h2": nil})

	// A late hit re-attributes the install: the index by hit moves.
	moved := *c
	moved.Attribution = tapline.Attribution{HitID: "h2", LinkID: 43, Method: tapline.MethodAdID, HitTime: now.Add(-time.Hour)}
	moved.ClickToInstall = time.Hour
	moved.History = append(slices.Clone(c.History), tapline.AttributionChange{
		By: "hits/3/9", From: &c.Attribution, To: moved.Attribution, At: now.Add(time.Minute),
	})
	moved.UpdatedAt = now.Add(time.Minute)
	mustPutConversion(t, s, &moved)
	check("moved", &moved, map[string][]string{"h1": nil, "h2": {c.ID}})

	// Replacing with the same hit keeps one index entry.
	mustPutConversion(t, s, &moved)
	check("rewritten", &moved, map[string][]string{"h1": nil, "h2": {c.ID}})

	// Organic: no hit at all.
	organic := *c
	organic.Attribution = tapline.Attribution{Method: tapline.MethodOrganic}
	organic.History = append(slices.Clone(moved.History), tapline.AttributionChange{
		By: "hits/3/10", From: &moved.Attribution, To: organic.Attribution, At: now.Add(2 * time.Minute),
	})
	mustPutConversion(t, s, &organic)
	check("organic", &organic, map[string][]string{"h1": nil, "h2": nil, "": nil})
}

func testConversionsByHitMany(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	for _, id := range []string{"e1", "e2", "e3"} {
		mustPutConversion(t, s, newConversion(app, id, "h1", now))
	}
	mustPutConversion(t, s, newConversion(app, "e4", "h10", now))
	mustPutConversion(t, s, newConversion(app+1, "e5", "h1", now))
	cs, err := s.ConversionsByHit(ctx, app, "h1")
	if err != nil {
		t.Fatalf("ConversionsByHit: %v", err)
	}
	want(t, "ConversionsByHit(h1)", conversionIDs(cs), []string{"cv-e1", "cv-e2", "cv-e3"})
	for _, id := range []string{"e1", "e2", "e3", "e4"} {
		c, err := s.ConversionByInstall(ctx, app, "inst-"+id)
		if err != nil || c.EventID != id {
			t.Errorf("ConversionByInstall(inst-%s) = %+v, %v; want the conversion of %s", id, c, err, id)
		}
	}
}

func testDeleteBefore(t *testing.T, s tapline.RawStore) {
	ctx, now := t.Context(), base()
	day := 24 * time.Hour
	app, other := appID(), appID()
	cut := now.Add(-5 * day)
	rows := []struct {
		id   string
		at   time.Time
		kept bool
	}{
		{"old20", now.Add(-20 * day), false},
		{"old10", now.Add(-10 * day), false},
		{"justbefore", cut.Add(-time.Millisecond), false},
		{"atcut", cut, true},
		{"recent", now.Add(-time.Hour), true},
	}
	for _, r := range rows {
		h := newHit(app, "h-"+r.id, "fp", r.at)
		h.AdID = "ad"
		mustPutHit(t, s, h)
		e := newEvent(app, "e-"+r.id, tapline.KindInstall, "fp", r.at)
		e.Device.GAID = "ad"
		e.Referrer = "tapline_hit=ref"
		mustPutEvent(t, s, e)
		mustPutConversion(t, s, newConversion(app, e.ID, h.ID, r.at))
	}
	mustPutHit(t, s, newHit(other, "h-old20", "fp", now.Add(-20*day)))
	mustPutEvent(t, s, newEvent(other, "e-old20", tapline.KindInstall, "fp", now.Add(-20*day)))

	if err := s.DeleteBefore(ctx, app, cut); err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	var keptHits, keptEvents []string
	for _, r := range rows {
		_, herr := s.Hit(ctx, app, "h-"+r.id)
		_, eerr := s.Event(ctx, app, "e-"+r.id)
		wantCode := tapline.ENOTFOUND
		if r.kept {
			wantCode = ""
			keptHits = append([]string{"h-" + r.id}, keptHits...)
			keptEvents = append([]string{"e-" + r.id}, keptEvents...)
		}
		if got := tapline.ErrorCode(herr); got != wantCode {
			t.Errorf("Hit(h-%s) error code = %q (%v), want %q", r.id, got, herr, wantCode)
		}
		for _, at := range []time.Time{r.at, now, {}} {
			if _, err := s.HitAt(ctx, app, "h-"+r.id, at); tapline.ErrorCode(err) != wantCode {
				t.Errorf("HitAt(h-%s, %v) = %v, want code %q", r.id, at, err, wantCode)
			}
		}
		if got := tapline.ErrorCode(eerr); got != wantCode {
			t.Errorf("Event(e-%s) error code = %q (%v), want %q", r.id, got, eerr, wantCode)
		}
		if _, err := s.Conversion(ctx, app, tapline.ConversionID("e-"+r.id)); err != nil {
			t.Errorf("Conversion of e-%s after DeleteBefore: %v, want it kept", r.id, err)
		}
	}
	from, to := now.Add(-30*day), now
	hs, err := s.HitsByFingerprint(ctx, app, "fp", from, to)
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	want(t, "HitsByFingerprint after DeleteBefore", hitIDs(hs), keptHits)
	hs, err = s.HitsByAdID(ctx, app, "ad", from, to)
	if err != nil {
		t.Fatalf("HitsByAdID: %v", err)
	}
	want(t, "HitsByAdID after DeleteBefore", hitIDs(hs), keptHits)
	es, err := s.InstallsByFingerprint(ctx, app, "fp", from, to)
	if err != nil {
		t.Fatalf("InstallsByFingerprint: %v", err)
	}
	want(t, "InstallsByFingerprint after DeleteBefore", eventIDs(es), keptEvents)
	es, err = s.InstallsByAdID(ctx, app, "ad", from, to)
	if err != nil {
		t.Fatalf("InstallsByAdID: %v", err)
	}
	want(t, "InstallsByAdID after DeleteBefore", eventIDs(es), keptEvents)
	es, err = s.InstallsByReferrerHit(ctx, app, "ref")
	if err != nil {
		t.Fatalf("InstallsByReferrerHit: %v", err)
	}
	want(t, "InstallsByReferrerHit after DeleteBefore", eventIDs(es), keptEvents)
	cs, err := s.ConversionsByHit(ctx, app, "h-old20")
	if err != nil || len(cs) != 1 {
		t.Errorf("ConversionsByHit(h-old20) = %d rows, %v; want the kept conversion", len(cs), err)
	}

	// The other app keeps its old rows.
	if _, err := s.Hit(ctx, other, "h-old20"); err != nil {
		t.Errorf("Hit of the other app: %v, want it kept", err)
	}
	if _, err := s.Event(ctx, other, "e-old20"); err != nil {
		t.Errorf("Event of the other app: %v, want it kept", err)
	}
	hs, err = s.HitsByFingerprint(ctx, other, "fp", from, to)
	if err != nil {
		t.Fatalf("HitsByFingerprint: %v", err)
	}
	want(t, "HitsByFingerprint of the other app", hitIDs(hs), []string{"h-old20"})

	// A deleted id is free again; an earlier cut changes nothing.
	fresh := newHit(app, "h-old10", "fp", now)
	mustPutHit(t, s, fresh)
	if err := s.DeleteBefore(ctx, app, now.Add(-30*day)); err != nil {
		t.Fatalf("DeleteBefore earlier: %v", err)
	}
	if _, err := s.Hit(ctx, app, "h-justbefore"); tapline.ErrorCode(err) != tapline.ENOTFOUND {
		t.Errorf("Hit(h-justbefore) after an earlier DeleteBefore: %v, want %s", err, tapline.ENOTFOUND)
	}
	got, err := s.Hit(ctx, app, "h-old10")
	if err != nil || !reflect.DeepEqual(got, fresh) {
		t.Errorf("Hit(h-old10) after re-put = %+v, %v; want %+v", got, err, fresh)
	}
}

// testSync checks that Sync succeeds and that rows put before it stay
// readable after it.
func testSync(t *testing.T, s tapline.RawStore) {
	ctx := context.Background()
	app := appID()
	h := newHit(app, "h-sync", "fp-sync", base())
	mustPutHit(t, s, h)
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got, err := s.Hit(ctx, app, h.ID); err != nil || got.ID != h.ID {
		t.Fatalf("Hit after Sync = %v, %v; want %s", got, err, h.ID)
	}
}

// testConversionConflict checks that PutConversion refuses a conversion that
// does not follow the stored one, and that of two writers deriving from the
// same stored version exactly one wins.
func testConversionConflict(t *testing.T, s tapline.RawStore) {
	ctx, app, now := t.Context(), appID(), base()
	c := newConversion(app, "e1", "", now)
	extend := func(from *tapline.Conversion, by, hit string) *tapline.Conversion {
		next := *from
		next.Attribution = tapline.Attribution{HitID: hit, LinkID: 7, Method: tapline.MethodFingerprint, HitTime: now.Add(-time.Minute)}
		next.History = append(slices.Clone(from.History), tapline.AttributionChange{By: by, From: &from.Attribution, To: next.Attribution, At: now})
		return &next
	}
	if err := s.PutConversion(ctx, extend(c, "hits/0/1", "h0")); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Fatalf("a re-attribution of a conversion never stored: %v, want %s", err, tapline.ECONFLICT)
	}
	mustPutConversion(t, s, c)

	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = s.PutConversion(ctx, extend(c, fmt.Sprintf("hits/%d/1", i), fmt.Sprintf("h%d", i))) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch tapline.ErrorCode(err) {
		case "":
			if won >= 0 {
				t.Fatalf("writers %d and %d both re-attributed the same stored version", won, i)
			}
			won = i
		case tapline.ECONFLICT:
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer won")
	}
	got, err := s.Conversion(ctx, app, c.ID)
	if err != nil || got.HitID != fmt.Sprintf("h%d", won) || len(got.History) != 2 {
		t.Fatalf("stored = %+v, %v; want the winner's h%d with 2 changes", got, err, won)
	}
	// The winner's retry is idempotent; a loser's stale write still conflicts.
	mustPutConversion(t, s, got)
	loser := (won + 1) % len(errs)
	if err := s.PutConversion(ctx, extend(c, fmt.Sprintf("hits/%d/1", loser), "late")); tapline.ErrorCode(err) != tapline.ECONFLICT {
		t.Fatalf("stale write after the winner: %v, want %s", err, tapline.ECONFLICT)
	}
	if cs, err := s.ConversionsByHit(ctx, app, fmt.Sprintf("h%d", loser)); err != nil || len(cs) != 0 {
		t.Fatalf("a refused write left index entries: %v, %v", conversionIDs(cs), err)
	}
}
