package fingerprint_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"tapline"
	"tapline/fingerprint"
)

// uapCoreDir holds the uap-core test cases; the repository is cloned as
// main/ with shared/ beside it.
var uapCoreDir = filepath.Join("..", "..", "shared", "data", "uap-core")

// uapCase is one test case of test_os.yaml or test_device.yaml.
type uapCase struct {
	UserAgent string `yaml:"user_agent_string"`
	Family    string `yaml:"family"`
	Brand     string `yaml:"brand"`
	Model     string `yaml:"model"`
}

// loadUAPCore reads one uap-core test file, skipping the test when the
// shared data directory is absent.
func loadUAPCore(t *testing.T, name string) []uapCase {
	t.Helper()
	if _, err := os.Stat(uapCoreDir); os.IsNotExist(err) {
		t.Skipf("uap-core test data not found at %s (expected the repository cloned as main/ with shared/ beside it)", uapCoreDir)
	}
	b, err := os.ReadFile(filepath.Join(uapCoreDir, name))
	if err != nil {
		t.Fatalf("read uap-core %s: %v", name, err)
	}
	var doc struct {
		Cases []uapCase `yaml:"test_cases"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse uap-core %s: %v", name, err)
	}
	if len(doc.Cases) == 0 {
		t.Fatalf("uap-core %s has no test cases", name)
	}
	return doc.Cases
}

// desktopOS are operating system families whose taps go to the web.
var desktopOS = map[string]bool{
	"Windows": true, "Mac OS X": true, "Mac OS": true, "Linux": true, "Ubuntu": true,
	"Debian": true, "Fedora": true, "Gentoo": true, "Red Hat": true, "Mandriva": true,
	"Chrome OS": true, "FreeBSD": true, "OpenBSD": true, "NetBSD": true, "BSD": true, "Solaris": true,
}

func TestUAPCoreOSPlatform(t *testing.T) {
	t.Parallel()
	f := shared()
	var counts = map[tapline.Platform]int{}
	for _, c := range loadUAPCore(t, "test_os.yaml") {
		var want tapline.Platform
		switch {
		case c.Family == "iOS":
			want = tapline.PlatformIOS
		case c.Family == "Android":
			want = tapline.PlatformAndroid
		case desktopOS[c.Family]:
			want = tapline.PlatformWeb
		}
		got := f.Platform(c.UserAgent, nil)
		if want != "" && got != want {
			t.Errorf("os family %q: Platform(%q) = %q, want %q", c.Family, c.UserAgent, got, want)
		}
		h := &tapline.Hit{IP: "192.0.2.1", UserAgent: c.UserAgent}
		f.Hit(h)
		if h.Platform != got || h.Fingerprint != "192.0.2.1|"+string(got) {
			t.Errorf("Hit(%q): platform %q fingerprint %q, want %q and %q", c.UserAgent, h.Platform, h.Fingerprint, got, "192.0.2.1|"+string(got))
		}
		if want != "" {
			counts[want]++
		}
	}
	// Guard against a loader that silently finds nothing to check.
	for _, p := range []tapline.Platform{tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb} {
		if counts[p] < 20 {
			t.Errorf("only %d checked cases for %s", counts[p], p)
		}
	}
}

// iosIdentifierRE matches the iPhone, iPad and iPod hardware identifiers
// in-app browsers reveal.
var iosIdentifierRE = regexp.MustCompile(`^(iPhone|iPad|iPod)\d+,\d+$`)

func TestUAPCoreDevices(t *testing.T) {
	t.Parallel()
	f := shared()
	identified, classes, androidModels, androidAgree := 0, 0, 0, 0
	for i, c := range loadUAPCore(t, "test_device.yaml") {
		if testing.Short() && i%10 != 0 {
			continue
		}
		h := &tapline.Hit{IP: "2001:db8::1", UserAgent: c.UserAgent}
		f.Hit(h) // must not panic
		switch h.Platform {
		case tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb:
		default:
			t.Fatalf("Hit(%q): platform %q", c.UserAgent, h.Platform)
		}
		if want := "2001:db8::/64|" + string(h.Platform); h.Fingerprint != want {
			t.Errorf("Hit(%q): fingerprint %q, want %q", c.UserAgent, h.Fingerprint, want)
		}
		// Where an iOS User-Agent reveals the hardware identifier, the hit
		// carries it, so that Compatible can compare it with the SDK's.
		if h.Platform == tapline.PlatformIOS && c.Brand == "Apple" && iosIdentifierRE.MatchString(c.Model) {
			identified++
			if h.Model != c.Model {
				t.Errorf("Hit(%q): model %q, want %q", c.UserAgent, h.Model, c.Model)
			}
			e := &tapline.Event{IP: "2001:db8::2", Device: tapline.Device{Model: c.Model}}
			f.Event(e)
			if e.Fingerprint != h.Fingerprint {
				t.Errorf("Hit(%q): fingerprint %q, the SDK's for model %q is %q", c.UserAgent, h.Fingerprint, c.Model, e.Fingerprint)
			}
		}
		// Safari reveals at least the class.
		if h.Platform == tapline.PlatformIOS && c.Brand == "Apple" && (c.Family == "iPhone" || c.Family == "iPad" || c.Family == "iPod") {
			classes++
			if !strings.HasPrefix(h.Model, c.Family) {
				t.Errorf("Hit(%q): model %q, want class %q", c.UserAgent, h.Model, c.Family)
			}
		}
		// Where an Android User-Agent names a real device (not Chrome's
		// reduced "K", not a generic one), the hit carries a model that
		// agrees with it. The hit keeps Build.MODEL as the WebView or app
		// writes it ("LG-TP260", "KFTT"), where uap-core names a catalogue
		// model ("TP260", "Kindle Fire HD 7\""), so they are compared as
		// Compatible compares models, not for equality.
		if h.Platform == tapline.PlatformAndroid && c.Model != "" && c.Brand != "" && !strings.HasPrefix(c.Brand, "Generic") {
			androidModels++
			sdk := &tapline.Event{Device: tapline.Device{Platform: tapline.PlatformAndroid, Model: c.Model}}
			if h.Model != "" && fingerprint.Compatible(&tapline.Hit{Platform: h.Platform, Model: h.Model}, sdk) {
				androidAgree++
			} else {
				t.Logf("Hit(%q): model %q, uap-core says %q", c.UserAgent, h.Model, c.Model)
			}
		}
		switch h.Model {
		case "K", "Smartphone", "Generic Smartphone":
			t.Errorf("Hit(%q): placeholder model %q", c.UserAgent, h.Model)
		}
	}
	// uap-go's built-in definitions may be a little older or newer than
	// the test file, so a few disagreements are tolerated.
	if testing.Short() {
		return
	}
	// The rest are uap-core's renames: Kindle codenames, carrier names
	// read from Instagram's brand field, truncated Xianghe board names.
	if androidModels < 100 || androidAgree*100 < androidModels*97 {
		t.Errorf("Android models: %d of %d agree with uap-core, want 97%%", androidAgree, androidModels)
	}
	if identified < 20 || classes < 40 {
		t.Errorf("only %d iOS cases with a hardware identifier and %d with a class checked", identified, classes)
	}
}
