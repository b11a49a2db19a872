package fingerprint_test

import (
	"fmt"
	"sync"
	"testing"

	"tapline"
	"tapline/fingerprint"
)

// shared is one Fingerprinter for the tests that do not test the cache;
// New compiles several hundred regular expressions.
var shared = sync.OnceValue(func() *fingerprint.Fingerprinter { return fingerprint.New() })

// User-Agents of current devices and browsers.
const (
	uaSafariIOS17 = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaSafariIOS18 = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 Mobile/15E148 Safari/604.1"
	// Safari 26 freezes the OS token at 18_6, later at 18_7.
	uaSafariIOS26  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 Safari/604.1"
	uaSafariIOS262 = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.2 Mobile/15E148 Safari/604.1"
	uaSafariIPad17 = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	// iPadOS Safari's default "desktop" User-Agent, the same as a Mac's.
	uaSafariMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
	uaChromeIOS17  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/123.0.6312.52 Mobile/15E148 Safari/604.1"
	uaChromeIOS26  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.156 Mobile/15E148 Safari/604.1"
	uaFacebookIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/455.0.0.35.109;FBBV/571373512;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/573155780]"
	uaFacebookIOS2 = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/520.0.0.38.101;FBBV/745336410;FBDV/iPhone17,1;FBMD/iPhone;FBSN/iOS;FBSV/26.0.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/0]"
	uaInstagramIOS = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 356.0.0.29.90 (iPhone16,2; iOS 18_1; en_US; en; scale=3.00; 1290x2796; 656950950)"
	// Chrome's and Samsung Internet's reduced User-Agent.
	uaChromeAndroid  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
	uaSamsung        = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
	uaWebView14      = "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36"
	uaFacebookAnd    = "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/450.0.0.40.109;]"
	uaInstagramAnd   = "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 Instagram 320.0.0.42.101 Android (33/13; 420dpi; 1080x2400; samsung; SM-A536B; a53x; s5e8825; en_US; 567067343)"
	uaFirefoxAndroid = "Mozilla/5.0 (Android 15; Mobile; rv:136.0) Gecko/136.0 Firefox/136.0"
	// Not a captured User-Agent: the Android 16 WebView's reduced default
	// (Android Developers blog) with Instagram's own device fields (uap-core
	// tests/test_ua.yaml:8233) appended, as Instagram appends them to the
	// WebView's default. Only the app's fields are true.
	uaInstagramReduced = "Mozilla/5.0 (Linux; Android 10; K; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.000 Mobile Safari/537.36 Instagram 416.0.0.47.66 Android (36/16; 306dpi; 1008x2244; Google/google; Pixel 9 Pro XL; komodo; komodo; en_US; 879745420)"
	uaChromeWindows    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	// Chrome on Android with "request desktop site".
	uaChromeDesktopMode = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)

// chromeHints are the client hints Chrome on Android sends by default.
var chromeHints = map[string]string{"sec-ch-ua-platform": `"Android"`, "sec-ch-ua-mobile": "?1"}

// chromeHighHints adds the high-entropy hints Chrome sends when asked.
var chromeHighHints = map[string]string{
	"sec-ch-ua-platform":         `"Android"`,
	"sec-ch-ua-mobile":           "?1",
	"sec-ch-ua-platform-version": `"15.0.0"`,
	"sec-ch-ua-model":            `"Pixel 9"`,
}

