package collector_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tapline"
	"tapline/collector"
	"tapline/postgres"
	"tapline/skadnetwork"
)

// The demo app's App Store id in these tests.
const demoAppStoreID = 1234567890

// skanKey is a test key pair in Apple's place: the collector's verifier
// holds its public half for SKAdNetwork 4.0.
type skanKey struct{ priv *ecdsa.PrivateKey }

func newSKANKey(tb testing.TB) *skanKey {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &skanKey{priv}
}

// verifier trusts k for SKAdNetwork 4.0 and nothing else.
func (k *skanKey) verifier() *skadnetwork.Verifier {
	return &skadnetwork.Verifier{Keys: map[string]*ecdsa.PublicKey{"4.0": &k.priv.PublicKey}}
}

// postback4 returns the fields of a 4.0 postback of app appStoreID.
func postback4(appStoreID int64, tx string, window int, didWin bool) map[string]any {
	m := map[string]any{
		"version": "4.0", "ad-network-id": "example123.skadnetwork", "source-identifier": "5239", "app-id": appStoreID,
		"transaction-id": tx, "redownload": false, "source-app-id": 1234567891, "fidelity-type": 1, "did-win": didWin,
		"postback-sequence-index": window,
	}
	if window == 0 {
		m["conversion-value"] = 20
	} else {
		m["coarse-conversion-value"] = "high"
	}
	return m
}

// sign sets m's attribution-signature: ECDSA P-256 over the 4.0 fields
// joined by U+2063, as Apple signs them.
func (k *skanKey) sign(tb testing.TB, m map[string]any) map[string]any {
	tb.Helper()
	parts := []string{"version", "ad-network-id", "source-identifier", "app-id", "transaction-id", "redownload", "source-app-id",
		"fidelity-type", "did-win", "postback-sequence-index"}
	var vals []string
	for _, f := range parts {
		vals = append(vals, fmt.Sprint(m[f]))
	}
	hash := sha256.Sum256([]byte(strings.Join(vals, "\u2063")))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, hash[:])
	if err != nil {
		tb.Fatal(err)
	}
	out := maps.Clone(m)
	out["attribution-signature"] = base64.StdEncoding.EncodeToString(sig)
	return out
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// skanEnv is a collector that keeps postbacks, with the demo app's App
// Store id set.
type skanEnv struct {
	*env
	store *postgres.SKANStore
	key   *skanKey
}

func newSKANEnv(tb testing.TB, cfg collector.Config) *skanEnv {
	tb.Helper()
	e := &skanEnv{env: newEnv(tb, cfg), key: newSKANKey(tb)}
	e.store = postgres.NewSKANStore(e.db)
	e.c.SKAN, e.c.SKANVerifier = e.store, e.key.verifier()
	e.app.AppStoreID = demoAppStoreID
	if err := e.accounts.UpdateApp(context.Background(), e.app); err != nil {
		tb.Fatal(err)
	}
	return e
}

// post sends body to path (with the SDK key as bearer when key is set)
// and decodes the answer.
func (e *skanEnv) post(tb testing.TB, path, key, body string) (*httptest.ResponseRecorder, collector.SKANResponse) {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := e.do(req, "17.0.0.1:443")
	var res collector.SKANResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			tb.Fatalf("answer %q: %v", rec.Body, err)
		}
	}
	return rec, res
}

