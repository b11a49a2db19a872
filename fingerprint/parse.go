package fingerprint

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/ua-parser/uap-go/uaparser"

	"tapline"
)

// device is what a User-Agent and client hints reveal of a device.
type device struct {
	platform  tapline.Platform
	osVersion string // "" where hidden or frozen
	model     string // raw model, an Apple class ("iPhone"), or ""
	bot       string // the link previewer or crawler the User-Agent names (Bot), or ""
}

// hints holds the client hints the fingerprint reads, unquoted.
type hints struct {
	platform        string // Sec-CH-UA-Platform, lower case: "android", "ios", "windows"...
	platformVersion string // Sec-CH-UA-Platform-Version
	model           string // Sec-CH-UA-Model
}

// maxHint bounds each client hint value that is read.
const maxHint = 64

// readHints takes the Sec-CH-UA-* values that matter from a header map
// keyed by lower-case names. Sec-CH-UA-Mobile is not read: it tells phone
// from tablet or desktop mode, which no SDK reports, and never changes the
// platform.
func readHints(m map[string]string) hints {
	if len(m) == 0 {
		return hints{}
	}
	return hints{
		platform:        strings.ToLower(hintValue(m["sec-ch-ua-platform"])),
		platformVersion: hintValue(m["sec-ch-ua-platform-version"]),
		model:           hintValue(m["sec-ch-ua-model"]),
	}
}

