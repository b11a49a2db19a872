package fingerprint

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"tapline"
)

// Weights of the signals a fingerprint score adds up, in natural-log
// likelihood ratios: how much more likely the value pair is when the tap
// and the install are one device than when they are two unrelated devices
// on one network. They are round figures from the shares of models,
// OS versions and locales among phones (the commonest model is about a
// tenth of phones, the commonest iOS minor a fifth, the commonest locale
// two fifths), not fitted to any population.
const (
	WeightModel          = 3.0  // the same Android model, or the same Apple hardware identifier
	WeightOSMajor        = 0.8  // the same OS major only
	WeightOSMinor        = 1.6  // the same major and minor
	WeightOSPatch        = 2.2  // the same version to the patch
	WeightOSUpdated      = 0.4  // same major, the install's newer: an update between tap and install
	WeightLocale         = 0.8  // the browser's first language and region are the device's locale
	WeightLanguage       = 0.3  // the same language, another (or no) region
	WeightLanguageDiffer = -2.0 // another language: people rarely browse in another than their phone's
)

// Candidate is a hit the fingerprint decision weighs for an install.
type Candidate struct {
	Hit       *tapline.Hit
	Claimed   bool   // already credited with another install: counts as a device on the network, never chosen
	ClaimedBy string // that install's id, for the record
	// Window is the fingerprint window in force for the hit (its link's
	// own, else its app's), against which its click-to-install time is
	// weighed; 0 is Decide's window.
	Window time.Duration

	// Filled in by Weigh.
	Fits     bool             // Compatible with the install
	Evidence float64          // the sum of its signals' weights
	Signals  []tapline.Signal // every signal compared, with its weight
	SameAs   int              // index of the newer candidate it is the same device as, or -1
}

// Decision is the outcome of a fingerprint decision.
type Decision struct {
	Best    int     // index of the best candidate, or -1 when none is compatible and unclaimed
	Score   float64 // the best's decision score: log-odds it caused the install against everything else
	Devices int     // distinct tapping devices on the network in the window
	Rivals  int     // other devices' unclaimed candidates the best was weighed against
}

// Decide weighs the candidates for install e, all hits on its network
// within their windows before it (compatible or not, newest first), and
// returns the best one's decision score: the log-odds that it, and not
// another candidate's device nor an organic install from the network,
// caused the install. A candidate's click-to-install time is weighed
// against its Window, or window when it has none.
//
//	score = evidence(best) − ln( devices + Σ_rivals e^evidence(rival) )
//
// Evidence is the sum of the signal weights (model, OS version, language,
// click-to-install time against delays). devices is the number of
// distinct tapping devices on the network in the window, the organic
// explanation: an install from a carrier NAT address with 400 tapping
// devices is likely one of theirs or of the devices behind it that never
// tapped; from a home address with one, likely its tap. Taps of one device
// (the same User-Agent, language and model) count once, by the newest.
// Incompatible candidates (Compatible) count as devices and are never
// chosen; so are claimed ones.
func Decide(cands []Candidate, e *tapline.Event, window time.Duration, pop *Population) Decision {
	Weigh(cands, e, window, pop)
	return Choose(cands)
}

// Weigh is Decide's first half: it marks each candidate's SameAs and Fits
// and, for the ones that fit and stand for their device, its Signals and
// Evidence (a candidate that does not fit gets its Signals only when
// asked, by CandidateSignals). It returns the number of distinct tapping
// devices. Between Weigh and Choose a caller may mark candidates Claimed,
// checking only the strongest (see Order).
func Weigh(cands []Candidate, e *tapline.Event, window time.Duration, pop *Population) int {
	type device struct{ ua, lang, model string }
	// What a candidate's evidence owes to its device's values, the same
	// for every tap of one model, OS version and language: computed once.
	type values struct {
		platform               tapline.Platform
		model, osVersion, lang string
	}
	type fit struct {
		ok       bool
		evidence float64
	}
	first := make(map[device]int, len(cands))
	fits := map[values]fit{}
	delays := pop.delaySnapshot().table()
	for i := range cands {
		c := &cands[i]
		h := c.Hit
		c.SameAs = -1
		if j, ok := first[device{h.UserAgent, h.AcceptLanguage, h.Model}]; ok {
			c.SameAs = j
		} else {
			first[device{h.UserAgent, h.AcceptLanguage, h.Model}] = i
		}
		v := values{h.Platform, h.Model, h.OSVersion, h.AcceptLanguage}
		f, ok := fits[v]
		if !ok {
			f.ok = Compatible(h, e)
			if f.ok {
				f.evidence = deviceEvidence(staticSignals(h, e, pop))
			}
			fits[v] = f
		}
		c.Fits = f.ok
		if c.Fits && c.SameAs < 0 {
			w := window
			if c.Window > 0 {
				w = c.Window
			}
			c.Evidence = f.evidence
			if w > 0 {
				c.Evidence += delays[bucket(max(e.Time.Sub(h.Time), 0), w)]
			}
		}
	}
	return len(first)
}

