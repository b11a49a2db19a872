package tapline

import "time"

// MatchMethod tells how an install was joined to a hit.
type MatchMethod string

// Match methods, strongest first.
const (
	MethodReferrer    MatchMethod = "referrer"       // hit id in the Play install referrer
	MethodAdID        MatchMethod = "advertising_id" // same IDFA or GAID on hit and install
	MethodFingerprint MatchMethod = "fingerprint"    // same IP and device attributes
	MethodOrganic     MatchMethod = "organic"        // no hit matched
)

// Attribution is the outcome of matching one install.
type Attribution struct {
	HitID   string      `json:"hit_id,omitempty"`
	LinkID  int64       `json:"link_id,omitempty"`
	Method  MatchMethod `json:"method"`
	HitTime time.Time   `json:"hit_time,omitzero"`
	// HitParams are the attributed hit's Params (its link's query
	// parameters), copied at the match so that the conversion answers for
	// them without the hit, which leaves the raw store long before the
	// conversion does. nil for a hit without parameters, and for
	// conversions stored before tapline copied them: read the hit.
	HitParams map[string]string `json:"hit_params,omitempty"`
}

// Conversion records the attribution of one install. It is kept forever.
// Its ID derives from the install event's ID, so a replay rewrites the same
// conversion.
type Conversion struct {
	ID          string    `json:"id"`
	AppID       int64     `json:"app_id"`
	EventID     string    `json:"event_id"`
	InstallID   string    `json:"install_id"`
	InstallTime time.Time `json:"install_time"`
	Platform    Platform  `json:"platform"`
	// Fingerprint is the install's fingerprint with its address masked
	// (fingerprint.MaskFingerprint: "203.0.113.0/24|ios"), as the matcher
	// stores it: a conversion is kept forever. Conversions stored before
	// tapline masked it may hold the address whole until they are
	// rewritten or erased. Erase empties it.
	Fingerprint string `json:"fingerprint"`
	// AdID is the install's advertising id (normalised) while the matcher
	// holds the conversion, for the conversions table's keyed hash of it.
	// No store keeps it: the raw stores drop it (it is not even encoded
	// as JSON) and the conversions table keeps only the hash, so a
	// conversion read back has none.
	AdID string `json:"-"`
	Attribution

	// ClickToInstall is InstallTime minus HitTime for a matched install.
	ClickToInstall time.Duration `json:"click_to_install,omitempty"`

	// History lists every change of attribution, oldest first: the
	// install's own match, then each re-attribution by a late hit. A replay
	// of the bus record at a change's position emits that change's fact
	// deltas again instead of matching anew, so a crash between the raw
	// store and the fact store neither loses nor double-counts.
	History   []AttributionChange `json:"history"`
	UpdatedAt time.Time           `json:"updated_at"`

	// Decision explains the current attribution; nil for conversions
	// stored before tapline recorded decisions.
	Decision *Decision `json:"decision,omitempty"`

	// Reinstall is set when the install was a reinstall: the device had
	// installed the app before, within the app's ReinstallWindow. Its
	// facts count a reinstall, never an install (see Reinstall).
	Reinstall *Reinstall `json:"reinstall,omitempty"`
}

// Reinstall says how an install was found to be a reinstall.
type Reinstall struct {
	// Of is the conversion of the device's earlier install.
	Of string `json:"of"`
	// By names the identifier the two installs share: ReinstallByAdID,
	// ReinstallByVendorID or ReinstallByInstallID.
	By string `json:"by"`
	// Reattributed is true when the reinstall was matched to a tap of its
	// own (App.ReattributeReinstalls); false when it kept the earlier
	// install's attribution, which a late tap then never changes.
	Reattributed bool `json:"reattributed,omitempty"`
}

// Identifiers a reinstall is recognised by.
const (
	ReinstallByAdID      = "advertising_id" // the same IDFA or GAID, not limited
	ReinstallByVendorID  = "vendor_id"      // the same IDFV (iOS identifierForVendor)
	ReinstallByInstallID = "install_id"     // the same install id (the SDK kept it)
)

// KeepsAttribution reports whether c is a reinstall that keeps its earlier
// install's attribution: a late tap never re-attributes it.
func (c *Conversion) KeepsAttribution() bool {
	return c.Reinstall != nil && !c.Reinstall.Reattributed
}

