package loadgen

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"tapline"
)

// Config shapes a generated population. NewConfig returns realistic
// defaults; the zero value of a share means none.
type Config struct {
	Seed uint64

	// TappingDevices tap at least once; OrganicDevices install without
	// ever tapping.
	TappingDevices int
	OrganicDevices int

	// Period is the simulated span over which first taps and organic
	// installs are spread; Tail is how long after it installs and events
	// still happen (later ones are left out, as not yet happened).
	Period time.Duration
	Tail   time.Duration

	Links []string // tracking link slugs taps are spread over (Zipf)

	IOSShare      float64 // share of iPhones; the rest are Android phones
	InstallRate   float64 // share of tapping devices that install
	IPv6Share     float64 // share of devices whose cellular network is IPv6
	HomeShare     float64 // share of devices with a home Wi-Fi address
	CellularShare float64 // chance that an action goes over cellular rather than Wi-Fi
	ChangeIPShare float64 // chance that the install comes over the other network than the tap
	DevicesPerNAT float64 // mean devices behind one carrier-grade NAT address
	AdIDTapShare  float64 // share of taps whose link carries the device's advertising id (when it has one)
	ReferrerShare float64 // share of Android installs after a tap that report the Play install referrer
	JSONShare     float64 // share of devices whose SDK uses the JSON batch API instead of the Tapstream form
	BuyerShare    float64 // share of installed devices that purchase

	// InAppShare is the share of taps from an in-app browser (Facebook,
	// Instagram), whose User-Agent carries model and OS version; the rest
	// come from the platform's browsers. DelayedShare is the share of
	// tap-driven installs whose delay comes from the tail of days rather
	// than the minutes most installs take.
	InAppShare   float64
	DelayedShare float64
	// LaterOrganicShare is the share of tapping devices their taps did not
	// bring to install that install organically later anyway (word of
	// mouth, a store search): the tap is in their past, not their cause.
	LaterOrganicShare float64
	// OtherLinks are tracking links of another app; OtherTapShare of the
	// organic devices tap one of them before installing this app.
	OtherLinks    []string
	OtherTapShare float64
	// LanguageMismatch is the share of taps whose browser asks for another
	// language than the device's locale.
	LanguageMismatch float64

	Windows Windows // attribution windows of the app under test (the truth does not use them)
}

// Windows are attribution windows in simulated time.
type Windows struct {
	Click       time.Duration
	Fingerprint time.Duration
	Lateness    time.Duration
}

// DefaultWindows are tapline's default windows.
func DefaultWindows() Windows {
	return Windows{Click: tapline.DefaultClickWindow, Fingerprint: tapline.DefaultFingerprintWindow, Lateness: tapline.DefaultLatenessHorizon}
}

// Scaled returns the windows divided by compression, rounded to whole
// seconds (at least one), as they must be configured on an app replayed in
// real time compressed by that factor.
func (w Windows) Scaled(compression float64) Windows {
	s := func(d time.Duration) time.Duration {
		if compression <= 0 {
			return d
		}
		return max(time.Second, (time.Duration(float64(d)/compression) + time.Second/2).Truncate(time.Second))
	}
	return Windows{Click: s(w.Click), Fingerprint: s(w.Fingerprint), Lateness: s(w.Lateness)}
}

// NewConfig returns a population of n tapping devices with defaults drawn
// from typical mobile campaigns.
func NewConfig(seed uint64, n int) Config {
	return Config{
		Seed:           seed,
		TappingDevices: n,
		OrganicDevices: n * 3 / 10,
		Period:         24 * time.Hour,
		Tail:           24 * time.Hour,
		Links:          []string{"lg-spring", "lg-social", "lg-search", "lg-video"},
		IOSShare:       0.55,
		InstallRate:    0.4,
		IPv6Share:      0.4,
		HomeShare:      0.8,
		CellularShare:  0.6,
		ChangeIPShare:  0.15,
		DevicesPerNAT:  12,
		AdIDTapShare:   0.3,
		ReferrerShare:  0.9,
		JSONShare:      0.3,
		BuyerShare:     0.1,

		InAppShare:        0.45,
		DelayedShare:      0.1,
		LaterOrganicShare: 0.05,
		OtherTapShare:     0.3,
		LanguageMismatch:  0.03,

		Windows: DefaultWindows(),
	}
}

