package fingerprint

import (
	"fmt"
	"regexp"
	"testing"

	"tapline"
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

// TestPopulationBounded learns far more distinct models than a Population
// counts: its map stays within maxShareKeys, and a model learned often
// since still weighs as common.
func TestPopulationBounded(t *testing.T) {
	t.Parallel()
	p := NewPopulation()
	common := tapline.Device{Platform: tapline.PlatformAndroid, Model: "SM-S918B", OSVersion: "14"}
	for i := range 20000 {
		p.LearnInstall(&tapline.Device{Platform: tapline.PlatformAndroid, Model: fmt.Sprintf("SM-X%05d", i)})
		p.LearnInstall(&common)
		if n := len(p.counts); n > maxShareKeys {
			t.Fatalf("after %d installs %d values are counted, want at most %d", 2*(i+1), n, maxShareKeys)
		}
	}
	if w := p.rarity(modelKey("android", common.Model), "android", WeightModel); w > 1 {
		t.Errorf("a model half the installs have weighs %.2f, want under 1 (common)", w)
	}
}
