package fingerprint

import (
	"regexp"
	"testing"
)

// TestIsAppleIdentifier checks the hand-written reader against the
// regular expression it stands for.
func TestIsAppleIdentifier(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[A-Za-z]+\d+,\d+$`)
	for _, s := range []string{
		"iPhone15,2", "iPad13,4", "MacBookPro18,3", "Watch6,1", "iPhone", "iPhone15", "iPhone15,", "iPhone,2",
		"15,2", "iPhone15,2a", "iPhone15,2,1", "iPhone 15,2", "", ",", "a1,1", "SM-S918B", "Pixel 7", "iPhone15.2", "iPhoneé15,2",
	} {
		if got, want := isAppleIdentifier(s), re.MatchString(s); got != want {
			t.Errorf("isAppleIdentifier(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzIsAppleIdentifier(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z]+\d+,\d+$`)
	f.Add("iPhone15,2")
	f.Add("SM-S918B")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isAppleIdentifier(s), re.MatchString(s); got != want {
			t.Errorf("isAppleIdentifier(%q) = %v, want %v", s, got, want)
		}
	})
}
