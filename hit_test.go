package tapline_test

import (
	"reflect"
	"testing"

	"tapline"
)

// TestWithoutAdIDs checks that the parameters carrying an advertising id,
// in any case, are left out, and that params without one come back as
// they are.
func TestWithoutAdIDs(t *testing.T) {
	in := map[string]string{"utm_source": "fb", "IDFA": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "gps_adid": "x"}
	got := tapline.WithoutAdIDs(in)
	if want := map[string]string{"utm_source": "fb"}; !reflect.DeepEqual(got, want) {
		t.Errorf("WithoutAdIDs = %v, want %v", got, want)
	}
	if len(in) != 3 {
		t.Errorf("WithoutAdIDs changed its argument: %v", in)
	}
	plain := map[string]string{"utm_source": "fb"}
	if got := tapline.WithoutAdIDs(plain); !reflect.DeepEqual(got, plain) {
		t.Errorf("WithoutAdIDs(%v) = %v", plain, got)
	}
}
