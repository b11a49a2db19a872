package fingerprint

import (
	"strings"

	"tapline"
)

// An Android app's own User-Agent tokens and its WebView's carry the very
// values the Tapstream SDK reads on the device: Build.MODEL and
// Build.VERSION.RELEASE. They are found here with plain string searches,
// which cost far less than uap-go's device regular expressions and give the
// model as the device names itself ("LG-TP260", "HTC Desire 22 pro"), not
// as a parser's catalogue renames it ("TP260", a codename).

// androidApp is what an Android app writes into its User-Agent itself.
type androidApp struct {
	release string // Build.VERSION.RELEASE, or ""
	model   string // Build.MODEL, or ""
	// versionless is set when a leading app token ("TwitterAndroid/2.0.0")
	// is what uap-go reads as the Android version.
	versionless bool
}

// readAndroidApp reads the device fields Android apps put in their
// User-Agents:
//
//   - Facebook and Messenger: "FBDV/SM-G991B;FBSV/13" in their bracket
//     ("[FBAN/FB4A;…]", "[FBAN/Orca-Android;…]");
//   - Instagram and Threads: "Android (33/13; 420dpi; 1080x2400; samsung;
//     SM-G991B; o1s; exynos2100; en_US; …)", API level/release, density,
//     resolution, manufacturer[/brand], model;
//   - Snapchat: "Snapchat11.83.0.31 (Pixel 6 Pro; Android 12#8643238#32; …)";
//   - Pinterest's own requests: "Pinterest for Android/3.6.2 (klte;
//     4.4.2)", whose first field is a codename: only the release is kept;
//   - Twitter's old native client: "TwitterAndroid/2.0.0 (119) HTC Flyer
//     P510e/10 (…)", whose version uap-go mistakes for Android's.
func readAndroidApp(ua string) androidApp {
	var a androidApp
	if strings.Contains(ua, "FBDV/") && !isFacebookIOS(ua) {
		a.model = fbField(ua, "FBDV/")
		a.release = fbField(ua, "FBSV/")
		return a
	}
	if i := strings.Index(ua, " Android ("); i >= 0 {
		if f := fields(ua[i+len(" Android ("):], 6); len(f) >= 5 {
			if _, release, ok := strings.Cut(f[0], "/"); ok && isVersion(release) {
				a.release, a.model = release, f[4]
				return a
			}
		}
	}
	if i := strings.Index(ua, "Snapchat"); i >= 0 {
		if j := strings.Index(ua[i:], " ("); j >= 0 {
			if f := fields(ua[i+j+2:], 2); len(f) == 2 && strings.HasPrefix(f[1], "Android ") {
				release, _, _ := strings.Cut(strings.TrimPrefix(f[1], "Android "), "#")
				if isVersion(release) {
					a.release = release
				}
				a.model = f[0]
				return a
			}
		}
	}
	if _, release := pinterestApp(ua, "Pinterest for Android"); release != "" {
		// Its first field is mostly Build.DEVICE, a codename ("klte",
		// "endeavoru"), not the model the SDK sends.
		a.release = release
		return a
	}
	if rest, ok := strings.CutPrefix(ua, "TwitterAndroid/"); ok {
		a.versionless = true
		// "2.0.0 (119) HTC Flyer P510e/10 (HTC;…)": the model runs from
		// after the build number to the "/<API level> (".
		if _, after, ok := strings.Cut(rest, ") "); ok {
			if j := strings.Index(after, " ("); j >= 0 {
				if k := strings.LastIndexByte(after[:j], '/'); k > 0 {
					a.model = after[:k]
				}
			}
		}
	}
	return a
}

// pinterestApp reads the Pinterest app's own requests, "Pinterest for
// iOS/7.11 (iPhone7,2; 12.1.4)", "Pinterest for Android/3.6.2 (klte;
// 4.4.2)" or "Pinterest for Android Tablet/…": the first field and the OS
// version, or "" when ua does not start with prefix. uap-go takes the
// app's version for the OS's.
func pinterestApp(ua, prefix string) (model, release string) {
	rest, ok := strings.CutPrefix(ua, prefix)
	if !ok {
		return "", ""
	}
	_, inside, ok := strings.Cut(rest, "/")
	if !ok {
		return "", ""
	}
	_, inside, ok = strings.Cut(inside, " (")
	if !ok {
		return "", ""
	}
	f := fields(inside, 2)
	if len(f) != 2 || !isVersion(f[1]) {
		return "", ""
	}
	return f[0], f[1]
}