// Explain fills in the signals of a weighed candidate that fits, each with
// its weight, as Evidence lists them: for the decision's record.
func Explain(c *Candidate, e *tapline.Event, window time.Duration, pop *Population) {
	if c.Window > 0 {
		window = c.Window
	}
	c.Signals, _ = Evidence(c.Hit, e, window, pop)
}

// Order returns the indexes of the candidates Choose may choose (they fit,
// stand for their device and are not claimed yet), strongest evidence
// first.
func Order(cands []Candidate) []int {
	var out []int
	for i := range cands {
		if c := &cands[i]; c.Fits && c.SameAs < 0 && !c.Claimed {
			out = append(out, i)
		}
	}
	slices.SortStableFunc(out, func(a, b int) int { return cmp.Compare(cands[b].Evidence, cands[a].Evidence) })
	return out
}

// Choose is Decide's second half, over weighed candidates: the best
// unclaimed one and its score against the rest.
func Choose(cands []Candidate) Decision {
	devices := 0
	for i := range cands {
		if cands[i].SameAs < 0 {
			devices++
		}
	}
	d := Decision{Best: -1, Devices: max(devices, 1)}
	order := Order(cands)
	if len(order) == 0 {
		return d
	}
	d.Best = order[0]
	rest := float64(d.Devices) // the organic explanation
	for _, i := range order[1:] {
		d.Rivals++
		rest += math.Exp(cands[i].Evidence)
	}
	d.Score = cands[d.Best].Evidence - math.Log(rest)
	return d
}

// CandidateSignals returns c's signals against e: those Weigh found, or,
// for a candidate it did not weigh, the comparison without weights.
func CandidateSignals(c *Candidate, e *tapline.Event) []tapline.Signal {
	if c.Signals != nil {
		return c.Signals
	}
	return Signals(c.Hit, e)
}

// SameDevice reports whether two taps look like one device's: the same
// network, User-Agent, language and model.
func SameDevice(a, b *tapline.Hit) bool {
	return a.Fingerprint == b.Fingerprint && sameDevice(a, b)
}

// sameDevice reports whether two taps on one network look like one
// device: the same User-Agent, language and model.
func sameDevice(a, b *tapline.Hit) bool {
	return a.UserAgent == b.UserAgent && a.AcceptLanguage == b.AcceptLanguage && a.Model == b.Model
}

// Evidence compares hit h with install e, a fingerprint window apart at
// most, and returns every signal with its weight and the weights' sum. A
// nil pop weighs by the priors alone.
func Evidence(h *tapline.Hit, e *tapline.Event, window time.Duration, pop *Population) ([]tapline.Signal, float64) {
	return evidence(h, e, window, pop, pop.delaySnapshot())
}

func evidence(h *tapline.Hit, e *tapline.Event, window time.Duration, pop *Population, delays *Delays) ([]tapline.Signal, float64) {
	ss := staticSignals(h, e, pop)
	ctit := e.Time.Sub(h.Time)
	ss = append(ss, tapline.Signal{
		Name: "click_to_install", Install: shortDuration(ctit), Verdict: tapline.VerdictAgree,
		Weight: delays.Weight(ctit, window),
	})
	return ss, deviceEvidence(ss)
}