// AttributionChange is one step in a conversion's history.
type AttributionChange struct {
	By   string       `json:"by"`             // bus position of the record that made it
	From *Attribution `json:"from,omitempty"` // nil for the install's own match
	To   Attribution  `json:"to"`
	At   time.Time    `json:"at"`
	// Fraud are the fraud signals found on the tap of To (or, when the
	// change made the install organic by rejecting a tap, on that tap):
	// a replay of the change counts them again (FactFraud).
	Fraud []FraudFinding `json:"fraud,omitempty"`
	// Moved are the installation's events counted under From when the
	// change was made, moved by it to To (at most MaxMovedEvents): their
	// events, revenue and cohort revenue follow the install to its new
	// link, exactly once under replay like the rest of the change.
	Moved []MovedEvent `json:"moved,omitempty"`
}

// MovedEvent is an event of an installation a re-attribution moved from
// the replaced attribution to the new one, with what its fact deltas need:
// kept on the change so that a replay moves exactly the same events.
type MovedEvent struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Kind is the event's kind, for the postbacks triggered by kind;
	// empty in changes recorded before tapline kept it.
	Kind    EventKind `json:"kind,omitempty"`
	Time    time.Time `json:"time"`
	Revenue *Revenue  `json:"revenue,omitempty"`
}

// MaxMovedEvents bounds the events one re-attribution moves: an
// installation's events past it (oldest first) stay under the attribution
// they were counted under.
const MaxMovedEvents = 500

// CountedUnder returns the hit id ("" organic) the installation's event e
// is counted under before the change at index n of c's history: where it
// was first counted (Event.CountedUnder; the install's own match when not
// recorded), then moved by every earlier change that lists it.
func (c *Conversion) CountedUnder(e *Event, n int) string {
	cur := ""
	if e.CountedUnder != nil {
		cur = *e.CountedUnder
	} else if len(c.History) > 0 {
		cur = c.History[0].To.HitID
	}
	for _, ch := range c.History[:min(n, len(c.History))] {
		for _, mv := range ch.Moved {
			if mv.ID == e.ID {
				cur = ch.To.HitID
				break
			}
		}
	}
	return cur
}

// AttributionOf returns the attribution of c's history whose hit is hitID
// ("" organic): the one an event counted under it was counted with.
func (c *Conversion) AttributionOf(hitID string) Attribution {
	for i := len(c.History) - 1; i >= 0; i-- {
		ch := &c.History[i]
		if ch.To.HitID == hitID {
			return ch.To
		}
		if ch.From != nil && ch.From.HitID == hitID {
			return *ch.From
		}
	}
	return Attribution{Method: MethodOrganic}
}

// ChangeBy returns the change made by the record at position pos, or nil.
func (c *Conversion) ChangeBy(pos string) *AttributionChange {
	for i := range c.History {
		if c.History[i].By == pos {
			return &c.History[i]
		}
	}
	return nil
}

// Follows reports whether c may replace stored (nil: none stored) in a
// raw store: a new conversion with its install's own change, one more
// change than stored, or the stored history again (an idempotent retry).
// Anything else means another writer changed the conversion since c was
// read from it.
func (c *Conversion) Follows(stored *Conversion) bool {
	by := func(cv *Conversion) func(int) string {
		return func(i int) string { return cv.History[i].By }
	}
	if stored == nil {
		return follows(len(c.History), -1, by(c), nil)
	}
	return follows(len(c.History), len(stored.History), by(c), by(stored))
}

// follows is the rule of Conversion.Follows and FunnelState.Follows for a
// history of n changes replacing a stored one of m (-1: none stored); by
// and storedBy return the position that made a change: a new history of
// at most one change, one change more than stored, or the stored history
// again, each agreeing with the stored one on its last change.
func follows(n, m int, by, storedBy func(int) string) bool {
	switch {
	case m < 0:
		return n <= 1
	case m == n-1:
		return n == 1 || storedBy(n-2) == by(n-2)
	case m == n:
		return n == 0 || storedBy(n-1) == by(n-1)
	}
	return false
}

// ConversionID returns the conversion id for the install event eventID.
func ConversionID(eventID string) string { return "cv-" + eventID }