func TestHitAttributes(t *testing.T) {
	t.Parallel()
	f := shared()
	tests := []struct {
		name         string
		ua           string
		hints        map[string]string
		wantPlatform tapline.Platform
		wantOS       string
		wantModel    string
	}{
		{"safari ios 17", uaSafariIOS17, nil, tapline.PlatformIOS, "17.4.1", "iPhone"},
		{"safari ios 18", uaSafariIOS18, nil, tapline.PlatformIOS, "18.3.2", "iPhone"},
		{"safari ios 26 frozen os token", uaSafariIOS26, nil, tapline.PlatformIOS, "26.0", "iPhone"},
		{"safari ios 26.2 frozen os token", uaSafariIOS262, nil, tapline.PlatformIOS, "26.2", "iPhone"},
		{"safari ipad", uaSafariIPad17, nil, tapline.PlatformIOS, "17.4", "iPad"},
		{"safari ipad desktop mode", uaSafariMac, nil, tapline.PlatformWeb, "", ""},
		{"chrome ios 17", uaChromeIOS17, nil, tapline.PlatformIOS, "17.4", "iPhone"},
		{"chrome ios 26 frozen os token", uaChromeIOS26, nil, tapline.PlatformIOS, "", "iPhone"},
		{"facebook ios 17", uaFacebookIOS, nil, tapline.PlatformIOS, "17.4", "iPhone15,2"},
		{"facebook ios 26", uaFacebookIOS2, nil, tapline.PlatformIOS, "26.0.1", "iPhone17,1"},
		{"instagram ios 18", uaInstagramIOS, nil, tapline.PlatformIOS, "18.1", "iPhone16,2"},
		{"chrome android reduced", uaChromeAndroid, chromeHints, tapline.PlatformAndroid, "", ""},
		{"chrome android reduced no hints", uaChromeAndroid, nil, tapline.PlatformAndroid, "", ""},
		{"chrome android high entropy hints", uaChromeAndroid, chromeHighHints, tapline.PlatformAndroid, "15.0.0", "Pixel 9"},
		{"chrome android desktop mode", uaChromeDesktopMode, chromeHints, tapline.PlatformAndroid, "", ""},
		{"samsung internet reduced", uaSamsung, chromeHints, tapline.PlatformAndroid, "", ""},
		{"android webview", uaWebView14, nil, tapline.PlatformAndroid, "14", "Pixel 7"},
		{"facebook android", uaFacebookAnd, nil, tapline.PlatformAndroid, "14", "SM-S918B"},
		{"instagram android", uaInstagramAnd, nil, tapline.PlatformAndroid, "13", "SM-A536B"},
		{"firefox android", uaFirefoxAndroid, nil, tapline.PlatformAndroid, "15", ""},
		{"instagram on a reduced webview", uaInstagramReduced, nil, tapline.PlatformAndroid, "16", "Pixel 9 Pro XL"},
		{"chrome windows", uaChromeWindows, map[string]string{"sec-ch-ua-platform": `"Windows"`}, tapline.PlatformWeb, "", ""},
		{"empty", "", nil, tapline.PlatformWeb, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &tapline.Hit{IP: "198.51.100.4", UserAgent: tt.ua, ClientHints: tt.hints}
			f.Hit(h)
			if h.Platform != tt.wantPlatform || h.OSVersion != tt.wantOS || h.Model != tt.wantModel {
				t.Errorf("got platform %q os %q model %q, want %q %q %q",
					h.Platform, h.OSVersion, h.Model, tt.wantPlatform, tt.wantOS, tt.wantModel)
			}
			if want := "198.51.100.4|" + string(tt.wantPlatform); h.Fingerprint != want {
				t.Errorf("got fingerprint %q, want %q", h.Fingerprint, want)
			}
			if got := f.Platform(tt.ua, tt.hints); got != tt.wantPlatform {
				t.Errorf("Platform: got %q, want %q", got, tt.wantPlatform)
			}
		})
	}
}

