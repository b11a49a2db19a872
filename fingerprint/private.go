package fingerprint

import (
	"net/netip"
	"strings"

	"tapline"
)

// PrivateConversion brings a conversion stored before conversions were
// kept private to the form the matcher stores now, and reports whether it
// changed anything: the fingerprint's address masked (MaskFingerprint),
// no advertising id, none in the hit parameters of its attribution and
// history (tapline.WithoutAdIDs), network signals masked and advertising
// id signals cut to their last four characters, as the matcher writes
// them. A conversion already in that form is left as it is, as is a
// fingerprint whose network part is no bare address.
func PrivateConversion(c *tapline.Conversion) bool {
	changed := c.AdID != ""
	c.AdID = ""
	if n, platform, ok := strings.Cut(c.Fingerprint, "|"); ok {
		if _, err := netip.ParseAddr(n); err == nil {
			c.Fingerprint, changed = MaskNetwork(n)+"|"+platform, true
		}
	} else if _, err := netip.ParseAddr(c.Fingerprint); err == nil {
		c.Fingerprint, changed = MaskNetwork(c.Fingerprint), true
	}
	if c.StripAdIDParams() {
		changed = true
	}
	if c.Decision == nil {
		return changed
	}
	for i := range c.Decision.Signals {
		s := &c.Decision.Signals[i]
		for _, v := range []*string{&s.Install, &s.Hit} {
			switch s.Name {
			case "network":
				if _, err := netip.ParseAddr(*v); err == nil {
					*v, changed = MaskNetwork(*v), true
				}
			case "advertising_id":
				if len(*v) > 4 && !strings.HasPrefix(*v, "…") {
					*v, changed = "…"+(*v)[len(*v)-4:], true
				}
			}
		}
	}
	return changed
}