// deviceEvidence sums the weights of ss.
func deviceEvidence(ss []tapline.Signal) float64 {
	var sum float64
	for _, s := range ss {
		sum += s.Weight
	}
	return sum
}

// staticSignals compares what a hit and an install reveal of the device,
// with weights: every signal but the click-to-install time.
func staticSignals(h *tapline.Hit, e *tapline.Event, pop *Population) []tapline.Signal {
	ss := Signals(h, e)
	platform := string(EventPlatform(&e.Device))
	for i := range ss {
		s := &ss[i]
		if s.Verdict != tapline.VerdictAgree {
			continue
		}
		switch s.Name {
		case "model":
			if appleClass(s.Hit) != "" && !(isAppleIdentifier(s.Hit) && isAppleIdentifier(s.Install)) {
				break // an Apple class alone ("iPhone") tells nothing
			}
			s.Weight = pop.rarity(modelKey(platform, s.Install), platform, WeightModel)
		case "os_version":
			s.Weight = pop.versionWeight(platform, s.Hit, s.Install)
		}
	}
	lang := languageSignal(h.AcceptLanguage, e.Device.Locale)
	if lang.Verdict == tapline.VerdictAgree {
		key, fallback := "l|"+localeKey(e.Device.Locale), WeightLocale
		if lang.Weight == WeightLanguage {
			key, fallback = "l|"+languageKey(e.Device.Locale), WeightLanguage
		}
		lang.Weight = pop.rarity(key, "l", fallback)
	}
	return append(ss, lang)
}

// versionWeight weighs an agreeing OS version by how rare the version is
// at the precision both sides give it; an update between tap and install
// (the install's newer) weighs WeightOSUpdated.
func (p *Population) versionWeight(platform, hit, sdk string) float64 {
	hv, sv := parseVersion(hit), parseVersion(sdk)
	n := min(len(hv), len(sv), 3)
	for i := range n {
		if hv[i] != sv[i] {
			return WeightOSUpdated
		}
	}
	fallback := [...]float64{0, WeightOSMajor, WeightOSMinor, WeightOSPatch}[n]
	return p.rarity(versionKey(platform, sv[:n]), platform, fallback)
}

// languageSignal compares the first language a browser asks for
// (Accept-Language "de-DE,de;q=0.9") with an SDK locale ("de_DE").
func languageSignal(acceptLanguage, locale string) tapline.Signal {
	first, _, _ := strings.Cut(acceptLanguage, ",")
	first, _, _ = strings.Cut(first, ";")
	hl, hr := splitLocale(first)
	sl, sr := splitLocale(locale)
	s := tapline.Signal{Name: "language", Install: strings.TrimSpace(locale), Hit: strings.TrimSpace(first), Verdict: tapline.VerdictUnknown}
	switch {
	case hl == "" || sl == "" || hl == "*":
	case hl != sl:
		s.Verdict, s.Weight = tapline.VerdictConflict, WeightLanguageDiffer
	case hr != "" && hr == sr:
		s.Verdict, s.Weight = tapline.VerdictAgree, WeightLocale
	default:
		s.Verdict, s.Weight = tapline.VerdictAgree, WeightLanguage
	}
	return s
}

// splitLocale returns the lower-case language and region of "en-US",
// "en_US" or "en".
func splitLocale(l string) (lang, region string) {
	l = strings.ToLower(strings.TrimSpace(l))
	lang, rest, _ := strings.Cut(strings.ReplaceAll(l, "_", "-"), "-")
	if len(rest) == 2 {
		region = rest
	} else if _, after, ok := strings.Cut(rest, "-"); ok && len(after) == 2 {
		region = after // "zh-hant-tw"
	}
	return lang, region
}

// shortDuration shows a click-to-install time.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0 && d > -50*time.Millisecond:
		return "0s" // not "-0s"
	case d < 0:
		return "-" + shortDuration(-d)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// Population is what the fingerprint learns of one app's installs: how