// NewHardConfig returns the second population: one loadgen's defaults are
// not tuned to. More taps come from in-app browsers, carrier NAT addresses
// are three times as crowded, many more installs come days after the tap,
// fewer Android installs carry the referrer and fewer taps an advertising
// id, so fingerprinting carries more of the weight.
func NewHardConfig(seed uint64, n int) Config {
	c := NewConfig(seed, n)
	c.OrganicDevices = n / 2
	c.IOSShare = 0.65
	c.IPv6Share = 0.25
	c.DevicesPerNAT = 36
	c.HomeShare = 0.6
	c.CellularShare = 0.75
	c.ChangeIPShare = 0.2
	c.AdIDTapShare = 0.15
	c.ReferrerShare = 0.6
	c.InAppShare = 0.7
	c.DelayedShare = 0.3
	c.LaterOrganicShare = 0.1
	c.OtherTapShare = 0.5
	c.LanguageMismatch = 0.06
	return c
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.TappingDevices < 0 || c.OrganicDevices < 0 || c.TappingDevices+c.OrganicDevices == 0:
		return fmt.Errorf("loadgen: need devices, got %d tapping and %d organic", c.TappingDevices, c.OrganicDevices)
	case c.Period <= 0 || c.Tail < 0:
		return fmt.Errorf("loadgen: Period must be positive and Tail not negative")
	case len(c.Links) == 0:
		return fmt.Errorf("loadgen: Links is empty")
	case c.Windows.Click <= 0 || c.Windows.Fingerprint <= 0:
		return fmt.Errorf("loadgen: Windows must be positive")
	case c.DevicesPerNAT < 1:
		return fmt.Errorf("loadgen: DevicesPerNAT must be at least 1")
	}
	return nil
}

// Device is one simulated phone with its app installation.
type Device struct {
	ID        int
	Platform  tapline.Platform
	OSVersion string // "17.4.1", "14"
	Model     string // "iPhone15,2", "SM-S918B"
	Vendor    string
	Locale    string
	InstallID string // the SDK's uuid
	AdID      string // IDFA or GAID, "" when the device limits ad tracking
	JSON      bool   // its SDK uses the JSON batch API
	Organic   bool   // it never taps

	cellV4  netip.Addr   // carrier-grade NAT address, or invalid
	cellV6  netip.Prefix // its /64 when the carrier is IPv6
	home    netip.Addr   // home Wi-Fi address, or invalid
	browser string       // User-Agent of its default browser
}

// DefaultUserAgent is the User-Agent of the device's default browser
// (Safari or Chrome), which a naive matcher compares taps against.
func (d *Device) DefaultUserAgent() string { return d.browser }

// Tap is one tap on a tracking link.
type Tap struct {
	N         int // its number, sent as lg_tap
	Device    int
	At        time.Duration
	Link      string
	IP        string
	UserAgent string
	// Hints are the high-entropy client hints a Chromium browser sends
	// when the redirect asks for them (Critical-CH): it retries the tap
	// with them. nil for browsers without client hints.
	Hints    map[string]string
	Language string // Accept-Language
	AdID     string // the advertising id in the link, or ""
	OtherApp bool   // a tap on another app's link (Config.OtherLinks)
}

// Install is the first open of the app on a device.
type Install struct {
	N        int
	Device   int
	At       time.Duration
	IP       string
	Referrer bool // the SDK reports the Play install referrer of the last tap
	// Truth is the number of the tap that caused it, or Organic: the
	// generator's cause, whatever the attribution windows say.
	Truth int
}

// Event is an open or a purchase after an install.
type Event struct {
	N            int
	Device       int
	At           time.Duration
	IP           string
	Kind         tapline.EventKind // KindOpen or KindPurchase
	PriceCents   int64
	Currency     string
	Product      string
	Transaction  string
	InstallIndex int // index into Workload.Installs
}

// ActionKind tells what an Action does.
type ActionKind uint8

// Action kinds.
const (
	ActTap ActionKind = iota
	ActInstall
	ActEvent
)

// Action is one step of the timeline: an index into Taps, Installs or
// Events.
type Action struct {
	At    time.Duration
	Kind  ActionKind
	Index int
	Dev   int
}

// Workload is a generated population and its timeline.
type Workload struct {
	Config   Config
	Devices  []*Device
	Taps     []Tap
	Installs []Install
	Events   []Event
	Timeline []Action // every action, in simulated time order
}

