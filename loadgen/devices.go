package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"tapline"
)

// weighted is a value with a weight in a distribution.
type weighted[T any] struct {
	w float64
	v T
}

func pick[T any](r *rand.Rand, items []weighted[T]) T {
	var total float64
	for _, it := range items {
		total += it.w
	}
	x := r.Float64() * total
	for _, it := range items {
		if x < it.w {
			return it.v
		}
		x -= it.w
	}
	return items[len(items)-1].v
}

type model struct {
	id, vendor string
	minMajor   int // oldest OS major the model runs
	maxMajor   int // newest OS major it gets (0: current)
}

// iOS versions in the field (mid 2025), weights in percent.
var iosVersions = []weighted[string]{
	{22, "18.5"}, {14, "18.6.2"}, {9, "18.4.1"}, {6, "18.3.2"}, {5, "18.1.1"},
	{8, "26.0.1"}, {3, "26.1"},
	{7, "17.6.1"}, {5, "17.5.1"}, {3, "17.4.1"}, {2, "17.2.1"},
	{5, "16.7.10"}, {2, "16.6.1"}, {3, "15.8.3"}, {1, "15.7.9"},
}

var iphones = []weighted[model]{
	{10, model{"iPhone14,7", "Apple", 15, 0}}, // 14
	{9, model{"iPhone14,5", "Apple", 15, 0}},  // 13
	{8, model{"iPhone15,2", "Apple", 16, 0}},  // 14 Pro
	{8, model{"iPhone15,4", "Apple", 17, 0}},  // 15
	{7, model{"iPhone16,2", "Apple", 17, 0}},  // 15 Pro Max
	{6, model{"iPhone16,1", "Apple", 17, 0}},  // 15 Pro
	{7, model{"iPhone17,3", "Apple", 18, 0}},  // 16
	{6, model{"iPhone17,1", "Apple", 18, 0}},  // 16 Pro
	{6, model{"iPhone13,2", "Apple", 15, 0}},  // 12
	{6, model{"iPhone12,1", "Apple", 15, 18}}, // 11
	{5, model{"iPhone14,2", "Apple", 15, 0}},  // 13 Pro
	{4, model{"iPhone14,6", "Apple", 15, 0}},  // SE 3
	{4, model{"iPhone11,8", "Apple", 15, 18}}, // XR
	{3, model{"iPhone10,4", "Apple", 15, 16}}, // 8
}

var androidVersions = []weighted[string]{
	{34, "14"}, {22, "13"}, {16, "15"}, {13, "12"}, {9, "11"}, {4, "10"}, {2, "16"},
}

var androids = []weighted[model]{
	{9, model{"SM-S918B", "samsung", 13, 0}},  // S23 Ultra
	{8, model{"SM-A546B", "samsung", 13, 0}},  // A54
	{8, model{"SM-A155F", "samsung", 14, 0}},  // A15
	{6, model{"SM-S921B", "samsung", 14, 0}},  // S24
	{5, model{"SM-A525F", "samsung", 11, 14}}, // A52
	{6, model{"Pixel 7", "Google", 13, 0}},
	{5, model{"Pixel 8", "Google", 14, 0}},
	{4, model{"Pixel 6a", "Google", 12, 0}},
	{7, model{"23129RAA4G", "Xiaomi", 13, 0}}, // Redmi Note 13
	{5, model{"2201117TY", "Xiaomi", 11, 14}}, // Redmi Note 11
	{4, model{"CPH2581", "OPPO", 14, 0}},
	{4, model{"moto g54 5G", "motorola", 13, 0}},
	{3, model{"M2101K6G", "Xiaomi", 11, 13}}, // Redmi Note 10 Pro
	{3, model{"RMX3834", "realme", 13, 0}},
}

var locales = []weighted[string]{{40, "en_US"}, {12, "en_GB"}, {10, "de_DE"}, {9, "es_ES"}, {8, "fr_FR"}, {8, "pt_BR"}, {7, "hi_IN"}, {6, "ja_JP"}}