// counts returns the app's fact rows of today as "network/source/wN/value/outcome=postbacks".
func (e *skanEnv) counts(tb testing.TB, appID int64) []string {
	tb.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	cs, err := e.store.SKANCounts(context.Background(), appID, today.Add(-24*time.Hour), today.Add(48*time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s/%s/w%d/%s/%s=%d", c.AdNetwork, c.SourceIdentifier, c.Window, c.Value, c.Outcome, c.Postbacks))
	}
	return out
}

func wantError(tb testing.TB, what string, rec *httptest.ResponseRecorder, status int, code string) {
	tb.Helper()
	var body struct{ Error, Message string }
	if rec.Code != status || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error != code {
		tb.Errorf("%s: %d %s, want %d with error %q", what, rec.Code, rec.Body, status, code)
	}
}

const (
	skanPath = "/.well-known/skadnetwork/report-attribution/"
	aakPath  = "/.well-known/appattribution/report-attribution/"
	fwdPath  = "/v1/skadnetwork/postbacks"
)

// TestSKANCopies posts developer copies, each outcome once.
func TestSKANCopies(t *testing.T) {
	t.Parallel()
	e := newSKANEnv(t, collector.Config{MaxPostbackBytes: 4096})

	// Verified, and posted again (Apple's retry): counted once.
	won := mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-won", 0, true)))
	rec, first := e.post(t, skanPath, "", won)
	if rec.Code != http.StatusOK || first.Status != tapline.SKANVerified || first.ID == 0 {
		t.Fatalf("first copy: %d %s", rec.Code, rec.Body)
	}
	rec, again := e.post(t, strings.TrimSuffix(skanPath, "/"), "", won)
	if rec.Code != http.StatusOK || again != first {
		t.Errorf("the same copy again: %d %+v, want %+v", rec.Code, again, first)
	}
	// Its second window, coarse.
	if rec, res := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-won", 1, true)))); res.Status != tapline.SKANVerified {
		t.Errorf("window 1: %d %s", rec.Code, rec.Body)
	}
	// Not winning: kept, never an install.
	if rec, res := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-lost", 0, false)))); res.Status != tapline.SKANVerified {
		t.Errorf("not winning: %d %s", rec.Code, rec.Body)
	}
	// Tampered after signing: a signed field changed. Kept, rejected.
	m := e.key.sign(t, postback4(demoAppStoreID, "tx-forged", 0, true))
	m["source-identifier"] = "9999"
	rec, forged := e.post(t, skanPath, "", mustJSON(t, m))
	if rec.Code != http.StatusOK || forged.Status != tapline.SKANRejected || !strings.Contains(forged.Reason, "signature") {
		t.Errorf("tampered: %d %s, want 200 rejected with the reason", rec.Code, rec.Body)
	}
	// The unsigned conversion value is Apple's to vouch for, not ours:
	// changed, the postback still verifies.
	m = e.key.sign(t, postback4(demoAppStoreID, "tx-value", 0, true))
	m["conversion-value"] = 63
	if rec, res := e.post(t, skanPath, "", mustJSON(t, m)); res.Status != tapline.SKANVerified {
		t.Errorf("changed conversion value: %d %s", rec.Code, rec.Body)
	}
	// The AdAttributionKit endpoint takes SKAdNetwork postbacks too.
	if rec, res := e.post(t, aakPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-aak-path", 0, true)))); res.Status != tapline.SKANVerified {
		t.Errorf("on the appattribution path: %d %s", rec.Code, rec.Body)
	}

	// Unknown app: 404, kept nowhere (twice: the second from the cache).
	for range 2 {
		rec, _ = e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(999, "tx-unknown", 0, true))))
		wantError(t, "unknown app", rec, http.StatusNotFound, tapline.ENOTFOUND)
	}
	// Not JSON, not a postback, too big: 400, 400, 413.
	rec, _ = e.post(t, skanPath, "", `{"version": "4.0",`)
	wantError(t, "bad JSON", rec, http.StatusBadRequest, tapline.EINVALID)
	rec, _ = e.post(t, skanPath, "", `{"version": "4.0"}`)
	wantError(t, "no postback", rec, http.StatusBadRequest, tapline.EINVALID)
	rec, _ = e.post(t, skanPath, "", `{"x":"`+strings.Repeat("a", 5000)+`"}`)
	wantError(t, "too big", rec, http.StatusRequestEntityTooLarge, tapline.ETOOLARGE)

	got := e.counts(t, e.app.ID)
	want := []string{
		"//w0//rejected=1",
		"example123.skadnetwork/5239/w0/20/not_won=1",
		"example123.skadnetwork/5239/w0/20/won=2",
		"example123.skadnetwork/5239/w0/63/won=1",
		"example123.skadnetwork/5239/w1/high/won=1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("counted:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	list, err := e.store.SKANPostbacks(context.Background(), tapline.SKANQuery{AppID: e.app.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 {
		t.Errorf("stored %d postbacks, want 6 (the retry is the first's row)", len(list))
	}
	for _, p := range list {
		if p.Via != tapline.SKANViaDeveloper || p.AppStoreID != demoAppStoreID || len(p.Raw) == 0 || p.ID == first.ID && p.Received != 2 {
			t.Errorf("stored %+v", p)
		}
	}
	if n := metricValue(t, e.c.Registry, "tapline_collector_skan_postbacks_total", map[string]string{"via": "developer", "outcome": "verified"}); n != 6 {
		t.Errorf("metric: %v verified, want 6", n)
	}
	if n := metricValue(t, e.c.Registry, "tapline_collector_skan_postbacks_total", map[string]string{"outcome": "not_found"}); n != 2 {
		t.Errorf("metric: %v not found, want 2", n)
	}
}

// TestSKANForwards posts what ad networks forward, with the app's SDK key.
func TestSKANForwards(t *testing.T) {
	t.Parallel()
	e := newSKANEnv(t, collector.Config{})
	body := mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-fwd", 0, true)))
	rec, _ := e.post(t, fwdPath, "", body)
	wantError(t, "no key", rec, http.StatusUnauthorized, tapline.EUNAUTHORIZED)
	rec, _ = e.post(t, fwdPath, "not-the-key-0123456789", body)
	wantError(t, "wrong key", rec, http.StatusUnauthorized, tapline.EUNAUTHORIZED)
	rec, _ = e.post(t, fwdPath, demoKey, mustJSON(t, e.key.sign(t, postback4(555, "tx-other-app", 0, true))))
	wantError(t, "another app's postback", rec, http.StatusForbidden, tapline.EFORBIDDEN)
	rec, _ = e.post(t, fwdPath, demoKey, "[1,2]")
	wantError(t, "bad JSON", rec, http.StatusBadRequest, tapline.EINVALID)

	rec, fwd := e.post(t, fwdPath, demoKey, body)
	if rec.Code != http.StatusOK || fwd.Status != tapline.SKANVerified {
		t.Fatalf("forward: %d %s", rec.Code, rec.Body)
	}
	// The developer's copy of the same postback: a duplicate.
	var m map[string]any
	_ = json.Unmarshal([]byte(body), &m)
	m["network-note"] = "added by the network"
	rec, dup := e.post(t, skanPath, "", mustJSON(t, m))
	if rec.Code != http.StatusOK || dup.Status != tapline.SKANDuplicate || !strings.Contains(dup.Reason, strconv.FormatInt(fwd.ID, 10)) {
		t.Errorf("the copy after the forward: %d %s", rec.Code, rec.Body)
	}
	if got := e.counts(t, e.app.ID); !slices.Equal(got, []string{"example123.skadnetwork/5239/w0/20/duplicate=1", "example123.skadnetwork/5239/w0/20/won=1"}) {
		t.Errorf("counted %q", got)
	}

	// An app without an App Store id takes no forwards.
	e.app.AppStoreID = 0
	if err := e.accounts.UpdateApp(context.Background(), e.app); err != nil {
		t.Fatal(err)
	}
	other := newSKANEnv(t, collector.Config{}) // a fresh cache
	other.app.AppStoreID = 0
	if err := other.accounts.UpdateApp(context.Background(), other.app); err != nil {
		t.Fatal(err)
	}
	rec, _ = other.post(t, fwdPath, demoKey, body)
	wantError(t, "no App Store id", rec, http.StatusForbidden, tapline.EFORBIDDEN)
}

// TestSKANDatabaseDown: with PostgreSQL gone, postbacks are answered 503
// with Retry-After, so Apple and the networks send them again.
func TestSKANDatabaseDown(t *testing.T) {
	t.Parallel()
	e := newSKANEnv(t, collector.Config{StoreTimeout: 2 * time.Second, LookupTimeout: time.Second})
	if rec, res := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-before", 0, true)))); res.Status != tapline.SKANVerified {
		t.Fatalf("before: %d %s", rec.Code, rec.Body)
	}
	e.db.Close()
	for name, post := range map[string]func() *httptest.ResponseRecorder{
		"cached app": func() *httptest.ResponseRecorder {
			rec, _ := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-after", 0, true))))
			return rec
		},
		"app to look up": func() *httptest.ResponseRecorder {
			rec, _ := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(4242, "tx-after", 0, true))))
			return rec
		},
		"forward": func() *httptest.ResponseRecorder {
			rec, _ := e.post(t, fwdPath, demoKey, mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-fwd-after", 0, true))))
			return rec
		},
	} {
		rec := post()
		wantError(t, name, rec, http.StatusServiceUnavailable, tapline.EUNAVAILABLE)
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", name)
		}
	}
}

