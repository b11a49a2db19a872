package collector_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"tapline"
	"tapline/collector"
	"tapline/fingerprint"
)

// TestTapstreamInAppFixtures posts, for every in-app browser tap in
// fingerprint/testdata/inapp.yaml, the device fields the Tapstream SDK sends
// from the same device as an install form, and checks that the collector's
// parse gives the device the fingerprint tests assume (the os field's
// version, the model as sent) and that the install is Compatible with the
// tap.
func TestTapstreamInAppFixtures(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "fingerprint", "testdata", "inapp.yaml"))
	if err != nil {
		t.Fatalf("read fixtures: %v", err)
	}
	var doc struct {
		Cases []struct {
			Name  string            `yaml:"name"`
			UA    string            `yaml:"ua"`
			Hints map[string]string `yaml:"hints"`
			SDK   map[string]string `yaml:"sdk"`
		} `yaml:"cases"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse fixtures: %v", err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("no fixtures")
	}
	fp := fingerprint.New()
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			form := url.Values{"secret": {"s"}, "uuid": {"U-" + c.Name}}
			for _, k := range []string{"platform", "vendor", "model", "os"} {
				if v := c.SDK[k]; v != "" {
					form.Set(k, v)
				}
			}
			event := strings.ToLower(c.SDK["platform"]) + "-demo-install"
			e, _, err := collector.ParseTapstream(event, []byte(form.Encode()), testNow)
			if err != nil {
				t.Fatalf("parse %s: %v", form.Encode(), err)
			}
			osField := strings.Fields(c.SDK["os"])
			want := tapline.Device{
				Platform:  tapline.Platform(strings.ToLower(c.SDK["platform"])),
				Model:     c.SDK["model"],
				Vendor:    c.SDK["vendor"],
				OSVersion: osField[len(osField)-1],
			}
			if e.Device.Platform != want.Platform || e.Device.Model != want.Model || e.Device.Vendor != want.Vendor || e.Device.OSVersion != want.OSVersion {
				t.Errorf("device %+v, want %+v", e.Device, want)
			}
			if e.Kind != tapline.KindInstall {
				t.Errorf("kind %q, want install", e.Kind)
			}
			e.IP = "203.0.113.9"
			fp.Event(e)
			h := &tapline.Hit{IP: "203.0.113.9", UserAgent: c.UA, ClientHints: c.Hints}
			fp.Hit(h)
			if h.Fingerprint != e.Fingerprint || !fingerprint.Compatible(h, e) {
				t.Errorf("hit %q (os %q model %q) and install %q (%+v) do not match",
					h.Fingerprint, h.OSVersion, h.Model, e.Fingerprint, e.Device)
			}
		})
	}
}