// Decision explains a conversion's attribution: the rule that chose it,
// the signals the install and the chosen hit were compared on, and the
// candidates considered, the chosen one first and the others with why
// they lost. It grows with the matcher: a rule or signal it does not know
// is shown as it is.
type Decision struct {
	// Rule names the rule applied (the Rule constants); Reason says it in
	// a sentence with this install's values.
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	// Window is the attribution window in force for the rule and the
	// chosen hit (the click or fingerprint window of its link, else of the
	// app, when the decision was made); 0 when none applies.
	Window time.Duration `json:"window,omitempty"`
	// Signals compares the install with the chosen hit; none for an
	// organic install (its losing candidates say what did not fit).
	Signals []Signal `json:"signals,omitempty"`
	// Candidates are at most MaxDecisionCandidates hits, the chosen first;
	// Considered counts every candidate looked at.
	Candidates []Candidate `json:"candidates,omitempty"`
	Considered int         `json:"considered"`

	// Score is the fingerprint score of the chosen candidate or, when the
	// rule is RuleBelowMinScore, of the best one, which fell short of
	// MinScore, the app's fingerprint_min_score in force. 0 for other
	// rules. See fingerprint.Score for what a score is.
	Score    float64 `json:"score,omitempty"`
	MinScore float64 `json:"min_score,omitempty"`

	// Fraud lists the fraud signals found on the tap the rule chose,
	// each with the action the app's policy took: flagged ones kept the
	// attribution; a rejecting one made the install organic (Rule
	// RuleFraud).
	Fraud []FraudFinding `json:"fraud,omitempty"`
}

// Scored reports whether a fingerprint score took part in d: the score
// was compared with MinScore, which is then never 0 (an app's 0 means
// DefaultFingerprintMinScore). False for decisions by other rules and for
// those stored before tapline scored fingerprints.
func (d *Decision) Scored() bool { return d != nil && d.MinScore != 0 }

// Rules a Decision names.
const (
	RuleReferrer    = "referrer"       // the install referrer names a hit in the click window
	RuleAdID        = "advertising_id" // newest hit with the install's advertising id in the click window
	RuleFingerprint = "fingerprint"    // newest unclaimed compatible hit with the install's fingerprint in its window
	RuleLateHit     = "late_hit"       // a hit consumed after the install claimed it by a stronger or newer match
	RuleOrganic     = "organic"        // no candidate fitted
	// RuleReinstall: the device installed the app before, within the
	// reinstall window; the reinstall keeps that install's attribution.
	RuleReinstall = "reinstall"
	// RuleReengagement: an open of an installed app after a tap on a
	// re-engagement link (Reengagement.Decision).
	RuleReengagement = "reengagement"

	// The best fingerprint candidate scored under the app's
	// fingerprint_min_score: organic.
	RuleBelowMinScore = "fingerprint_below_min_score"
	RuleFraud         = "fraud" // the tap a rule chose was rejected by a fraud rule: organic
)

// MaxDecisionCandidates bounds a Decision's Candidates.
const MaxDecisionCandidates = 5

// Verdict is how one signal compared.
type Verdict string

// Verdicts.
const (
	VerdictAgree    Verdict = "agree"
	VerdictUnknown  Verdict = "unknown" // one side does not reveal it
	VerdictConflict Verdict = "conflict"
)

// Signal is one signal compared between an install and a hit, with both
// values.
type Signal struct {
	Name    string  `json:"name"`
	Install string  `json:"install,omitempty"`
	Hit     string  `json:"hit,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Weight is what the signal added to a fingerprint score (negative:
	// took away); 0 for signals a score does not use.
	Weight float64 `json:"weight,omitempty"`
}

// Candidate is one hit considered for an install.
type Candidate struct {
	HitID   string      `json:"hit_id"`
	LinkID  int64       `json:"link_id"`
	HitTime time.Time   `json:"hit_time"`
	Method  MatchMethod `json:"method"`
	Chosen  bool        `json:"chosen,omitempty"`
	// Score is a fingerprint candidate's score (fingerprint.Score); 0 for
	// other methods.
	Score float64 `json:"score,omitempty"`
	// Reason says why a candidate lost (or, for the chosen one, why it won).
	Reason string `json:"reason"`
}

// AddCandidate appends c to d's candidates while there is room, and counts
// it as considered either way.
func (d *Decision) AddCandidate(c Candidate) {
	d.Considered++
	if len(d.Candidates) < MaxDecisionCandidates {
		d.Candidates = append(d.Candidates, c)
	}
}