// isFacebookIOS reports whether a Facebook bracket is the iOS app's, whose
// FBDV is an Apple identifier read elsewhere.
func isFacebookIOS(ua string) bool {
	return strings.Contains(ua, "FBAN/FBIOS") || strings.Contains(ua, "FBAN/MessengerForiOS") ||
		strings.Contains(ua, "FBSN/iOS") || strings.Contains(ua, "FBSN/iPadOS") || strings.Contains(ua, "FBSN/iPhone OS")
}

// facebookAndroid reports whether a User-Agent is a Facebook Android app's
// own ("[FBAN/FB4A;…;FBDV/…]", Messenger's "FBAN/Orca-Android", Pages
// Manager's "FBSN/Android"), which names no OS uap-go reads.
func facebookAndroid(ua string) bool {
	return strings.Contains(ua, "FBAN/FB4A") || strings.Contains(ua, "FBAN/Orca-Android") || strings.Contains(ua, "FBSN/Android")
}

// fbField returns the value of a Facebook bracket field such as "FBDV/",
// up to the next ';' or ']', or "".
func fbField(ua, key string) string {
	i := strings.Index(ua, key)
	if i < 0 {
		return ""
	}
	v := ua[i+len(key):]
	if j := strings.IndexAny(v, ";]"); j >= 0 {
		v = v[:j]
	}
	return strings.TrimSpace(v)
}

// fields splits s, the inside of a parenthesis, at ";" into at most n
// trimmed fields. A field may hold a parenthesis of its own ("moto g(7)
// play"); only a last field is cut at the closing one.
func fields(s string, n int) []string {
	out := strings.SplitN(s, ";", n+1)
	if len(out) > n {
		out = out[:n]
	} else {
		out[len(out)-1] = closeParen(out[len(out)-1])
	}
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

// closeParen returns s up to the ')' that closes the parenthesis s is
// inside of, skipping nested pairs, or all of s.
func closeParen(s string) string {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				return s[:i]
			}
			depth--
		}
	}
	return s
}

// isVersion reports whether s is a dotted version such as "13" or "8.1.0".
func isVersion(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// buildModel returns the model an Android WebView, Chrome before its
// User-Agent reduction, or Dalvik writes before " Build/": Build.MODEL as
// the device reports it, in "(Linux; Android 14; Pixel 8 Build/AP2A…; wv)"
// or "(Linux; U; Android 4.2.2; en-us; SCH-I435L Build/JDQ39)". It returns
// "" when there is no such token.
func buildModel(ua string) string {
	i := strings.Index(ua, " Build/")
	if i < 0 {
		return ""
	}
	j := strings.LastIndex(ua[:i], "; ")
	if j < 0 || !strings.Contains(ua[:j], "Android") {
		return ""
	}
	m := strings.TrimSpace(ua[j+2 : i])
	// "; zh-cn; Build/…" names no model; old stock browsers write
	// "SAMSUNG GT-S5310/S5310XXAME5" or "zh-cn;GiONEE-GN136/S239", a
	// firmware or locale beside it, which uap-go's definitions untangle.
	if m == "K" || isLocale(m) || strings.ContainsAny(m, "/;") {
		return ""
	}
	// Android 1 and 2 stock browsers append the firmware:
	// "HTC Desire 1.15.161.4", "HTC_A510b V1.52.841.1".
	if i := strings.LastIndexByte(m, ' '); i > 0 && isFirmware(m[i+1:]) {
		m = strings.TrimSpace(m[:i])
	}
	return m
}

// isFirmware reports whether s is a firmware version such as "1.15.161.4"
// or "V1.52.841.1": digits with at least two dots.
func isFirmware(s string) bool {
	s = strings.TrimPrefix(s, "V")
	return isVersion(s) && strings.Count(s, ".") >= 2
}

// isLocale reports whether s looks like the locale old Android browsers
// put before the model: "en-us", "zh_CN".
func isLocale(s string) bool {
	return len(s) == 5 && (s[2] == '-' || s[2] == '_') && isLetters(s[:2]) && isLetters(s[3:])
}

// isLetters reports whether s holds only ASCII letters.
func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// reducedAndroid reports whether an Android User-Agent is Chrome's,
// Samsung Internet's or (from Android 16) the WebView's reduced one,
// "Linux; Android 10; K" with or without "; wv": its version and model are
// fake.
func reducedAndroid(ua string) bool {
	return strings.Contains(ua, "; K)") || strings.Contains(ua, "; K; wv)")
}

// appPlatform returns the platform of an app's own User-Agent that uap-go
// does not place, or "".
func appPlatform(ua string) tapline.Platform {
	if facebookAndroid(ua) {
		return tapline.PlatformAndroid
	}
	return ""
}