func TestPairs(t *testing.T) {
	t.Parallel()
	f := shared()
	const ip = "203.0.113.7"
	type side struct {
		ip     string
		ua     string
		hints  map[string]string
		device tapline.Device
	}
	ios := func(version, model string) tapline.Device {
		return tapline.Device{Platform: tapline.PlatformIOS, OSVersion: version, Model: model}
	}
	android := func(version, model string) tapline.Device {
		return tapline.Device{Platform: tapline.PlatformAndroid, OSVersion: version, Model: model}
	}
	tests := []struct {
		name           string
		hit            side // ua, hints, ip
		event          side // device, ip
		wantSame       bool
		wantCompatible bool
	}{
		// The same device gives the same fingerprint and is compatible.
		{"safari ios 17", side{ip: ip, ua: uaSafariIOS17}, side{ip: ip, device: ios("17.4.1", "iPhone15,2")}, true, true},
		{"safari ios 18", side{ip: ip, ua: uaSafariIOS18}, side{ip: ip, device: ios("18.3.2", "iPhone16,1")}, true, true},
		{"safari ios 26", side{ip: ip, ua: uaSafariIOS26}, side{ip: ip, device: ios("26.0.1", "iPhone17,1")}, true, true},
		{"safari ios 26.2", side{ip: ip, ua: uaSafariIOS262}, side{ip: ip, device: ios("26.2", "iPhone17,3")}, true, true},
		{"safari ipad", side{ip: ip, ua: uaSafariIPad17}, side{ip: ip, device: ios("17.4", "iPad13,4")}, true, true},
		{"chrome ios 17", side{ip: ip, ua: uaChromeIOS17}, side{ip: ip, device: ios("17.4", "iPhone14,5")}, true, true},
		{"chrome ios 26", side{ip: ip, ua: uaChromeIOS26}, side{ip: ip, device: ios("26.0", "iPhone17,2")}, true, true},
		{"facebook ios 17", side{ip: ip, ua: uaFacebookIOS}, side{ip: ip, device: ios("17.4", "iPhone15,2")}, true, true},
		{"facebook ios 26", side{ip: ip, ua: uaFacebookIOS2}, side{ip: ip, device: ios("26.0.1", "iPhone17,1")}, true, true},
		{"instagram ios 18", side{ip: ip, ua: uaInstagramIOS}, side{ip: ip, device: ios("18.1", "iPhone16,2")}, true, true},
		{"sdk without platform", side{ip: ip, ua: uaSafariIOS17}, side{ip: ip, device: tapline.Device{OSVersion: "17.4.1", Model: "iPhone15,2"}}, true, true},
		{"ios minor update after tap", side{ip: ip, ua: uaSafariIOS17}, side{ip: ip, device: ios("17.5", "iPhone15,2")}, true, true},
		{"chrome android 14", side{ip: ip, ua: uaChromeAndroid, hints: chromeHints}, side{ip: ip, device: android("14", "Pixel 7")}, true, true},
		{"chrome android 15 high entropy", side{ip: ip, ua: uaChromeAndroid, hints: chromeHighHints}, side{ip: ip, device: android("15", "Pixel 9")}, true, true},
		{"samsung internet android 13", side{ip: ip, ua: uaSamsung, hints: chromeHints}, side{ip: ip, device: android("13", "SM-A536B")}, true, true},
		{"android webview 14", side{ip: ip, ua: uaWebView14}, side{ip: ip, device: android("14", "Pixel 7")}, true, true},
		{"facebook android 14", side{ip: ip, ua: uaFacebookAnd}, side{ip: ip, device: android("14", "SM-S918B")}, true, true},
		{"instagram android 13", side{ip: ip, ua: uaInstagramAnd}, side{ip: ip, device: android("13", "SM-A536B")}, true, true},
		{"firefox android 15", side{ip: ip, ua: uaFirefoxAndroid}, side{ip: ip, device: android("15", "Pixel 8")}, true, true},
		{"sdk model with brand", side{ip: ip, ua: uaWebView14}, side{ip: ip, device: android("14", "Google Pixel 7")}, true, true},
		{"sdk android model without platform", side{ip: ip, ua: uaWebView14}, side{ip: ip, device: tapline.Device{OSVersion: "14", Model: "Pixel 7"}}, true, true},
		{"same ipv6 /64", side{ip: "2001:db8:abcd:12:1111:2222:3333:1", ua: uaSafariIOS17}, side{ip: "2001:db8:abcd:12:a2b3::77", device: ios("17.4.1", "iPhone15,2")}, true, true},
		{"ipv4-mapped ipv6", side{ip: "::ffff:203.0.113.7", ua: uaChromeAndroid, hints: chromeHints}, side{ip: ip, device: android("14", "Pixel 7")}, true, true},

		// Different devices.
		{"different ip", side{ip: ip, ua: uaSafariIOS17}, side{ip: "203.0.113.8", device: ios("17.4.1", "iPhone15,2")}, false, true},
		{"other ipv6 /64", side{ip: "2001:db8:abcd:12::1", ua: uaSafariIOS17}, side{ip: "2001:db8:abcd:13::1", device: ios("17.4.1", "iPhone15,2")}, false, true},
		{"different platform", side{ip: ip, ua: uaSafariIOS17}, side{ip: ip, device: android("14", "Pixel 7")}, false, false},
		{"android hit ios event", side{ip: ip, ua: uaChromeAndroid, hints: chromeHints}, side{ip: ip, device: ios("17.4.1", "iPhone15,2")}, false, false},
		{"ipad desktop mode is web", side{ip: ip, ua: uaSafariMac}, side{ip: ip, device: ios("17.4", "iPad13,4")}, false, false},
		{"facebook ios other model", side{ip: ip, ua: uaFacebookIOS}, side{ip: ip, device: ios("17.4", "iPhone14,7")}, true, false},
		{"instagram ios other model", side{ip: ip, ua: uaInstagramIOS}, side{ip: ip, device: ios("18.1", "iPhone15,3")}, true, false},
		{"safari ipad vs iphone", side{ip: ip, ua: uaSafariIPad17}, side{ip: ip, device: ios("17.4", "iPhone15,2")}, true, false},
		{"safari iphone vs ipad", side{ip: ip, ua: uaSafariIOS17}, side{ip: ip, device: ios("17.4.1", "iPad13,4")}, true, false},
		{"webview other model", side{ip: ip, ua: uaWebView14}, side{ip: ip, device: android("14", "Pixel 8")}, true, false},
		{"webview other variant", side{ip: ip, ua: uaWebView14}, side{ip: ip, device: android("14", "Pixel 7 Pro")}, true, false},
		{"facebook android other model", side{ip: ip, ua: uaFacebookAnd}, side{ip: ip, device: android("14", "SM-S911B")}, true, false},
		{"instagram android other model", side{ip: ip, ua: uaInstagramAnd}, side{ip: ip, device: android("13", "SM-S918B")}, true, false},
		{"high entropy hint other model", side{ip: ip, ua: uaChromeAndroid, hints: chromeHighHints}, side{ip: ip, device: android("15", "Pixel 8")}, true, false},
		{"ios downgrade", side{ip: ip, ua: uaSafariIOS17}, side{ip: ip, device: ios("17.3", "iPhone15,2")}, true, false},
		{"ios other major", side{ip: ip, ua: uaSafariIOS18}, side{ip: ip, device: ios("17.4.1", "iPhone15,2")}, true, false},
		{"safari 26 vs ios 18", side{ip: ip, ua: uaSafariIOS26}, side{ip: ip, device: ios("18.6", "iPhone15,2")}, true, false},
		{"android other major", side{ip: ip, ua: uaWebView14}, side{ip: ip, device: android("13", "Pixel 7")}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &tapline.Hit{IP: tt.hit.ip, UserAgent: tt.hit.ua, ClientHints: tt.hit.hints}
			f.Hit(h)
			e := &tapline.Event{IP: tt.event.ip, Device: tt.event.device}
			f.Event(e)
			if h.Fingerprint == "" || e.Fingerprint == "" {
				t.Fatalf("empty fingerprint: hit %q, event %q", h.Fingerprint, e.Fingerprint)
			}
			if got := h.Fingerprint == e.Fingerprint; got != tt.wantSame {
				t.Errorf("same fingerprint: got %v, want %v (hit %q, event %q)", got, tt.wantSame, h.Fingerprint, e.Fingerprint)
			}
			if got := fingerprint.Compatible(h, e); got != tt.wantCompatible {
				t.Errorf("Compatible: got %v, want %v (hit platform %q os %q model %q, event %+v)",
					got, tt.wantCompatible, h.Platform, h.OSVersion, h.Model, e.Device)
			}
		})
	}
}