// Span returns the simulated time of the last action.
func (w *Workload) Span() time.Duration {
	if len(w.Timeline) == 0 {
		return 0
	}
	return w.Timeline[len(w.Timeline)-1].At
}

// Generate builds the workload of cfg. The same Config gives the same
// workload.
func Generate(cfg Config) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x7461706c696e65))
	w := &Workload{Config: cfg}
	total := cfg.TappingDevices + cfg.OrganicDevices

	// Carrier-grade NAT addresses, each shared by a Zipf-distributed number
	// of devices: a few addresses carry hundreds of phones.
	nNAT := max(1, int(float64(total)*(1-cfg.IPv6Share)/cfg.DevicesPerNAT))
	nat := rand.NewZipf(r, 1.2, 4, uint64(nNAT-1))
	natAddr := func(i uint64) netip.Addr { // 100.64.0.0/10, the shared address space
		return netip.AddrFrom4([4]byte{100, byte(64 + (i>>16)&63), byte(i >> 8), byte(i)})
	}
	// Households of 1 to 4 devices on 198.18.0.0/15 (benchmarking range).
	var homes []netip.Addr
	newHome := func() netip.Addr {
		i := len(homes)
		a := netip.AddrFrom4([4]byte{198, byte(18 + (i>>16)&1), byte(i >> 8), byte(i)})
		homes = append(homes, a)
		return a
	}

	for i := range total {
		d := newDevice(r, i, cfg)
		d.Organic = i >= cfg.TappingDevices
		if r.Float64() < cfg.IPv6Share {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8 // 2001:db8::/32, documentation
			b[4], b[5], b[6], b[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			d.cellV6 = netip.PrefixFrom(netip.AddrFrom16(b), 64)
		} else {
			d.cellV4 = natAddr(nat.Uint64())
		}
		if r.Float64() < cfg.HomeShare {
			if len(homes) > 0 && r.Float64() < 0.35 {
				d.home = homes[r.IntN(len(homes))] // another member of a household
			} else {
				d.home = newHome()
			}
		}
		w.Devices = append(w.Devices, d)
	}

	links := rand.NewZipf(r, 1.5, 1, uint64(len(cfg.Links)-1))
	horizon := cfg.Period + cfg.Tail
	for _, d := range w.Devices {
		if d.Organic {
			at := time.Duration(r.Int64N(int64(cfg.Period)))
			if len(cfg.OtherLinks) > 0 && r.Float64() < cfg.OtherTapShare {
				// An ad of another app, tapped before installing this one
				// of its own accord.
				tapAt := time.Duration(r.Int64N(int64(at) + 1))
				w.addTap(r, d, tapAt, cfg.OtherLinks[r.IntN(len(cfg.OtherLinks))], cellular(r, cfg), true)
			}
			w.addInstall(d, at, ipOf(r, d, cellular(r, cfg)), Organic, false)
			continue
		}
		// One tap for most, a few more for some, hours apart.
		taps := 1
		for taps < 4 && r.Float64() < 0.2 {
			taps++
		}
		at := time.Duration(r.Int64N(int64(cfg.Period)))
		onCell := cellular(r, cfg)
		last := -1
		for k := range taps {
			if k > 0 {
				at += time.Duration(r.ExpFloat64() * float64(2*time.Hour))
			}
			if at >= horizon {
				break
			}
			last = w.addTap(r, d, at, cfg.Links[links.Uint64()], onCell, false)
		}
		if last < 0 {
			continue
		}
		if r.Float64() >= cfg.InstallRate {
			// Not brought to install by its taps; some install later of
			// their own accord.
			if r.Float64() < cfg.LaterOrganicShare {
				from := w.Taps[last].At + time.Hour
				if from < horizon {
					inst := from + time.Duration(r.Int64N(int64(horizon-from)))
					w.addInstall(d, inst, ipOf(r, d, cellular(r, cfg)), Organic, false)
				}
			}
			continue
		}
		// The taps brought it to the store; the last one, the one that
		// opened the store page, is the cause, however long the install
		// takes after it.
		inst := w.Taps[last].At + installDelay(r, cfg.DelayedShare)
		if inst >= horizon {
			continue
		}
		if r.Float64() < cfg.ChangeIPShare {
			onCell = !onCell
		}
		ref := d.Platform == tapline.PlatformAndroid && r.Float64() < cfg.ReferrerShare
		w.addInstall(d, inst, ipOf(r, d, onCell), last, ref)
	}

	// Opens and purchases after each install.
	for ii, in := range w.Installs {
		d := w.Devices[in.Device]
		at := in.At
		for range 1 + int(r.ExpFloat64()*3) {
			at += time.Duration(r.ExpFloat64() * float64(6*time.Hour))
			if at >= horizon {
				break
			}
			w.Events = append(w.Events, Event{N: len(w.Events), Device: d.ID, At: at, IP: in.IP, Kind: tapline.KindOpen, InstallIndex: ii})
		}
		if r.Float64() < cfg.BuyerShare {
			at := in.At
			for range 1 + r.IntN(3) {
				at += time.Duration(r.ExpFloat64() * float64(12*time.Hour))
				if at >= horizon {
					break
				}
				price := []int64{99, 499, 999, 1999}[r.IntN(4)]
				cur := []string{"USD", "USD", "EUR", "GBP"}[r.IntN(4)]
				w.Events = append(w.Events, Event{
					N: len(w.Events), Device: d.ID, At: at, IP: in.IP, Kind: tapline.KindPurchase,
					PriceCents: price, Currency: cur, Product: fmt.Sprintf("coins_%d", price),
					Transaction: fmt.Sprintf("tx-%d-%d", cfg.Seed, len(w.Events)), InstallIndex: ii,
				})
			}
		}
	}

	for _, t := range w.Taps {
		w.Timeline = append(w.Timeline, Action{At: t.At, Kind: ActTap, Index: t.N, Dev: t.Device})
	}
	for _, in := range w.Installs {
		w.Timeline = append(w.Timeline, Action{At: in.At, Kind: ActInstall, Index: in.N, Dev: in.Device})
	}
	for _, e := range w.Events {
		w.Timeline = append(w.Timeline, Action{At: e.At, Kind: ActEvent, Index: e.N, Dev: e.Device})
	}
	slices.SortStableFunc(w.Timeline, func(a, b Action) int {
		return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Index, b.Index))
	})
	return w, nil
}

