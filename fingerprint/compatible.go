package fingerprint

import (
	"net/netip"
	"strconv"
	"strings"

	"tapline"
)

// Compatible reports whether the device attributes that both a hit and an
// event reveal agree: the platform; the model where the hit's User-Agent
// carries one (in-app browsers, Android WebViews, Sec-CH-UA-Model) or at
// least the Apple device class (iPhone, iPad, iPod); and the OS version
// where the User-Agent carries a real one. An attribute either side hides
// agrees with anything. The OS version must have the same major version and
// may have moved forward between tap and install, never back. The hit's
// Platform, OSVersion and Model must have been set by Fingerprinter.Hit.
func Compatible(h *tapline.Hit, e *tapline.Event) bool {
	ep := EventPlatform(&e.Device)
	if h.Platform != "" && ep != "" && h.Platform != ep {
		return false
	}
	return modelsAgree(h.Model, e.Device.Model) && versionsAgree(h.OSVersion, e.Device.OSVersion)
}

// modelsAgree compares a hit's model with an SDK's. Apple models are
// compared by class, and exactly when both are hardware identifiers. Other
// models are compared without case, spaces and punctuation, one being a
// suffix of the other, so that a brand prefix on either side ("SAMSUNG
// SM-S918B", "Google Pixel 7") does not matter.
func modelsAgree(hit, sdk string) bool {
	if hit == "" || sdk == "" {
		return true
	}
	hc, sc := appleClass(hit), appleClass(sdk)
	if hc != "" || sc != "" {
		if hc != "" && sc != "" && hc != sc {
			return false
		}
		if isAppleIdentifier(hit) && isAppleIdentifier(sdk) {
			return strings.EqualFold(hit, sdk)
		}
		return true
	}
	a, b := squash(hit), squash(sdk)
	if a == "" || b == "" {
		return true
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	return strings.HasSuffix(b, a)
}

// squash lower-cases a model and keeps only its letters and digits.
func squash(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// versionsAgree compares a hit's OS version with an SDK's over the
// components both give: the majors must be equal and the SDK's version not
// lower (the device may update between tap and install). An unknown or
// unparsable version agrees with anything.
func versionsAgree(hit, sdk string) bool {
	hv, sv := parseVersion(hit), parseVersion(sdk)
	if len(hv) == 0 || len(sv) == 0 {
		return true
	}
	if hv[0] != sv[0] {
		return false
	}
	for i := 1; i < len(hv) && i < len(sv); i++ {
		if sv[i] != hv[i] {
			return sv[i] > hv[i]
		}
	}
	return true
}

// parseVersion returns the leading numeric components of a version such as
// "17.4.1" or "17_4", stopping at the first that is not a number.
func parseVersion(v string) []int {
	var out []int
	for part := range strings.FieldsFuncSeq(strings.TrimSpace(v), func(r rune) bool { return r == '.' || r == '_' }) {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			break
		}
		out = append(out, n)
		if len(out) == 4 {
			break
		}
	}
	return out
}

// Signals compares a hit and an install on what a fingerprint match rests
// on, with both sides' values: the network (the fingerprint's address,
// compared whole and shown masked to its /24 or /64), the platform, the
// model and the OS version. A side that hides a
// value makes it unknown; Compatible holds exactly when no device
// attribute (platform, model, OS version) conflicts.
func Signals(h *tapline.Hit, e *tapline.Event) []tapline.Signal {
	ep := EventPlatform(&e.Device)
	return []tapline.Signal{
		maskedNetwork(signal("network", network(e.Fingerprint), network(h.Fingerprint), func(a, b string) bool { return a == b })),
		signal("platform", string(ep), string(h.Platform), func(a, b string) bool { return a == b }),
		signal("model", e.Device.Model, h.Model, func(sdk, hit string) bool { return modelsAgree(hit, sdk) }),
		signal("os_version", e.Device.OSVersion, h.OSVersion, func(sdk, hit string) bool { return versionsAgree(hit, sdk) }),
	}
}

// signal compares an install's value with a hit's by agree.
func signal(name, install, hit string, agree func(install, hit string) bool) tapline.Signal {
	s := tapline.Signal{Name: name, Install: install, Hit: hit, Verdict: tapline.VerdictUnknown}
	switch {
	case install == "" || hit == "":
	case agree(install, hit):
		s.Verdict = tapline.VerdictAgree
	default:
		s.Verdict = tapline.VerdictConflict
	}
	return s
}

// network returns the address part of a fingerprint ("203.0.113.7|ios").
func network(fp string) string {
	n, _, _ := strings.Cut(fp, "|")
	return n
}

// maskedNetwork returns s, a network signal compared on the addresses,
// with both values masked (MaskNetwork): a decision outlives the raw rows
// that may hold addresses.
func maskedNetwork(s tapline.Signal) tapline.Signal {
	s.Install, s.Hit = MaskNetwork(s.Install), MaskNetwork(s.Hit)
	return s
}

// MaskNetwork returns the network of an address as a record kept past the
// raw rows' retention may show it: an IPv4 address's /24
// ("203.0.113.0/24"), an IPv6 /64 as it is; "" for anything else. Two
// addresses of one fingerprint mask alike.
func MaskNetwork(addr string) string {
	if p, err := netip.ParsePrefix(addr); err == nil {
		return p.Masked().String()
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	bits := 64
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// MaskFingerprint returns fp ("203.0.113.7|ios") with its address masked
// (MaskNetwork): "203.0.113.0/24|ios".
func MaskFingerprint(fp string) string {
	n, platform, ok := strings.Cut(fp, "|")
	if !ok {
		return MaskNetwork(fp)
	}
	return MaskNetwork(n) + "|" + platform
}