func TestEvent(t *testing.T) {
	t.Parallel()
	f := shared()
	tests := []struct {
		name            string
		ip              string
		device          tapline.Device
		wantPlatform    tapline.Platform
		wantFingerprint string
	}{
		{"ios", "203.0.113.7", tapline.Device{Platform: tapline.PlatformIOS, Model: "iPhone15,2"}, tapline.PlatformIOS, "203.0.113.7|ios"},
		{"android", "203.0.113.7", tapline.Device{Platform: tapline.PlatformAndroid, Model: "Pixel 7"}, tapline.PlatformAndroid, "203.0.113.7|android"},
		{"platform from iphone model", "203.0.113.7", tapline.Device{Model: "iPhone15,2"}, tapline.PlatformIOS, "203.0.113.7|ios"},
		{"platform from ipad model", "203.0.113.7", tapline.Device{Model: "iPad13,4"}, tapline.PlatformIOS, "203.0.113.7|ios"},
		{"platform from simulator", "203.0.113.7", tapline.Device{Model: "arm64"}, tapline.PlatformIOS, "203.0.113.7|ios"},
		{"platform from android model", "203.0.113.7", tapline.Device{Model: "SM-S918B"}, tapline.PlatformAndroid, "203.0.113.7|android"},
		{"platform in other case", "203.0.113.7", tapline.Device{Platform: "iOS"}, tapline.PlatformIOS, "203.0.113.7|ios"},
		{"mac model", "203.0.113.7", tapline.Device{Model: "MacBookPro18,3"}, "", ""},
		{"no platform no model", "203.0.113.7", tapline.Device{}, "", ""},
		{"unknown platform kept", "203.0.113.7", tapline.Device{Platform: "tizen"}, "tizen", ""},
		{"ipv6", "2001:db8:abcd:12:a2b3::77", tapline.Device{Platform: tapline.PlatformAndroid}, tapline.PlatformAndroid, "2001:db8:abcd:12::/64|android"},
		{"no ip", "", tapline.Device{Platform: tapline.PlatformIOS}, tapline.PlatformIOS, ""},
		{"bad ip", "unknown", tapline.Device{Platform: tapline.PlatformIOS}, tapline.PlatformIOS, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := &tapline.Event{IP: tt.ip, Device: tt.device}
			f.Event(e)
			if e.Device.Platform != tt.wantPlatform || e.Fingerprint != tt.wantFingerprint {
				t.Errorf("got platform %q fingerprint %q, want %q %q", e.Device.Platform, e.Fingerprint, tt.wantPlatform, tt.wantFingerprint)
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ip, want string
	}{
		{"ipv4", "203.0.113.7", "203.0.113.7"},
		{"ipv4 spaces", " 203.0.113.7 ", "203.0.113.7"},
		{"ipv4 with port", "203.0.113.7:54321", "203.0.113.7"},
		{"ipv4-mapped", "::ffff:203.0.113.7", "203.0.113.7"},
		{"ipv6", "2001:db8:abcd:12:1111:2222:3333:4444", "2001:db8:abcd:12::/64"},
		{"ipv6 upper case", "2001:DB8:ABCD:12::1", "2001:db8:abcd:12::/64"},
		{"ipv6 with zone", "fe80::1%eth0", "fe80::/64"},
		{"ipv6 with port", "[2001:db8:abcd:12::1]:443", "2001:db8:abcd:12::/64"},
		{"empty", "", ""},
		{"garbage", "not an ip", ""},
		{"cidr", "203.0.113.0/24", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := fingerprint.Network(tt.ip); got != tt.want {
				t.Errorf("Network(%q) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ip       string
		platform tapline.Platform
		want     string
	}{
		{"ios", "203.0.113.7", tapline.PlatformIOS, "203.0.113.7|ios"},
		{"web", "203.0.113.7", tapline.PlatformWeb, "203.0.113.7|web"},
		{"ipv6 android", "2001:db8::1", tapline.PlatformAndroid, "2001:db8::/64|android"},
		{"no platform", "203.0.113.7", "", ""},
		{"unknown platform", "203.0.113.7", "tizen", ""},
		{"no ip", "", tapline.PlatformIOS, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := fingerprint.Key(tt.ip, tt.platform); got != tt.want {
				t.Errorf("Key(%q, %q) = %q, want %q", tt.ip, tt.platform, got, tt.want)
			}
		})
	}
}

func TestBusKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		app         int64
		fingerprint string
		want        string
	}{
		{"fingerprint", 42, "203.0.113.7|ios", "42|203.0.113.7|ios"},
		{"empty fingerprint", 42, "", "42|"},
		{"negative app", -1, "x", "-1|x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(fingerprint.BusKey(tt.app, tt.fingerprint)); got != tt.want {
				t.Errorf("BusKey(%d, %q) = %q, want %q", tt.app, tt.fingerprint, got, tt.want)
			}
		})
	}
	if a, b := fingerprint.BusKey(1, "203.0.113.7|ios"), fingerprint.BusKey(2, "203.0.113.7|ios"); string(a) == string(b) {
		t.Errorf("apps 1 and 2 share the bus key %q", a)
	}
}

func TestCompatibleVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hit, sdk string
		want     bool
	}{
		{"equal", "17.4.1", "17.4.1", true},
		{"hit less precise", "17.4", "17.4.1", true},
		{"sdk less precise", "14.0.0", "14", true},
		{"patch update", "17.4.0", "17.4.1", true},
		{"minor update", "17.4.1", "17.5", true},
		{"minor downgrade", "17.5", "17.4.1", false},
		{"patch downgrade", "17.4.1", "17.4", true}, // "17.4" may be 17.4.x
		{"major differs", "17.4", "18.0", false},
		{"hit unknown", "", "18.0", true},
		{"sdk unknown", "17.4", "", true},
		{"sdk unparsable", "14", "VanillaIceCream", true},
		{"underscores", "17_4", "17.4", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &tapline.Hit{Platform: tapline.PlatformIOS, OSVersion: tt.hit}
			e := &tapline.Event{Device: tapline.Device{Platform: tapline.PlatformIOS, OSVersion: tt.sdk}}
			if got := fingerprint.Compatible(h, e); got != tt.want {
				t.Errorf("Compatible(hit os %q, sdk os %q) = %v, want %v", tt.hit, tt.sdk, got, tt.want)
			}
			checkSignal(t, h, e, "os_version", tt.sdk, tt.hit, tt.want)
		})
	}
}

