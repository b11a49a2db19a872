package skadnetwork

import (
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse arbitrary bodies. Whatever it accepts must write
// back (MarshalJSON) to a body that parses to the same postback, and
// verifying it must not panic. The seeds are Apple's samples here and the
// corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		f.Add(readFile(f, name))
	}
	v := devVerifier()
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(body)
		if err != nil {
			return
		}
		assertRoundTrip(t, p)
		_ = v.Verify(p)
	})
}
