package tapline_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"tapline"
)

// TestFraudPolicy checks the defaults an app gets and what Validate
// refuses, naming the field.
func TestFraudPolicy(t *testing.T) {
	var app tapline.App
	app.SetDefaults()
	p := app.Fraud
	for _, s := range tapline.FraudSignals {
		if p.Action(s) != tapline.FraudFlag {
			t.Errorf("default action of %s is %q, want flag", s, p.Action(s))
		}
	}
	if p.MinClickToInstall != 10*time.Second || p.FloodMinTaps != 500 || p.FloodMaxInstallRate != 0.001 {
		t.Errorf("default thresholds %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	for _, tc := range []struct {
		name  string
		set   func(*tapline.FraudPolicy)
		field string
	}{
		{"unknown action", func(p *tapline.FraudPolicy) { p.ClickFlooding = "block" }, "fraud.click_flooding"},
		{"empty action", func(p *tapline.FraudPolicy) { p.TapAfterInstall = "" }, "fraud.tap_after_install"},
		{"zero minimum", func(p *tapline.FraudPolicy) { p.MinClickToInstall = 0 }, "fraud.min_click_to_install"},
		{"minimum over an hour", func(p *tapline.FraudPolicy) { p.MinClickToInstall = 2 * time.Hour }, "fraud.min_click_to_install"},
		{"no taps", func(p *tapline.FraudPolicy) { p.FloodMinTaps = 0 }, "fraud.flood_min_taps"},
		{"rate zero", func(p *tapline.FraudPolicy) { p.FloodMaxInstallRate = 0 }, "fraud.flood_max_install_rate"},
		{"rate NaN", func(p *tapline.FraudPolicy) { p.FloodMaxInstallRate = math.NaN() }, "fraud.flood_max_install_rate"},
		{"rate over 1", func(p *tapline.FraudPolicy) { p.FloodMaxInstallRate = 1.01 }, "fraud.flood_max_install_rate"},
	} {
		q := p
		tc.set(&q)
		err := q.Validate()
		if tapline.ErrorCode(err) != tapline.EINVALID || !strings.HasPrefix(tapline.ErrorMessage(err), tc.field+":") {
			t.Errorf("%s: %v, want EINVALID naming %s", tc.name, err, tc.field)
		}
	}
	fs := []tapline.FraudFinding{{Signal: tapline.FraudDatacenter, Action: tapline.FraudFlag}, {Signal: tapline.FraudClickInjection, Action: tapline.FraudReject}}
	if f := tapline.Rejecting(fs); f == nil || f.Signal != tapline.FraudClickInjection {
		t.Errorf("Rejecting = %v, want the click injection finding", f)
	}
	if tapline.Rejecting(fs[:1]) != nil {
		t.Errorf("a flagged finding rejects")
	}
}