func TestCompatibleModels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		platform tapline.Platform
		hit, sdk string
		want     bool
	}{
		{"same identifier", tapline.PlatformIOS, "iPhone15,2", "iPhone15,2", true},
		{"identifier case", tapline.PlatformIOS, "iphone15,2", "iPhone15,2", true},
		{"other identifier", tapline.PlatformIOS, "iPhone15,2", "iPhone15,3", false},
		{"class only", tapline.PlatformIOS, "iPhone", "iPhone15,2", true},
		{"class mismatch", tapline.PlatformIOS, "iPod", "iPhone15,2", false},
		{"sdk simulator", tapline.PlatformIOS, "iPhone", "arm64", true},
		{"hit unknown", tapline.PlatformAndroid, "", "Pixel 7", true},
		{"sdk unknown", tapline.PlatformAndroid, "Pixel 7", "", true},
		{"brand on hit", tapline.PlatformAndroid, "SAMSUNG SM-S918B", "SM-S918B", true},
		{"brand on sdk", tapline.PlatformAndroid, "Pixel 7", "Google Pixel 7", true},
		{"punctuation", tapline.PlatformAndroid, "SM S918B", "sm-s918b", true},
		{"other variant", tapline.PlatformAndroid, "SM-S918B", "SM-S918U", false},
		{"longer name", tapline.PlatformAndroid, "Pixel 7", "Pixel 7a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &tapline.Hit{Platform: tt.platform, Model: tt.hit}
			e := &tapline.Event{Device: tapline.Device{Platform: tt.platform, Model: tt.sdk}}
			if got := fingerprint.Compatible(h, e); got != tt.want {
				t.Errorf("Compatible(hit model %q, sdk model %q) = %v, want %v", tt.hit, tt.sdk, got, tt.want)
			}
			checkSignal(t, h, e, "model", tt.sdk, tt.hit, tt.want)
		})
	}
}

// checkSignal checks the signal name of Signals(h, e): both values, and
// conflict exactly when compatible is false, unknown when a side is empty.
func checkSignal(t *testing.T, h *tapline.Hit, e *tapline.Event, name, install, hit string, compatible bool) {
	t.Helper()
	want := tapline.VerdictAgree
	switch {
	case !compatible:
		want = tapline.VerdictConflict
	case install == "" || hit == "":
		want = tapline.VerdictUnknown
	}
	for _, s := range fingerprint.Signals(h, e) {
		if s.Name != name {
			continue
		}
		if s.Install != install || s.Hit != hit || s.Verdict != want {
			t.Errorf("signal %s = %+v, want install %q, hit %q, %s", name, s, install, hit, want)
		}
		return
	}
	t.Errorf("Signals has no %s", name)
}