// common each model, OS version and locale is among them (Shares), and
// how long its taps take to become installs (Delays). Both begin from
// priors and weigh more of what was seen as installs come in, so the
// weights suit the app's audience. Safe for concurrent use. Memory is
// bounded: at most maxShareKeys distinct values are counted.
type Population struct {
	delays Delays

	mu     sync.Mutex
	counts map[string]float64 // "m|ios|iphone14,7", "v|ios|18.5", "l|en-us", "l|en"
	totals map[string]float64 // per platform, and "l" for locales
}

// NewPopulation returns the priors.
func NewPopulation() *Population {
	return &Population{counts: map[string]float64{}, totals: map[string]float64{}}
}

// Bounds of a Population's counts.
const (
	// sharePrior is how many installs a prior share weighs as.
	sharePrior = 100
	// maxShareKeys bounds the distinct values counted; past it, values
	// seen once are forgotten and every count is halved.
	maxShareKeys = 4096
)

// LearnInstall counts the device attributes of an install.
func (p *Population) LearnInstall(d *tapline.Device) {
	if p == nil {
		return
	}
	platform := string(EventPlatform(d))
	var keys []string
	if d.Model != "" {
		keys = append(keys, modelKey(platform, d.Model))
	}
	v := parseVersion(d.OSVersion)
	for n := 1; n <= min(len(v), 3); n++ {
		keys = append(keys, versionKey(platform, v[:n]))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.counts) >= maxShareKeys {
		for k, c := range p.counts {
			if c /= 2; c < 1 {
				delete(p.counts, k)
			} else {
				p.counts[k] = c
			}
		}
		for k := range p.totals {
			p.totals[k] /= 2
		}
	}
	for _, k := range keys {
		p.counts[k]++
	}
	p.totals[platform]++
	if d.Locale != "" {
		p.counts["l|"+localeKey(d.Locale)]++
		p.counts["l|"+languageKey(d.Locale)]++
		p.totals["l"]++
	}
}

// delaySnapshot returns a copy of the delays learned, to weigh one
// decision's candidates without taking the lock for each; the prior alone
// for a nil p.
func (p *Population) delaySnapshot() *Delays {
	d := &Delays{}
	if p == nil {
		return d
	}
	p.delays.mu.Lock()
	defer p.delays.mu.Unlock()
	d.counts, d.total = p.delays.counts, p.delays.total
	return d
}

// LearnDelay adds the click-to-install time of a deterministic match of an
// app whose fingerprint window is window.
func (p *Population) LearnDelay(ctit, window time.Duration) {
	if p != nil {
		p.delays.Learn(ctit, window)
	}
}

// rarity weighs the agreement of a value counted under key among the
// installs counted under total: the log of one over its share, the share
// drawn towards the prior share e^-fallback by sharePrior installs, within
// [minRarity, maxRarity].
func (p *Population) rarity(key, total string, fallback float64) float64 {
	if p == nil {
		return fallback
	}
	p.mu.Lock()
	n, t := p.counts[key], p.totals[total]
	p.mu.Unlock()
	share := (n + sharePrior*math.Exp(-fallback)) / (t + sharePrior)
	const minRarity, maxRarity = 0.1, 6
	return min(max(-math.Log(share), minRarity), maxRarity)
}

func modelKey(platform, model string) string {
	if isAppleIdentifier(model) {
		return "m|" + platform + "|" + strings.ToLower(model)
	}
	return "m|" + platform + "|" + squash(model)
}

