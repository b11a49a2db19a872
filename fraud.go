package tapline

import (
	"fmt"
	"math"
	"time"
)

// FraudSignal names a fraud rule the matcher checks on the tap an install
// is about to be credited to (see docs/fraud.md).
type FraudSignal string

// Fraud signals.
const (
	// FraudClickInjection: the install's first open came sooner after
	// the tap than FraudPolicy.MinClickToInstall, faster than a person
	// downloads and opens an app (a tap injected by another app on the
	// device once the install began).
	FraudClickInjection FraudSignal = "click_injection"
	// FraudClickFlooding: the tap's source (its /24 or /64 network, or a
	// sub-publisher parameter's value) sent at least
	// FraudPolicy.FloodMinTaps taps in the app's fingerprint window before
	// the install while fewer than FraudPolicy.FloodMaxInstallRate of
	// them were credited with an install: taps sent in bulk to catch
	// organic installs.
	FraudClickFlooding FraudSignal = "click_flooding"
	// FraudDatacenter: the tap came from an address of a hosting or
	// cloud provider's range, where no person's phone is.
	FraudDatacenter FraudSignal = "datacenter"
	// FraudTapAfterInstall: the tap is stamped after the install's own
	// first open (a late hit, or one within the matcher's clock-skew
	// allowance): it cannot have caused the install.
	FraudTapAfterInstall FraudSignal = "tap_after_install"
)

// FraudSignals lists every fraud signal, in the order they are checked
// and shown.
var FraudSignals = []FraudSignal{FraudClickInjection, FraudClickFlooding, FraudDatacenter, FraudTapAfterInstall}

// Valid reports whether s is one of FraudSignals.
func (s FraudSignal) Valid() bool {
	for _, v := range FraudSignals {
		if s == v {
			return true
		}
	}
	return false
}

// FraudAction is what an app's policy does about a fraud signal found.
type FraudAction string

// Fraud actions.
const (
	// FraudFlag keeps the attribution and records the signal on the
	// conversion's decision and in the fraud facts.
	FraudFlag FraudAction = "flag"
	// FraudReject refuses the tap: the install stays organic (a late tap
	// does not re-attribute it), its decision naming the rule and the tap.
	FraudReject FraudAction = "reject"
)

// Valid reports whether a is FraudFlag or FraudReject.
func (a FraudAction) Valid() bool { return a == FraudFlag || a == FraudReject }

// Defaults of an app's fraud policy.
const (
	DefaultMinClickToInstall   = 10 * time.Second
	DefaultFloodMinTaps        = 500
	DefaultFloodMaxInstallRate = 0.001 // 0.1%: one install per thousand taps
)

// FraudPolicy is an app's fraud settings: per signal an action, and the
// thresholds of the rules that have one.
type FraudPolicy struct {
	ClickInjection  FraudAction `json:"click_injection"`
	ClickFlooding   FraudAction `json:"click_flooding"`
	Datacenter      FraudAction `json:"datacenter"`
	TapAfterInstall FraudAction `json:"tap_after_install"`

	// MinClickToInstall is the shortest time from tap to first open that
	// is not click injection.
	MinClickToInstall time.Duration `json:"min_click_to_install"`
	// FloodMinTaps is how many taps a source must send in the app's
	// fingerprint window before its install rate is judged;
	// FloodMaxInstallRate is the rate of installs per tap below which it
	// floods (0.001: fewer than one install per thousand taps).
	FloodMinTaps        int     `json:"flood_min_taps"`
	FloodMaxInstallRate float64 `json:"flood_max_install_rate"`
}

// Action returns the policy's action for signal s.
func (p *FraudPolicy) Action(s FraudSignal) FraudAction {
	switch s {
	case FraudClickInjection:
		return p.ClickInjection
	case FraudClickFlooding:
		return p.ClickFlooding
	case FraudDatacenter:
		return p.Datacenter
	case FraudTapAfterInstall:
		return p.TapAfterInstall
	}
	return FraudFlag
}