func TestSignalsNetworkAndPlatform(t *testing.T) {
	t.Parallel()
	h := &tapline.Hit{Platform: tapline.PlatformIOS, Fingerprint: "203.0.113.7|ios"}
	e := &tapline.Event{Fingerprint: "203.0.113.7|ios", Device: tapline.Device{Platform: tapline.PlatformAndroid}}
	got := map[string]tapline.Verdict{}
	for _, s := range fingerprint.Signals(h, e) {
		got[s.Name] = s.Verdict
	}
	if got["network"] != tapline.VerdictAgree || got["platform"] != tapline.VerdictConflict {
		t.Errorf("signals = %v, want network agree and platform conflict", got)
	}
	if fingerprint.Compatible(h, e) {
		t.Errorf("Compatible with a platform conflict")
	}
	e.Fingerprint = "198.51.100.1|ios"
	for _, s := range fingerprint.Signals(h, e) {
		if s.Name == "network" && (s.Verdict != tapline.VerdictConflict || s.Install != "198.51.100.0/24" || s.Hit != "203.0.113.0/24") {
			t.Errorf("network signal = %+v, want a conflict of 198.51.100.0/24 and 203.0.113.0/24 (masked)", s)
		}
	}
	// Compared whole: two addresses of one /24 conflict, shown alike.
	e.Fingerprint = "203.0.113.8|ios"
	for _, s := range fingerprint.Signals(h, e) {
		if s.Name == "network" && (s.Verdict != tapline.VerdictConflict || s.Install != "203.0.113.0/24") {
			t.Errorf("network signal = %+v, want a conflict shown as 203.0.113.0/24", s)
		}
	}
	for in, want := range map[string]string{"203.0.113.7": "203.0.113.0/24", "2001:db8:1:2::/64": "2001:db8:1:2::/64",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64", "::ffff:203.0.113.7": "203.0.113.0/24", "nonsense": ""} {
		if got := fingerprint.MaskNetwork(in); got != want {
			t.Errorf("MaskNetwork(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCache checks that cached results equal fresh parses, that client
// hints are part of the cache key, and that a tiny cache still answers
// right after evictions.
func TestCache(t *testing.T) {
	t.Parallel()
	uncached := fingerprint.New(fingerprint.WithCacheSize(0))
	tiny := fingerprint.New(fingerprint.WithCacheSize(2))
	inputs := []struct {
		ua    string
		hints map[string]string
	}{
		{uaChromeAndroid, nil},
		{uaChromeAndroid, chromeHighHints},
		{uaChromeDesktopMode, nil},
		{uaChromeDesktopMode, chromeHints},
		{uaSafariIOS26, nil},
		{uaFacebookIOS, nil},
		{uaInstagramAnd, nil},
	}
	for round := range 3 {
		for i, in := range inputs {
			want := &tapline.Hit{IP: "203.0.113.7", UserAgent: in.ua, ClientHints: in.hints}
			uncached.Hit(want)
			for name, f := range map[string]*fingerprint.Fingerprinter{"shared": shared(), "tiny": tiny} {
				got := &tapline.Hit{IP: "203.0.113.7", UserAgent: in.ua, ClientHints: in.hints}
				f.Hit(got)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("round %d input %d %s cache: got %+v, want %+v", round, i, name, got, want)
				}
			}
		}
	}
	// The hints change the answer for one User-Agent, so they must be in
	// the cache key.
	if a, b := shared().Platform(uaChromeDesktopMode, nil), shared().Platform(uaChromeDesktopMode, chromeHints); a != tapline.PlatformWeb || b != tapline.PlatformAndroid {
		t.Errorf("desktop mode: got %q without hints and %q with, want web and android", a, b)
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	f := fingerprint.New(fingerprint.WithCacheSize(4))
	uas := []string{uaSafariIOS17, uaChromeAndroid, uaWebView14, uaFacebookIOS, uaInstagramAnd, uaSafariMac}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				ua := uas[(g+i)%len(uas)]
				h := &tapline.Hit{IP: "203.0.113.7", UserAgent: ua}
				f.Hit(h)
				if want := f.Platform(ua, nil); h.Platform != want {
					t.Errorf("goroutine %d: got platform %q, want %q", g, h.Platform, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzHit(f *testing.F) {
	for _, ua := range []string{uaSafariIOS17, uaSafariIOS26, uaChromeIOS26, uaFacebookIOS, uaInstagramIOS, uaChromeAndroid, uaWebView14, uaInstagramAnd, uaFirefoxAndroid, uaSafariMac, ""} {
		f.Add(ua, "203.0.113.7", "", "", "")
	}
	f.Add(uaChromeAndroid, "2001:db8::1", `"Android"`, `"15.0.0"`, `"Pixel 9"`)
	f.Add("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) Instagram 1 (x; iOS 2", "::ffff:1.2.3.4", `"`, `""`, "\x00")
	// The apps' own device fields (inapp.go), whole and cut short.
	for _, ua := range []string{
		"[FBAN/FB4A;FBAV/8.0;FBDV/HTC One_M8;FBSV/4.4.2;]", "[FBAN/FB4A;FBDV/", "Instagram 5.0.2 Android (16/4.1.1; 320dpi; 1196x720; samsung; EK-GC100; gd1)",
		"x Android (1/; a; b; c; d", "Mozilla/5.0 (Linux; Android 12; Pixel 6 Pro Build/S; wv) Safari/537.36Snapchat11.83 (Pixel 6 Pro; Android 12#8#32; gzip; )",
		"Snapchat (", "TwitterAndroid/2.0.0 (119) HTC Flyer P510e/10 (HTC;flyer)", "TwitterAndroid/) /", "Pinterest for Android/9.0.4 (K83CA; 9)",
		"Pinterest for iOS/7.11 (iPhone7,2; 12.1.4)", "Mozilla/5.0 (Linux; Android 10; K; wv) Chrome/125", "Mozilla/5.0 (Linux; U; Android 4.0; zh-cn; Build/X)", "; Build/",
	} {
		f.Add(ua, "203.0.113.7", "", "", "")
	}
	fp := fingerprint.New(fingerprint.WithCacheSize(64))
	f.Fuzz(func(t *testing.T, ua, ip, platform, version, model string) {
		hints := map[string]string{"sec-ch-ua-platform": platform, "sec-ch-ua-platform-version": version, "sec-ch-ua-model": model}
		a := &tapline.Hit{IP: ip, UserAgent: ua, ClientHints: hints}
		b := &tapline.Hit{IP: ip, UserAgent: ua, ClientHints: hints}
		fp.Hit(a)
		fp.Hit(b)
		if a.Platform != b.Platform || a.OSVersion != b.OSVersion || a.Model != b.Model || a.Fingerprint != b.Fingerprint {
			t.Fatalf("not deterministic: %+v then %+v", a, b)
		}
		switch a.Platform {
		case tapline.PlatformIOS, tapline.PlatformAndroid, tapline.PlatformWeb:
		default:
			t.Fatalf("platform %q", a.Platform)
		}
		if want := fingerprint.Key(ip, a.Platform); a.Fingerprint != want {
			t.Fatalf("fingerprint %q, want %q", a.Fingerprint, want)
		}
		e := &tapline.Event{IP: ip, Device: tapline.Device{Platform: a.Platform, OSVersion: a.OSVersion, Model: a.Model}}
		fp.Event(e)
		if a.Platform != tapline.PlatformWeb && e.Fingerprint != a.Fingerprint {
			t.Fatalf("event with the hit's own device: fingerprint %q, hit's %q", e.Fingerprint, a.Fingerprint)
		}
		if a.Platform != tapline.PlatformWeb && !fingerprint.Compatible(a, e) {
			t.Fatalf("hit %+v not compatible with an event of its own device %+v", a, e.Device)
		}
	})
}

// benchUAs are distinct User-Agents the benchmarks cycle through.
var benchUAs = []string{uaSafariIOS17, uaSafariIOS26, uaChromeIOS17, uaFacebookIOS, uaInstagramIOS, uaChromeAndroid, uaSamsung, uaWebView14, uaFacebookAnd, uaInstagramAnd, uaFirefoxAndroid, uaChromeWindows}

func BenchmarkHit(b *testing.B) {
	for _, bc := range []struct {
		name string
		f    *fingerprint.Fingerprinter
	}{
		{"cached", fingerprint.New()},
		{"uncached", fingerprint.New(fingerprint.WithCacheSize(0))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h := tapline.Hit{IP: "203.0.113.7", UserAgent: benchUAs[i%len(benchUAs)], ClientHints: chromeHints}
				bc.f.Hit(&h)
				i++
			}
		})
	}
}