// TestSKANWithoutStore: a collector given no SKANStore answers 503.
func TestSKANWithoutStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, collector.Config{})
	rec := e.do(httptest.NewRequest(http.MethodPost, skanPath, strings.NewReader(`{}`)), "17.0.0.1:443")
	wantError(t, "no store", rec, http.StatusServiceUnavailable, tapline.EUNAVAILABLE)
}

// TestSKANAppleSamples posts Apple's published sample postbacks to apps
// with their App Store ids, verified with Apple's real keys (and its
// development keys, which sign the AdAttributionKit sample).
func TestSKANAppleSamples(t *testing.T) {
	t.Parallel()
	e := newSKANEnv(t, collector.Config{})
	v := skadnetwork.DefaultVerifier()
	maps.Copy(v.JWSKeys, skadnetwork.DevelopmentKeys())
	e.c.SKANVerifier = v
	ctx := context.Background()
	skanApp := &tapline.App{AccountID: e.account.ID, Name: "Apple's sample app", AppStoreID: 525463029}
	aakApp := &tapline.App{AccountID: e.account.ID, Name: "Apple's AdAttributionKit sample app", AppStoreID: 10738027756}
	for _, a := range []*tapline.App{skanApp, aakApp} {
		if err := e.accounts.CreateApp(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("../skadnetwork/testdata/apple/*.json")
	if err != nil || len(files) != 6 {
		t.Fatalf("Apple's samples: %v, %v", files, err)
	}
	want := map[string]tapline.SKANStatus{
		"aak-developer-settings.json": tapline.SKANVerified,
		"skan-2.2.json":               tapline.SKANVerified,
		// Apple's 3.0 winning sample has the 2.2 sample's transaction id.
		"skan-3.0-winning.json":    tapline.SKANDuplicate,
		"skan-3.0-nonwinning.json": tapline.SKANVerified,
		"skan-4.0-web-coarse.json": tapline.SKANVerified,
		"skan-4.0-web-fine.json":   tapline.SKANVerified,
	}
	slices.Sort(files) // the 2.2 sample before the 3.0 ones
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		path := skanPath
		if strings.HasPrefix(filepath.Base(f), "aak") {
			path = aakPath
		}
		rec, res := e.post(t, path, "", string(body))
		if rec.Code != http.StatusOK || res.Status != want[filepath.Base(f)] {
			t.Errorf("%s: %d %s, want 200 %s", filepath.Base(f), rec.Code, rec.Body, want[filepath.Base(f)])
		}
	}
	if got := e.counts(t, aakApp.ID); !slices.Equal(got, []string{"development.adattributionkit/1234/w0/24/reengagement=1"}) {
		t.Errorf("AdAttributionKit sample counted %q", got)
	}
	got := e.counts(t, skanApp.ID)
	wantCounts := []string{
		"com.example/39/w0/high/won=1",
		"com.example/42/w0/20/won=1",
		"com.example/5239/w0/63/won=1",
		"example123.skadnetwork/42/w0//not_won=1",
		"example123.skadnetwork/42/w0/20/duplicate=1",
	}
	if !slices.Equal(got, wantCounts) {
		t.Errorf("Apple's SKAdNetwork samples counted:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantCounts, "\n"))
	}
	// Production alone: the development key's postback is rejected.
	e.c.SKANVerifier = skadnetwork.DefaultVerifier()
	body, _ := os.ReadFile("../skadnetwork/testdata/apple/aak-developer-settings.json")
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	m["country-code"] = "DE" // another body, so not the stored one resent
	if rec, res := e.post(t, aakPath, "", mustJSON(t, m)); res.Status != tapline.SKANRejected || !strings.Contains(res.Reason, "not trusted") {
		t.Errorf("a development postback with production keys only: %d %s", rec.Code, rec.Body)
	}
}

// postFrom sends body to path from peer, with X-Forwarded-For xff when
// set, and decodes a 200's answer.
func (e *skanEnv) postFrom(tb testing.TB, path, key, body, peer, xff string) (*httptest.ResponseRecorder, collector.SKANResponse) {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	rec := e.do(req, peer)
	var res collector.SKANResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			tb.Fatalf("answer %q: %v", rec.Body, err)
		}
	}
	return rec, res
}