// SetAction sets the policy's action for signal s.
func (p *FraudPolicy) SetAction(s FraudSignal, a FraudAction) {
	switch s {
	case FraudClickInjection:
		p.ClickInjection = a
	case FraudClickFlooding:
		p.ClickFlooding = a
	case FraudDatacenter:
		p.Datacenter = a
	case FraudTapAfterInstall:
		p.TapAfterInstall = a
	}
}

// SetDefaults fills an empty action with FraudFlag and zero thresholds
// with their defaults.
func (p *FraudPolicy) SetDefaults() {
	for _, s := range FraudSignals {
		if p.Action(s) == "" {
			p.SetAction(s, FraudFlag)
		}
	}
	if p.MinClickToInstall == 0 {
		p.MinClickToInstall = DefaultMinClickToInstall
	}
	if p.FloodMinTaps == 0 {
		p.FloodMinTaps = DefaultFloodMinTaps
	}
	if p.FloodMaxInstallRate == 0 {
		p.FloodMaxInstallRate = DefaultFloodMaxInstallRate
	}
}

// Validate returns an EINVALID error naming the first bad field: an
// action that is neither flag nor reject, a minimum click-to-install time
// outside 1ms to 1h, a tap count below 1, or a rate outside (0, 1].
func (p *FraudPolicy) Validate() error {
	for _, s := range FraudSignals {
		if a := p.Action(s); !a.Valid() {
			return Errorf(EINVALID, "fraud.%s: %q is not %q or %q", s, a, FraudFlag, FraudReject)
		}
	}
	if p.MinClickToInstall < time.Millisecond || p.MinClickToInstall > time.Hour {
		return Errorf(EINVALID, "fraud.min_click_to_install: must be from 1ms to 1h, not %s", p.MinClickToInstall)
	}
	if p.FloodMinTaps < 1 || p.FloodMinTaps > 1_000_000_000 {
		return Errorf(EINVALID, "fraud.flood_min_taps: must be from 1 to 1000000000, not %d", p.FloodMinTaps)
	}
	if math.IsNaN(p.FloodMaxInstallRate) || p.FloodMaxInstallRate <= 0 || p.FloodMaxInstallRate > 1 {
		return Errorf(EINVALID, "fraud.flood_max_install_rate: must be more than 0 and at most 1, not %v", p.FloodMaxInstallRate)
	}
	return nil
}

// FraudFinding is one fraud signal found on the tap an install was (or
// would have been) credited to: recorded on the conversion's Decision and
// its AttributionChange, and counted in FactFraud.
type FraudFinding struct {
	Signal FraudSignal `json:"signal"`
	// HitID and LinkID name the tap; Method is the match it came by.
	HitID  string      `json:"hit_id"`
	LinkID int64       `json:"link_id"`
	Method MatchMethod `json:"method"`
	// Value is what was measured ("3.2s", "203.0.113.0/24 in AWS",
	// "network 203.0.113.0/24: 812 taps, 0 installs"); Threshold the
	// rule's limit it crossed ("10s").
	Value     string      `json:"value"`
	Threshold string      `json:"threshold,omitempty"`
	Action    FraudAction `json:"action"`
}

// String says f in a sentence's words: "click_injection (3.2s, limit
// 10s): reject".
func (f FraudFinding) String() string {
	if f.Threshold == "" {
		return fmt.Sprintf("%s (%s): %s", f.Signal, f.Value, f.Action)
	}
	return fmt.Sprintf("%s (%s, limit %s): %s", f.Signal, f.Value, f.Threshold, f.Action)
}

// Rejecting returns the first finding of fs whose action is FraudReject,
// or nil.
func Rejecting(fs []FraudFinding) *FraudFinding {
	for i := range fs {
		if fs[i].Action == FraudReject {
			return &fs[i]
		}
	}
	return nil
}

// FraudCount is how many times a fraud signal was found with one action
// over a report's range.
type FraudCount struct {
	Signal FraudSignal `json:"signal"`
	Action FraudAction `json:"action"`
	Count  int64       `json:"count"`
}
