package dashboard_test

import (
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"tapline"
	"tapline/dashboard"
)

// TestReportsReadNoRawRows checks that the dashboard cannot read raw rows:
// it links no raw store (pebble, Cassandra) nor the components that hold
// one, and none of its dependencies is a tapline.RawStore, so every number
// it shows comes from the fact tables through tapline.Reports.
func TestReportsReadNoRawRows(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "tapline/postgres") && !slices.Contains(deps, "tapline") {
		t.Fatalf("go list -deps printed no tapline package: %q", out)
	}
	// (It uses funnels.Results, which turns funnel fact rows into results;
	// the funnels package reads raw rows only through a RawStore it is
	// given, and the dashboard holds none.)
	for _, forbidden := range []string{"tapline/pebble", "tapline/cassandra", "tapline/matcher", "tapline/collector"} {
		if slices.Contains(deps, forbidden) {
			t.Errorf("the dashboard depends on %s, which reads raw rows", forbidden)
		}
	}
	raw := reflect.TypeFor[tapline.RawStore]()
	typ := reflect.TypeFor[dashboard.Dashboard]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Implements(raw) {
			t.Errorf("Dashboard.%s is a raw store", f.Name)
		}
	}
}
