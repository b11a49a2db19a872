package fingerprint_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"tapline"
	"tapline/fingerprint"
)

// InAppCase is one tap in an in-app browser and the device the Tapstream
// SDK reports for it (testdata/inapp.yaml).
type InAppCase struct {
	Name   string            `yaml:"name"`
	App    string            `yaml:"app"`
	UA     string            `yaml:"ua"`
	Source string            `yaml:"source"`
	Hints  map[string]string `yaml:"hints"`
	Hit    struct {
		Platform  tapline.Platform `yaml:"platform"`
		OSVersion string           `yaml:"os_version"`
		Model     string           `yaml:"model"`
	} `yaml:"hit"`
	// SDK holds the form fields the SDK posts: platform, vendor, model, os.
	SDK        map[string]string `yaml:"sdk"`
	SDKNote    string            `yaml:"sdk_note"`
	OtherModel string            `yaml:"other_model"`
}

// loadInApp reads testdata/inapp.yaml.
func loadInApp(tb testing.TB) []InAppCase {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "inapp.yaml"))
	if err != nil {
		tb.Fatalf("read fixtures: %v", err)
	}
	var doc struct {
		Cases []InAppCase `yaml:"cases"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatalf("parse fixtures: %v", err)
	}
	if len(doc.Cases) == 0 {
		tb.Fatal("no fixtures in testdata/inapp.yaml")
	}
	return doc.Cases
}

// sdkDevice is the device of an SDK's form fields, read as
// collector/tapstream.go reads them (its TestTapstreamInAppFixtures checks
// that the collector gives the same): the os field's last word is the
// version.
func sdkDevice(f map[string]string) tapline.Device {
	d := tapline.Device{Platform: tapline.Platform(strings.ToLower(f["platform"])), Model: f["model"], Vendor: f["vendor"]}
	if w := strings.Fields(f["os"]); len(w) > 0 {
		d.OSVersion = w[len(w)-1]
	}
	return d
}

// TestInAppFixtures checks, for taps in the in-app browsers of Facebook,
// Instagram, TikTok, Snapchat, LINE, WeChat, Twitter/X, Pinterest,
// LinkedIn, the Google app and Gmail on iOS and Android, that the hit
// reveals what the fixture says; that the install of the same device is
// Compatible with no model or OS version signal in conflict (and each
// revealed attribute agreeing); and that near misses do not match: another
// model, another OS major version, an older minor version, the other
// platform.
func TestInAppFixtures(t *testing.T) {
	t.Parallel()
	f := shared()
	cases := loadInApp(t)
	apps := map[string]map[tapline.Platform]bool{}
	for _, c := range cases {
		if c.Source == "" || c.SDKNote == "" {
			t.Errorf("%s: no source or sdk_note", c.Name)
		}
		if apps[c.App] == nil {
			apps[c.App] = map[tapline.Platform]bool{}
		}
		apps[c.App][c.Hit.Platform] = true
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			const ip = "198.51.100.23"
			h := &tapline.Hit{IP: ip, UserAgent: c.UA, ClientHints: c.Hints}
			f.Hit(h)
			if h.Platform != c.Hit.Platform || h.OSVersion != c.Hit.OSVersion || h.Model != c.Hit.Model {
				t.Errorf("hit: platform %q os %q model %q, want %q %q %q",
					h.Platform, h.OSVersion, h.Model, c.Hit.Platform, c.Hit.OSVersion, c.Hit.Model)
			}

			install := func(d tapline.Device) *tapline.Event {
				e := &tapline.Event{IP: ip, Device: d}
				f.Event(e)
				return e
			}
			same := sdkDevice(c.SDK)
			e := install(same)
			if e.Fingerprint != h.Fingerprint {
				t.Errorf("fingerprints differ: hit %q, install %q", h.Fingerprint, e.Fingerprint)
			}
			if !fingerprint.Compatible(h, e) {
				t.Errorf("not Compatible with the same device %+v", same)
			}
			for _, s := range fingerprint.Signals(h, e) {
				want := tapline.VerdictAgree
				switch s.Name {
				case "model":
					if h.Model == "" {
						want = tapline.VerdictUnknown
					}
				case "os_version":
					if h.OSVersion == "" {
						want = tapline.VerdictUnknown
					}
				default:
					continue
				}
				if s.Verdict != want {
					t.Errorf("signal %+v, want %s", s, want)
				}
			}

			// Near misses.
			miss := func(what string, d tapline.Device) {
				t.Helper()
				e := install(d)
				if fingerprint.Compatible(h, e) {
					t.Errorf("%s: Compatible with %+v (hit os %q model %q)", what, d, h.OSVersion, h.Model)
				}
				conflict := false
				for _, s := range fingerprint.Signals(h, e) {
					conflict = conflict || s.Verdict == tapline.VerdictConflict
				}
				if !conflict {
					t.Errorf("%s: no signal in conflict", what)
				}
			}
			if c.OtherModel != "" {
				d := same
				d.Model = c.OtherModel
				miss("other model", d)
			} else if h.Model != "" {
				t.Errorf("the hit reveals model %q but the fixture has no other_model", h.Model)
			}
			if v := strings.Split(h.OSVersion, "."); h.OSVersion != "" {
				major, _ := strconv.Atoi(v[0])
				d := same
				d.OSVersion = strconv.Itoa(major+1) + ".0"
				miss("next major version", d)
				d.OSVersion = strconv.Itoa(major - 1)
				miss("previous major version", d)
				if len(v) > 1 && v[1] != "0" {
					minor, _ := strconv.Atoi(v[1])
					d.OSVersion = v[0] + "." + strconv.Itoa(minor-1)
					miss("older minor version", d)
				}
			}
			other := tapline.Device{Platform: tapline.PlatformIOS, Vendor: "Apple", Model: "iPhone15,2", OSVersion: h.OSVersion}
			if h.Platform == tapline.PlatformIOS {
				other = tapline.Device{Platform: tapline.PlatformAndroid, Vendor: "Google", Model: "Pixel 8", OSVersion: h.OSVersion}
			}
			if o := install(other); o.Fingerprint == h.Fingerprint || fingerprint.Compatible(h, o) {
				t.Errorf("other platform: install %+v has the hit's fingerprint %q or is Compatible", other, o.Fingerprint)
			}
		})
	}
	for _, app := range []string{"facebook", "instagram", "tiktok", "snapchat", "line", "wechat", "twitter", "pinterest", "linkedin", "google"} {
		if !apps[app][tapline.PlatformIOS] || !apps[app][tapline.PlatformAndroid] {
			t.Errorf("no fixture for %s on both iOS and Android", app)
		}
	}
}

// inAppRE finds the tokens of the in-app browsers (and the apps' own
// requests) of Facebook and Messenger, Instagram, TikTok, Snapchat, LINE,
// WeChat, Twitter, Pinterest, LinkedIn, the Google app and Gmail.
var inAppRE = regexp.MustCompile(`FBAN/|FB_IAB/|FBAV/|MetaIAB|Instagram|musical_ly|trill_|BytedanceWebview|Snapchat|\bLine/|MicroMessenger|Twitter for|TwitterAndroid|\[Pinterest/|Pinterest for|LinkedInApp|GSA/|Gmail`)

// TestUAPCoreInAppModels reports the share of uap-core's in-app browser
// User-Agents (test_device.yaml and test_os.yaml) from which the hit takes
// a model beyond the Apple device class, and checks that every one whose
// app or WebView writes the model (an Apple identifier, FBDV, Instagram's
// or Snapchat's device fields, a WebView's "<model> Build/") yields one.
func TestUAPCoreInAppModels(t *testing.T) {
	t.Parallel()
	f := shared()
	seen := map[string]bool{}
	total, withModel := 0, 0
	for _, file := range []string{"test_device.yaml", "test_os.yaml"} {
		for _, c := range loadUAPCore(t, file) {
			if seen[c.UserAgent] || !inAppRE.MatchString(c.UserAgent) {
				continue
			}
			seen[c.UserAgent] = true
			h := &tapline.Hit{IP: "192.0.2.1", UserAgent: c.UserAgent}
			f.Hit(h)
			if h.Platform != tapline.PlatformIOS && h.Platform != tapline.PlatformAndroid {
				t.Logf("not a mobile platform (%s): %q", h.Platform, c.UserAgent)
				continue
			}
			total++
			specific := h.Model != "" && h.Model != "iPhone" && h.Model != "iPad" && h.Model != "iPod"
			if specific {
				withModel++
			}
			writesModel := iosIdentifierRE.MatchString(c.Model) && strings.Contains(c.UserAgent, c.Model) ||
				strings.Contains(c.UserAgent, "FBDV/") || strings.Contains(c.UserAgent, " Android (") ||
				strings.Contains(c.UserAgent, " Build/") && !strings.Contains(c.UserAgent, "; Build/")
			if writesModel && !specific {
				t.Errorf("Hit(%q): no model, though the User-Agent writes one", c.UserAgent)
			}
		}
	}
	t.Logf("uap-core in-app browser User-Agents on iOS and Android: %d, with a model: %d (%.0f%%)", total, withModel, 100*float64(withModel)/float64(max(total, 1)))
	if total < 50 {
		t.Errorf("only %d in-app User-Agents found in uap-core", total)
	}
}

// BenchmarkHitInApp parses the in-app browser fixtures' User-Agents
// without the cache, as the collector does once per distinct User-Agent.
func BenchmarkHitInApp(b *testing.B) {
	cases := loadInApp(b)
	f := fingerprint.New(fingerprint.WithCacheSize(0))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := cases[i%len(cases)]
		h := tapline.Hit{IP: "203.0.113.7", UserAgent: c.UA, ClientHints: c.Hints}
		f.Hit(&h)
		i++
	}
}