// hintValue unquotes a structured-header string such as `"Android"`.
func hintValue(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > maxHint {
		v = v[:maxHint]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return strings.TrimSpace(v)
}

// cacheKey is the key a parse is cached under: the User-Agent alone when no
// hint is set, else the User-Agent and the hints separated by NUL bytes
// (which cannot occur in an HTTP header).
func (h hints) cacheKey(userAgent string) string {
	if h == (hints{}) {
		return userAgent
	}
	return userAgent + "\x00" + h.platform + "\x00" + h.platformVersion + "\x00" + h.model
}

var (
	// fbsvRE finds Facebook's in-app OS version, "FBSV/17.4".
	fbsvRE = regexp.MustCompile(`FBSV/(\d+(?:\.\d+)*)`)
	// instagramIOSRE finds Instagram's in-app OS version,
	// "Instagram 300.0 (iPhone15,2; iOS 17_4; ...".
	instagramIOSRE = regexp.MustCompile(`Instagram [\d.]+ \([^;)]*; iOS (\d+(?:[_.]\d+)*)`)
	// safariVersionRE finds Safari's own version, "Version/26.0".
	safariVersionRE = regexp.MustCompile(`Version/(\d+)((?:\.\d+)*)`)
	// iosIdentifierRE finds an iPhone, iPad or iPod hardware identifier in
	// a User-Agent.
	iosIdentifierRE = regexp.MustCompile(`\bi(?:Phone|Pad|Pod)\d+,\d+`)
	// iosClassRE finds the first device class a User-Agent names.
	iosClassRE = regexp.MustCompile(`(?i)\bi(?:phone|pad|pod)`)
)

// analyze parses a User-Agent with uap-go and corrects what current
// browsers hide or freeze.
func analyze(p *uaparser.Parser, userAgent string, h hints) device {
	// uap-go's device definitions cost ten times its OS definitions, so
	// the device is only parsed where nothing cheaper tells the model.
	os := p.ParseOs(userAgent)

	var d device
	switch os.Family {
	case "iOS":
		d.platform = tapline.PlatformIOS
	case "Android":
		d.platform = tapline.PlatformAndroid
	default:
		d.platform = tapline.PlatformWeb
		if p := appPlatform(userAgent); p != "" {
			d.platform = p
			os.Family = "Android"
		}
	}
	// Chromium sends Sec-CH-UA-Platform by default; when it names a mobile
	// platform it is believed over a User-Agent that "request desktop
	// site" may have rewritten to Linux.
	switch h.platform {
	case "android":
		d.platform = tapline.PlatformAndroid
	case "ios":
		d.platform = tapline.PlatformIOS
	}
	uaAgrees := (d.platform == tapline.PlatformIOS && os.Family == "iOS") ||
		(d.platform == tapline.PlatformAndroid && os.Family == "Android")

	switch d.platform {
	case tapline.PlatformIOS:
		if uaAgrees {
			d.osVersion = iosVersion(userAgent, os)
			d.model = iosModel(userAgent)
		}
	case tapline.PlatformAndroid:
		d.osVersion, d.model = h.platformVersion, h.model
		// The reduced User-Agent of Chrome, Samsung Internet and the
		// Android 16 WebView fakes both.
		if uaAgrees {
			d.osVersion, d.model = androidDevice(p, userAgent, os, d.osVersion, d.model)
		}
	}
	return d
}

// androidDevice fills the OS version and model a client hint left empty
// from an Android User-Agent: first what the app itself writes (Facebook's
// FBDV and FBSV, Instagram's and Snapchat's device fields), then the
// WebView's "<model> Build/" token and uap-go's OS version, and only when
// none names the model, uap-go's device definitions. Of a reduced
// User-Agent only the app's own fields are true.
func androidDevice(p *uaparser.Parser, userAgent string, os *uaparser.Os, osVersion, model string) (string, string) {
	app := readAndroidApp(userAgent)
	reduced := reducedAndroid(userAgent)
	if osVersion == "" {
		osVersion = app.release
		if osVersion == "" && !app.versionless && !reduced {
			osVersion = joinVersion(os.Major, os.Minor, os.Patch)
		}
	}
	if model == "" {
		model = app.model
	}
	if model != "" || reduced {
		return osVersion, model
	}
	model = buildModel(userAgent)
	if model == "" {
		dev := p.ParseDevice(userAgent)
		if dev.Model != "" && dev.Model != "K" && dev.Brand != "" && !strings.HasPrefix(dev.Brand, "Generic") {
			model = dev.Model
		}
	}
	return osVersion, model
}

// iosVersion returns the real iOS version a User-Agent reveals, or "".
// In-app browsers report it themselves (Facebook's FBSV, Instagram's "iOS
// 17_4", Pinterest's "(iPhone7,2; 12.1.4)"). Safari 26 and later freeze the OS token at 18_6 or 18_7 but carry
// a Safari version equal to the OS version; without such a token an
// unpatched 18.6 or later may be frozen and is dropped.
func iosVersion(userAgent string, os *uaparser.Os) string {
	if m := fbsvRE.FindStringSubmatch(userAgent); m != nil {
		return m[1]
	}
	if m := instagramIOSRE.FindStringSubmatch(userAgent); m != nil {
		return strings.ReplaceAll(m[1], "_", ".")
	}
	if _, release := pinterestApp(userAgent, "Pinterest for iOS"); release != "" {
		return release
	}
	v := joinVersion(os.Major, os.Minor, os.Patch)
	if m := safariVersionRE.FindStringSubmatch(userAgent); m != nil {
		if major, err := strconv.Atoi(m[1]); err == nil && major >= 26 {
			return m[1] + m[2]
		}
		return v // Safari before 26 tells the real OS version.
	}
	if os.Major == "18" && os.Patch == "" {
		if minor, err := strconv.Atoi(os.Minor); err == nil && minor >= 6 {
			return "" // possibly WebKit's frozen token
		}
	}
	return v
}

// iosModel returns the hardware identifier an in-app browser reveals
// ("FBDV/iPhone15,2", "Instagram 300.0 (iPhone15,2; ...") or else the
// device class Safari reveals ("iPhone", "iPad", "iPod"), or "".
func iosModel(userAgent string) string {
	if m := iosIdentifierRE.FindString(userAgent); m != "" {
		return m
	}
	return appleClass(iosClassRE.FindString(userAgent))
}

// appleClass returns "iPhone", "iPad" or "iPod" when a model names one, or "".
func appleClass(model string) string {
	for _, c := range [...]string{"iPhone", "iPad", "iPod"} {
		if len(model) >= len(c) && strings.EqualFold(model[:len(c)], c) {
			return c
		}
	}
	return ""
}

// isAppleIdentifier reports whether a model is an Apple hardware identifier.
func isAppleIdentifier(model string) bool {
	// Letters, digits, a comma, digits ("iPhone15,2", "iPad13,4",
	// "MacBookPro18,3", "Watch6,1"), read without a regular expression:
	// the fingerprint asks it of every candidate tap.
	i := 0
	for i < len(model) && (model[i] >= 'a' && model[i] <= 'z' || model[i] >= 'A' && model[i] <= 'Z') {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(model) && model[i] >= '0' && model[i] <= '9' {
			i++
		}
		return i > j
	}
	if i == 0 || !digits() || i == len(model) || model[i] != ',' {
		return false
	}
	i++
	return digits() && i == len(model)
}

// isSimulator reports whether a model is what the iOS simulator reports.
func isSimulator(model string) bool {
	switch model {
	case "x86_64", "arm64", "i386":
		return true
	}
	return false
}

// joinVersion joins the non-empty leading parts of a version with dots.
func joinVersion(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if p == "" {
			break
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}