// forged returns a distinct postback of the demo app whose signature
// does not check out.
func (e *skanEnv) forged(tb testing.TB, n int) string {
	tb.Helper()
	m := e.key.sign(tb, postback4(demoAppStoreID, fmt.Sprintf("tx-forged-%d", n), 0, true))
	m["source-identifier"] = "6666" // changed after signing
	return mustJSON(tb, m)
}

// storedRejected is how many rejected postbacks the demo app keeps.
func (e *skanEnv) storedRejected(tb testing.TB) int {
	tb.Helper()
	list, err := e.store.SKANPostbacks(context.Background(), tapline.SKANQuery{AppID: e.app.ID, Status: tapline.SKANRejected, Limit: tapline.MaxSKANPage})
	if err != nil {
		tb.Fatal(err)
	}
	return len(list)
}

// TestSKANRateLimit: an address that has spent its burst on postbacks
// that are not Apple's, or on refused ones, gets 429 with Retry-After for
// the next such postback, which is not stored; a postback Apple signed
// from the same address is still taken. The address is the client's
// behind a trusted proxy, and the peer's when the X-Forwarded-For comes
// from anyone else.
func TestSKANRateLimit(t *testing.T) {
	t.Parallel()
	e := newSKANEnv(t, collector.Config{SKANRate: 0.5, SKANBurst: 3})
	now := time.Now()
	e.c.Now = func() time.Time { return now }
	const flooder = "198.51.100.7:40000"

	// The burst: two forgeries (stored, rejected) and a body that is no
	// postback (400).
	for i := range 2 {
		if rec, res := e.postFrom(t, skanPath, "", e.forged(t, i), flooder, ""); res.Status != tapline.SKANRejected || res.ID == 0 {
			t.Fatalf("forgery %d within the burst: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec, _ := e.postFrom(t, skanPath, "", `{"version": "4.0"}`, flooder, "")
	wantError(t, "no postback within the burst", rec, http.StatusBadRequest, tapline.EINVALID)

	// Past it: 429 with the wait for the next token (2 s), nothing stored;
	// so is a body that is no postback.
	rec, _ = e.postFrom(t, skanPath, "", e.forged(t, 2), flooder, "")
	wantError(t, "a forgery past the burst", rec, http.StatusTooManyRequests, tapline.ERATELIMITED)
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2", got)
	}
	rec, _ = e.postFrom(t, aakPath, "", `not json`, flooder, "")
	wantError(t, "no postback past the burst", rec, http.StatusTooManyRequests, tapline.ERATELIMITED)
	rec, _ = e.postFrom(t, fwdPath, demoKey, e.forged(t, 3), flooder, "")
	wantError(t, "a forged forward past the burst", rec, http.StatusTooManyRequests, tapline.ERATELIMITED)
	if n := e.storedRejected(t); n != 2 {
		t.Errorf("%d rejected postbacks stored, want the 2 of the burst", n)
	}

	// Apple's postbacks from the same address are taken, copies and
	// forwards alike.
	if rec, res := e.postFrom(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-real", 0, true))), flooder, ""); res.Status != tapline.SKANVerified {
		t.Errorf("Apple's copy from the flooding address: %d %s", rec.Code, rec.Body)
	}
	if rec, res := e.postFrom(t, fwdPath, demoKey, mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-real-fwd", 0, true))), flooder, ""); res.Status != tapline.SKANVerified {
		t.Errorf("a network's forward from the flooding address: %d %s", rec.Code, rec.Body)
	}
	// One signed by Apple but refused still gets its own answer.
	rec, _ = e.postFrom(t, fwdPath, "not-the-key-0123456789", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-real-fwd", 0, true))), flooder, "")
	wantError(t, "Apple's postback with a wrong key", rec, http.StatusUnauthorized, tapline.EUNAUTHORIZED)

	// Other addresses have tokens of their own; behind the trusted proxy
	// (10.0.0.0/8 in these tests) the client is the forwarded address.
	if rec, res := e.postFrom(t, skanPath, "", e.forged(t, 4), "192.0.2.9:1234", ""); res.Status != tapline.SKANRejected {
		t.Errorf("another address: %d %s", rec.Code, rec.Body)
	}
	rec, _ = e.postFrom(t, skanPath, "", e.forged(t, 5), "10.0.0.2:1234", "198.51.100.7")
	wantError(t, "the flooder behind the trusted proxy", rec, http.StatusTooManyRequests, tapline.ERATELIMITED)
	if rec, res := e.postFrom(t, skanPath, "", e.forged(t, 6), "10.0.0.2:1234", "192.0.2.77"); res.Status != tapline.SKANRejected {
		t.Errorf("another client behind the trusted proxy: %d %s", rec.Code, rec.Body)
	}
	// The flooder naming another client itself is still the flooder.
	rec, _ = e.postFrom(t, skanPath, "", e.forged(t, 7), flooder, "192.0.2.78")
	wantError(t, "the flooder forging X-Forwarded-For", rec, http.StatusTooManyRequests, tapline.ERATELIMITED)

	// A token comes back every 2 s.
	now = now.Add(2 * time.Second)
	if rec, res := e.postFrom(t, skanPath, "", e.forged(t, 8), flooder, ""); res.Status != tapline.SKANRejected {
		t.Errorf("after Retry-After: %d %s", rec.Code, rec.Body)
	}
	rec, _ = e.postFrom(t, skanPath, "", e.forged(t, 9), flooder, "")
	wantError(t, "the next one", rec, http.StatusTooManyRequests, tapline.ERATELIMITED)

	if n := metricValue(t, e.c.Registry, "tapline_collector_skan_postbacks_total", map[string]string{"outcome": tapline.ERATELIMITED}); n != 6 {
		t.Errorf("metric: %v rate limited, want 6", n)
	}
	if got := e.counts(t, e.app.ID); !slices.Equal(got, []string{"//w0//rejected=5", "example123.skadnetwork/5239/w0/20/won=2"}) {
		t.Errorf("counted %q", got)
	}
}

// TestSKANRejectedBound floods the demo app with distinct forgeries from
// many addresses at once: the app keeps its bound of them, the others are
// answered 200 without an id and counted in
// tapline_collector_skan_rejected_unstored_total, and Apple's postbacks
// are still stored and counted. Once the bound is met, the day's further
// forgeries do not reach the database.
func TestSKANRejectedBound(t *testing.T) {
	t.Parallel()
	e := newSKANEnv(t, collector.Config{})
	e.store.MaxRejected = 4

	const flood = 40
	var wg sync.WaitGroup
	answers := make(chan collector.SKANResponse, flood)
	for i := range flood {
		wg.Go(func() {
			rec, res := e.postFrom(t, skanPath, "", e.forged(t, i), fmt.Sprintf("198.51.100.%d:443", i+1), "")
			if rec.Code != http.StatusOK || res.Status != tapline.SKANRejected {
				t.Errorf("forgery %d: %d %s, want 200 rejected", i, rec.Code, rec.Body)
			}
			answers <- res
		})
	}
	wg.Wait()
	close(answers)
	var kept, unstored int
	for res := range answers {
		switch {
		case res.ID != 0:
			kept++
		case strings.Contains(res.Reason, "signature") && strings.Contains(res.Reason, "not stored"):
			unstored++
		default:
			t.Errorf("answer %+v", res)
		}
	}
	if kept != 4 || unstored != flood-4 {
		t.Errorf("%d kept, %d not stored; want 4 and %d", kept, unstored, flood-4)
	}
	if n := e.storedRejected(t); n != 4 {
		t.Errorf("%d rejected postbacks stored, want 4", n)
	}
	if n := metricValue(t, e.c.Registry, "tapline_collector_skan_rejected_unstored_total", map[string]string{"via": "developer"}); n != flood-4 {
		t.Errorf("metric: %v rejected and not stored, want %d", n, flood-4)
	}

	// Apple's postbacks still count, copies and forwards.
	if rec, res := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-after-flood", 0, true)))); res.Status != tapline.SKANVerified || res.ID == 0 {
		t.Errorf("Apple's copy after the flood: %d %s", rec.Code, rec.Body)
	}
	if rec, res := e.post(t, fwdPath, demoKey, mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-after-flood", 1, true)))); res.Status != tapline.SKANVerified {
		t.Errorf("a forward after the flood: %d %s", rec.Code, rec.Body)
	}
	if got := e.counts(t, e.app.ID); !slices.Equal(got, []string{"//w0//rejected=4", "example123.skadnetwork/5239/w0/20/won=1", "example123.skadnetwork/5239/w1/high/won=1"}) {
		t.Errorf("counted %q", got)
	}

	// The bound met, forgeries are answered without the database: with it
	// gone, one is still answered 200, while Apple's postback gets 503 to
	// be sent again.
	e.db.Close()
	if rec, res := e.postFrom(t, skanPath, "", e.forged(t, flood+1), "192.0.2.200:443", ""); rec.Code != http.StatusOK || res.ID != 0 || res.Status != tapline.SKANRejected {
		t.Errorf("a forgery past the bound, the database down: %d %s", rec.Code, rec.Body)
	}
	rec, _ := e.post(t, skanPath, "", mustJSON(t, e.key.sign(t, postback4(demoAppStoreID, "tx-db-down", 0, true))))
	wantError(t, "Apple's postback, the database down", rec, http.StatusServiceUnavailable, tapline.EUNAVAILABLE)
}