// addTap adds a tap of d at at on link and returns its number; other
// marks a tap on another app's link.
func (w *Workload) addTap(r *rand.Rand, d *Device, at time.Duration, link string, onCell, other bool) int {
	cfg := &w.Config
	t := Tap{N: len(w.Taps), Device: d.ID, At: at, Link: link, IP: ipOf(r, d, onCell), OtherApp: other}
	t.UserAgent, t.Hints = tapBrowser(r, d, cfg.InAppShare)
	t.Language = strings.ReplaceAll(d.Locale, "_", "-")
	if r.Float64() < cfg.LanguageMismatch {
		t.Language = pick(r, locales)
		t.Language = strings.ReplaceAll(t.Language, "_", "-")
	}
	if d.AdID != "" && r.Float64() < cfg.AdIDTapShare {
		t.AdID = d.AdID
	}
	w.Taps = append(w.Taps, t)
	return t.N
}

func (w *Workload) addInstall(d *Device, at time.Duration, ip string, truth int, referrer bool) {
	w.Installs = append(w.Installs, Install{N: len(w.Installs), Device: d.ID, At: at, IP: ip, Truth: truth, Referrer: referrer})
}

func cellular(r *rand.Rand, cfg Config) bool { return r.Float64() < cfg.CellularShare }

// ipOf returns the address a device's request comes from: its home Wi-Fi
// address, or its cellular one (a fresh interface id in its IPv6 /64 for
// every request, as privacy extensions do).
func ipOf(r *rand.Rand, d *Device, onCell bool) string {
	if !onCell && d.home.IsValid() {
		return d.home.String()
	}
	if d.cellV4.IsValid() {
		return d.cellV4.String()
	}
	b := d.cellV6.Addr().As16()
	iid := r.Uint64() | 1
	for i := range 8 {
		b[8+i] = byte(iid >> (56 - 8*i))
	}
	return netip.AddrFrom16(b).String()
}

// installDelay draws a tap-to-install delay: mostly minutes (log-normal,
// median 6 minutes), with a share delayed from an exponential tail with a
// mean of 30 hours.
func installDelay(r *rand.Rand, delayed float64) time.Duration {
	if r.Float64() < delayed {
		return time.Duration(r.ExpFloat64() * float64(30*time.Hour))
	}
	secs := 360 * math.Exp(1.4*r.NormFloat64())
	return time.Duration(math.Max(5, secs) * float64(time.Second))
}