func versionKey(platform string, v []int) string {
	b := []byte("v|" + platform + "|")
	for i, n := range v {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

func localeKey(l string) string {
	lang, region := splitLocale(l)
	if region == "" {
		return lang
	}
	return lang + "-" + region
}

func languageKey(l string) string {
	lang, _ := splitLocale(l)
	return lang
}

// Delays is an app's distribution of click-to-install times, learned from
// its deterministic matches (install referrer, advertising id), whose taps
// are known, and begun from a prior. Times are kept as fractions of the
// fingerprint window, so the distribution of an app whose window is six
// hours is compared at the same shape. Safe for concurrent use; the zero
// value is the prior. A nil *Delays weighs by the prior alone.
//
// The prior: of installs a tap caused, four in five follow it by a
// log-normal delay with a median of 1/144 of the window (10 minutes of a
// day) and a spread of e^1.6, the rest by an exponential delay with a mean
// of the window (a day): most installs come within the hour, some days
// later. It carries the weight of PriorWeight matches; every learned match
// adds one.
type Delays struct {
	mu     sync.Mutex
	counts [delayBuckets]float64
	total  float64
}

// Delay buckets: half-octaves of the fraction of the window, from 2^-24
// (5 ms of a day) to 2^1.
const (
	delayBuckets = 50
	delayLow     = -24.0 // log2 of the lower edge of bucket 0
	delayStep    = 0.5   // bucket width in log2 units

	// PriorWeight is how many learned matches the prior weighs as.
	PriorWeight = 200
	// maxLearned bounds the matches a Delays remembers: past it, old
	// ones fade (counts are scaled down), so the shape follows the app.
	maxLearned = 20000
)

var priorDelays = func() (p [delayBuckets]float64) {
	const mu, sigma = -4.969813299576001, 1.6 // ln(1/144)
	cdf := func(x float64) float64 {          // of the mixture, x a fraction of the window
		if x <= 0 {
			return 0
		}
		ln := 0.5 * math.Erfc(-(math.Log(x)-mu)/(sigma*math.Sqrt2))
		ex := 1 - math.Exp(-x)
		return 0.8*ln + 0.2*ex
	}
	for b := range p {
		lo, hi := bucketEdges(b)
		if b == 0 {
			lo = 0
		}
		p[b] = cdf(hi) - cdf(lo)
	}
	return p
}()

func bucketEdges(b int) (lo, hi float64) {
	return math.Exp2(delayLow + float64(b)*delayStep), math.Exp2(delayLow + float64(b+1)*delayStep)
}

// Learn adds the click-to-install time of a deterministic match of an app
// whose fingerprint window is window.
func (d *Delays) Learn(ctit, window time.Duration) {
	if d == nil || window <= 0 || ctit < 0 || ctit > 2*window {
		return
	}
	b := bucket(ctit, window)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total >= maxLearned {
		for i := range d.counts {
			d.counts[i] /= 2
		}
		d.total /= 2
	}
	d.counts[b]++
	d.total++
}

func bucket(ctit, window time.Duration) int {
	x := float64(max(ctit, time.Millisecond)) / float64(window)
	b := int(math.Floor((math.Log2(x) - delayLow) / delayStep))
	return min(max(b, 0), delayBuckets-1)
}

// Weight returns the log-likelihood ratio of a click-to-install time ctit
// within window: its density among installs taps caused (at its peak for
// delays shorter than the peak's) against the uniform density of a tap
// that happens to precede an unrelated install.
// A tap at most the allowed clock skew after the install is weighed as an
// immediate install.
func (d *Delays) Weight(ctit, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	t := d.table()
	return t[bucket(max(ctit, 0), window)]
}

// table returns the weight of each delay bucket: the log of its density,
// or of any longer delay's if higher (a shorter delay is never weaker
// evidence than a longer one, however rare installs within seconds are;
// the fraud rules judge those), per window, within [-5, 6].
func (d *Delays) table() *[delayBuckets]float64 {
	var counts [delayBuckets]float64
	total := float64(PriorWeight)
	if d != nil {
		d.mu.Lock()
		counts = d.counts
		total += d.total
		d.mu.Unlock()
	}
	var t [delayBuckets]float64
	density := 0.0
	for b := delayBuckets - 1; b >= 0; b-- {
		lo, hi := bucketEdges(b)
		if b == 0 {
			lo = 0
		}
		density = max(density, (priorDelays[b]*PriorWeight+counts[b])/total/(hi-lo))
		const floor, ceil = -5, 6
		t[b] = min(max(math.Log(density), floor), ceil)
	}
	return &t
}

// Learned returns how many matches d has learned from.
func (d *Delays) Learned() int {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return int(d.total)
}

// Explain says a fingerprint decision in a sentence.
func (dec Decision) Explain(best *Candidate, minScore float64) string {
	return fmt.Sprintf("score %.2f (evidence %.2f against %d tapping device(s) on the network and %d rival tap(s)); the app's minimum is %.2f",
		dec.Score, best.Evidence, dec.Devices, dec.Rivals, minScore)
}