func newDevice(r *rand.Rand, id int, cfg Config) *Device {
	d := &Device{ID: id, Locale: pick(r, locales), JSON: r.Float64() < cfg.JSONShare}
	var u [16]byte
	for i := range u {
		u[i] = byte(r.UintN(256))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	uuid := func(b [16]byte) string {
		return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	}
	d.InstallID = uuid(u)
	for i := range u {
		u[i] = byte(r.UintN(256))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80

	if r.Float64() < cfg.IOSShare {
		d.Platform = tapline.PlatformIOS
		m := pick(r, iphones)
		d.Model, d.Vendor = m.id, m.vendor
		d.OSVersion = fitVersion(r, iosVersions, m)
		if r.Float64() < 0.3 { // App Tracking Transparency opt-in
			d.AdID = strings.ToUpper(uuid(u))
		}
		d.browser = safariUA(d)
	} else {
		d.Platform = tapline.PlatformAndroid
		m := pick(r, androids)
		d.Model, d.Vendor = m.id, m.vendor
		d.OSVersion = fitVersion(r, androidVersions, m)
		if r.Float64() < 0.9 {
			d.AdID = uuid(u)
		}
		d.browser = chromeReducedUA(r, "Chrome")
	}
	return d
}

// fitVersion draws an OS version the model can run.
func fitVersion(r *rand.Rand, versions []weighted[string], m model) string {
	for range 20 {
		v := pick(r, versions)
		var major int
		fmt.Sscanf(v, "%d", &major)
		if major >= m.minMajor && (m.maxMajor == 0 || major <= m.maxMajor) {
			return v
		}
	}
	return fmt.Sprint(m.minMajor)
}

func underscore(v string) string { return strings.ReplaceAll(v, ".", "_") }

// safariUA is Safari's User-Agent on the device: the class only, and from
// Safari 26 a frozen OS token with the real version as Version/.
func safariUA(d *Device) string {
	osTok, ver := underscore(d.OSVersion), d.OSVersion
	if strings.HasPrefix(d.OSVersion, "26") {
		osTok = "18_6"
	} else if strings.Count(ver, ".") == 2 {
		ver = ver[:strings.LastIndex(ver, ".")]
	}
	return "Mozilla/5.0 (iPhone; CPU iPhone OS " + osTok + " like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/" + ver + " Mobile/15E148 Safari/604.1"
}

var chromeVersions = []string{"137.0.0.0", "138.0.0.0", "139.0.0.0"}

// chromeReducedUA is Chrome's (or Samsung Internet's) reduced User-Agent:
// Android 10 and model K whatever the device.
func chromeReducedUA(r *rand.Rand, browser string) string {
	cv := chromeVersions[r.IntN(len(chromeVersions))]
	if browser == "Samsung" {
		return "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/" + cv + " Mobile Safari/537.36"
	}
	return "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + cv + " Mobile Safari/537.36"
}

// tapBrowser draws the browser a tap comes from and returns its
// User-Agent and, for Chromium browsers, the client hints it sends: the
// low-entropy ones always, the model and platform version when asked.
// inApp is the chance of an in-app browser of Facebook or Instagram
// (carrying model and OS version); otherwise Safari or Chrome on iOS,
// Chrome or Samsung Internet (reduced User-Agent) on Android.
func tapBrowser(r *rand.Rand, d *Device, inApp float64) (string, map[string]string) {
	app := ""
	if r.Float64() < inApp {
		app = pick(r, []weighted[string]{{60, "facebook"}, {40, "instagram"}})
	}
	if d.Platform == tapline.PlatformIOS {
		osTok := underscore(d.OSVersion)
		base := "Mozilla/5.0 (iPhone; CPU iPhone OS " + osTok + " like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
		switch app {
		case "facebook":
			return base + " [FBAN/FBIOS;FBAV/487.0.0.38.104;FBBV/712353215;FBDV/" + d.Model + ";FBMD/iPhone;FBSN/iOS;FBSV/" + d.OSVersion + ";FBSS/3;FBCR/;FBID/phone;FBLC/" + d.Locale + ";FBOP/5]", nil
		case "instagram":
			return base + " Instagram 381.0.0.24.84 (" + d.Model + "; iOS " + osTok + "; " + d.Locale + "; " + d.Locale[:2] + "; scale=3.00; 1179x2556; 733446223)", nil
		}
		if r.Float64() < 0.25 {
			return "Mozilla/5.0 (iPhone; CPU iPhone OS " + osTok + " like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.119 Mobile/15E148 Safari/604.1", nil
		}
		return d.browser, nil
	}
	wv := "Mozilla/5.0 (Linux; Android " + d.OSVersion + "; " + d.Model + " Build/AP2A.240905.003; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/138.0.7204.157 Mobile Safari/537.36"
	switch app {
	case "facebook":
		return wv + " [FB_IAB/FB4A;FBAV/487.0.0.55.109;]", nil
	case "instagram":
		api := map[string]string{"10": "29", "11": "30", "12": "31", "13": "33", "14": "34", "15": "35", "16": "36"}[d.OSVersion]
		return wv + " Instagram 381.0.0.49.80 Android (" + api + "/" + d.OSVersion + "; 420dpi; 1080x2340; " + d.Vendor + "; " + d.Model + "; x; qcom; " + d.Locale + "; 733446252)", nil
	}
	browser, brand := "Chrome", `"Google Chrome"`
	if r.Float64() < 0.25 {
		browser, brand = "Samsung", `"Samsung Internet"`
	}
	ua := chromeReducedUA(r, browser)
	major := ua[strings.Index(ua, "Chrome/")+len("Chrome/"):]
	major = major[:strings.IndexByte(major, '.')]
	return ua, map[string]string{
		"Sec-CH-UA":                  `"Chromium";v="` + major + `", ` + brand + `;v="` + major + `", "Not)A;Brand";v="99"`,
		"Sec-CH-UA-Mobile":           "?1",
		"Sec-CH-UA-Platform":         `"Android"`,
		"Sec-CH-UA-Model":            `"` + d.Model + `"`,
		"Sec-CH-UA-Platform-Version": `"` + d.OSVersion + `.0.0"`,
	}
}

// highEntropyHints are the client hints a Chromium browser sends only when
// the site asks for them.
var highEntropyHints = []string{"Sec-CH-UA-Model", "Sec-CH-UA-Platform-Version"}
