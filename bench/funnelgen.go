package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"tapline"
	"tapline/pebble"
)

// funnelWorkload generates the raw rows of one app over 60 days, as the
// matcher would have stored them: installations with an install event and
// a conversion (most attributed to a tap, some re-attributed by a late
// hit), then opens, levels, purchases and the odd uninstall on days drawn
// from a daily-active decay, with a heavy tail of very active
// installations. Every row carries the bus position it was consumed at.
// The same configuration generates the same rows every time, so the raw
// store, PostgreSQL and DuckDB are each fed from a fresh pass instead of
// one copy held in memory.
type funnelWorkload struct {
	AppID int64
	Links []int64 // link ids taps are spread over (Zipf)
	Seed  uint64
	Rows  int       // raw rows to generate at least: events + hits + conversions
	End   time.Time // the newest possible row; the oldest is 60 days before
	// Partitions of each of the hits and events topics the positions are
	// spread over.
	Partitions int
}

// funnelDays is the span of the workload: the raw store's retention.
const funnelDays = 60

// genInstall is one installation's rows.
type genInstall struct {
	Events      []*tapline.Event
	Hits        []*tapline.Hit
	Conversion  *tapline.Conversion // nil without an install event
	Conversions int                 // puts of the conversion: 1 + re-attributions
}

// rows is the installation's raw rows: events, hits and its conversion.
func (g *genInstall) rows() int {
	n := len(g.Events) + len(g.Hits)
	if g.Conversion != nil {
		n++
	}
	return n
}

// FunnelData counts the rows of a funnel workload: raw rows are events,
// hits and conversions.
type FunnelData struct {
	Installations int `json:"installations"`
	Events        int `json:"events"`
	Hits          int `json:"hits"`
	Conversions   int `json:"conversions"`
	RawRows       int `json:"raw_rows"`
	MaxEvents     int `json:"max_events_per_installation"`
}

// positions hands out bus positions: the next offset of each partition of
// both topics.
type positions struct {
	events, hits []int64
}

func (p *positions) next(topic string, part int) string {
	offs := &p.events
	if topic == tapline.TopicHits {
		offs = &p.hits
	}
	o := (*offs)[part]
	(*offs)[part]++
	return topic + "/" + strconv.Itoa(part) + "/" + strconv.FormatInt(o, 10)
}

// handoff returns a handoff past every generated position, for every
// partition of both topics.
func (p *positions) handoff(versionID int64) []tapline.FunnelHandoff {
	var out []tapline.FunnelHandoff
	of := len(p.events) + len(p.hits)
	for i, o := range p.events {
		out = append(out, tapline.FunnelHandoff{VersionID: versionID, Partition: tapline.Partition{Topic: tapline.TopicEvents, Partition: i}, Offset: o, Of: of})
	}
	for i, o := range p.hits {
		out = append(out, tapline.FunnelHandoff{VersionID: versionID, Partition: tapline.Partition{Topic: tapline.TopicHits, Partition: i}, Offset: o, Of: of})
	}
	return out
}

var (
	genSources   = []string{"facebook", "google", "tiktok", "unity", "applovin", "snap"}
	genMediums   = []string{"cpc", "cpi", "social", "video"}
	genCurrency  = []string{"USD", "EUR", "GBP"}
	genModels    = map[tapline.Platform][]string{tapline.PlatformIOS: {"iPhone15,2", "iPhone14,5", "iPhone16,1"}, tapline.PlatformAndroid: {"Pixel 7", "SM-S911B", "22101316G"}}
	genOSVersion = map[tapline.Platform][]string{tapline.PlatformIOS: {"17.4.1", "16.6", "18.0"}, tapline.PlatformAndroid: {"14", "13", "12"}}
	genMethods   = []tapline.MatchMethod{tapline.MethodFingerprint, tapline.MethodFingerprint, tapline.MethodAdID, tapline.MethodReferrer}
)

// generate calls fn with each installation in turn, stopping at the first
// error, and returns what it generated and the positions past every row.
func (w *funnelWorkload) generate(fn func(*genInstall) error) (FunnelData, *positions, error) {
	r := rand.New(rand.NewPCG(w.Seed, 0x6675_6e6e_656c))
	parts := max(w.Partitions, 1)
	pos := &positions{events: make([]int64, parts), hits: make([]int64, parts)}
	start := w.End.Add(-funnelDays * 24 * time.Hour)
	zipf := rand.NewZipf(r, 1.2, 1, uint64(max(len(w.Links), 1)-1))
	var c FunnelData
	for i := 0; c.RawRows < w.Rows; i++ {
		g := w.install(r, zipf, pos, start, i)
		c.Installations++
		c.Events += len(g.Events)
		c.Hits += len(g.Hits)
		if g.Conversion != nil {
			c.Conversions++
		}
		c.RawRows += g.rows()
		c.MaxEvents = max(c.MaxEvents, len(g.Events))
		if err := fn(g); err != nil {
			return c, pos, err
		}
	}
	return c, pos, nil
}

// install generates installation i.
func (w *funnelWorkload) install(r *rand.Rand, zipf *rand.Zipf, pos *positions, start time.Time, i int) *genInstall {
	g := &genInstall{}
	installID := fmt.Sprintf("%08x-%04x-inst", uint32(w.Seed)*2654435761+uint32(i)*40503, i&0xffff)
	part := int(uint32(i)*2654435761>>16) % len(pos.events)
	platform := tapline.PlatformIOS
	if r.IntN(100) < 55 {
		platform = tapline.PlatformAndroid
	}
	dev := tapline.Device{Platform: platform, OSVersion: genOSVersion[platform][r.IntN(3)], Model: genModels[platform][r.IntN(3)],
		Locale: "en_US", AppVersion: "3." + strconv.Itoa(r.IntN(4))}
	ip := fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))
	seq := 0
	// Event ids: the installation's number, then a sequence number, so ids
	// of one installation compare as strings, not numbers ("…-10" < "…-9").
	event := func(name string, kind tapline.EventKind, t time.Time) *tapline.Event {
		e := &tapline.Event{ID: "ev" + strconv.Itoa(i) + "-" + strconv.Itoa(seq), AppID: w.AppID, Name: name, Kind: kind,
			Time: t, ReceivedAt: t.Add(time.Duration(r.IntN(3000)) * time.Millisecond), InstallID: installID, IP: ip,
			Device: dev, Protocol: "v1", Source: pos.next(tapline.TopicEvents, part)}
		seq++
		g.Events = append(g.Events, e)
		return e
	}
	hit := func(t time.Time) *tapline.Hit {
		link := w.Links[zipf.Uint64()]
		h := &tapline.Hit{ID: "hit" + strconv.Itoa(i) + "-" + strconv.Itoa(len(g.Hits)), Time: t, AppID: w.AppID, LinkID: link, IP: ip,
			UserAgent: "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
			Platform:  platform, Fingerprint: fmt.Sprintf("fp%x", r.Uint32()),
			Params: map[string]string{"utm_source": genSources[r.IntN(len(genSources))], "utm_medium": genMediums[r.IntN(len(genMediums))],
				"utm_campaign": "spring-" + strconv.Itoa(r.IntN(12))},
			Source: pos.next(tapline.TopicHits, part)}
		g.Hits = append(g.Hits, h)
		return h
	}
	span := w.End.Sub(start)
	installAt := start.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Millisecond)

	// 2% of installations never sent their install (an SDK added in an
	// update): events without a conversion.
	var tap *tapline.Hit
	if r.IntN(100) >= 2 {
		// 75% tapped a link first, minutes to hours before the install.
		if r.IntN(100) < 75 {
			delay := time.Duration(math.Exp(r.NormFloat64()*1.3+6.5)) * time.Second
			tap = hit(installAt.Add(-min(delay, 6*24*time.Hour)).Truncate(time.Millisecond))
		}
		in := event("install", tapline.KindInstall, installAt)
		in.Fingerprint = fmt.Sprintf("fp%x", r.Uint32())
		a := tapline.Attribution{Method: tapline.MethodOrganic}
		if tap != nil {
			a = tapline.Attribution{HitID: tap.ID, LinkID: tap.LinkID, Method: genMethods[r.IntN(len(genMethods))], HitTime: tap.Time, HitParams: tap.Params}
		}
		c := &tapline.Conversion{ID: tapline.ConversionID(in.ID), AppID: w.AppID, EventID: in.ID, InstallID: installID,
			InstallTime: in.Time, Platform: platform, Fingerprint: in.Fingerprint, Attribution: a,
			History: []tapline.AttributionChange{{By: in.Source, To: a, At: in.ReceivedAt}}, UpdatedAt: in.ReceivedAt}
		if a.Method != tapline.MethodOrganic {
			c.ClickToInstall = in.Time.Sub(a.HitTime)
		}
		g.Conversions = 1
		// 4% are re-attributed by a hit that arrived late: the tap record
		// is the later hit's, which the history's last change names.
		if r.IntN(100) < 4 {
			late := hit(installAt.Add(-time.Duration(1+r.IntN(3600)) * time.Second).Truncate(time.Millisecond))
			b := tapline.Attribution{HitID: late.ID, LinkID: late.LinkID, Method: tapline.MethodReferrer, HitTime: late.Time, HitParams: late.Params}
			from := a
			c.History = append(c.History, tapline.AttributionChange{By: late.Source, From: &from, To: b, At: in.ReceivedAt.Add(time.Minute)})
			c.Attribution, c.ClickToInstall = b, in.Time.Sub(b.HitTime)
			g.Conversions++
		}
		g.Conversion = c
	}

	// Activity: a daily-active decay scaled by the installation's
	// engagement, log-normal with a heavy tail.
	engage := math.Min(math.Exp(r.NormFloat64()-0.9), 20)
	level := 0
	t := installAt
	if r.IntN(10) < 9 {
		t = t.Add(time.Duration(1+r.IntN(40)) * time.Second)
		event("open", tapline.KindOpen, t)
	}
	uninstalled := false
	for day := 0; ; day++ {
		dayStart := installAt.Add(time.Duration(day) * 24 * time.Hour)
		if !dayStart.Before(w.End) {
			break
		}
		p := math.Min(0.95, engage*(0.35*math.Exp(-float64(day)/5)+0.02))
		if day > 0 && r.Float64() >= p {
			continue
		}
		sessions := 1 + int(r.ExpFloat64()*engage*0.3)
		for range min(sessions, 20) {
			st := dayStart.Add(time.Duration(r.Int64N(int64(24 * time.Hour)))).Truncate(time.Millisecond)
			if !st.After(t) && day == 0 {
				st = t.Add(time.Duration(1+r.IntN(600)) * time.Second)
			}
			if !st.Before(w.End) {
				continue
			}
			if uninstalled {
				// Some come back: an install event of the same
				// installation, an ordinary event now.
				if r.IntN(4) != 0 {
					continue
				}
				event("install", tapline.KindInstall, st)
				uninstalled = false
			}
			event("open", tapline.KindOpen, st)
			et := st
			for range r.IntN(2 + int(1.5*engage)) {
				et = et.Add(time.Duration(5+r.IntN(900)) * time.Second)
				if !et.Before(w.End) {
					break
				}
				switch k := r.IntN(100); {
				case k < 60:
					level++
					e := event("level", tapline.KindCustom, et)
					n := strconv.Itoa(level)
					if r.IntN(50) == 0 {
						n = "max"
					}
					e.Params = map[string]string{"n": n}
				case k < 72:
					e := event("purchase", tapline.KindPurchase, et)
					micros := int64(0) // a free trial: revenue 0
					if r.IntN(8) != 0 {
						micros = []int64{990_000, 4_990_000, 9_990_000, 49_990_000}[r.IntN(4)]
					}
					e.Revenue = &tapline.Revenue{Micros: micros, Currency: genCurrency[r.IntN(3)]}
					e.Params = map[string]string{"sku": "gems_" + strconv.Itoa(r.IntN(5))}
					if r.IntN(5) == 0 {
						// Reported with the level it unlocked, in the same millisecond.
						level++
						lv := event("level", tapline.KindCustom, et)
						lv.Params = map[string]string{"n": strconv.Itoa(level)}
					}
				case k < 80:
					event("tutorial_complete", tapline.KindCustom, et)
				default:
					event("session_end", tapline.KindCustom, et)
				}
			}
			if r.IntN(1000) < 8 {
				event("uninstall", tapline.KindCustom, et.Add(time.Duration(1+r.IntN(3600))*time.Second))
				uninstalled = true
			}
		}
		if day > funnelDays {
			break
		}
	}
	return g
}

// storeFunnelWorkload writes the workload's installations from number skip
// on into a new or loaded raw store at dir, and returns what the whole
// workload holds (skipped installations included) and its positions.
func storeFunnelWorkload(ctx context.Context, dir string, w *funnelWorkload, skip int) (FunnelData, *positions, error) {
	l, err := pebble.OpenLoader(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return FunnelData{}, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *genInstall, 256)
	done := make(chan error, 1)
	go func() { done <- loadInstalls(ctx, l, work) }()
	n := 0
	counts, pos, err := w.generate(func(g *genInstall) error {
		n++
		if n <= skip {
			return nil
		}
		select {
		case work <- g:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	if lerr := <-done; err == nil {
		err = lerr
	}
	if cerr := l.Close(ctx); err == nil {
		err = cerr
	}
	return counts, pos, err
}

// putInstall stores one installation's rows as the matcher would, through
// the raw store's methods: hits, events, then the conversion (and its
// re-attribution, one change at a time as the raw store requires). The
// loader's test compares what both write.
func putInstall(ctx context.Context, raw *pebble.RawStore, g *genInstall) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, h := range g.Hits {
		if _, err := raw.PutHit(ctx, h); err != nil {
			return err
		}
	}
	for _, e := range g.Events {
		if _, err := raw.PutEvent(ctx, e); err != nil {
			return err
		}
	}
	if c := g.Conversion; c != nil {
		for n := 1; n <= len(c.History); n++ {
			step := *c
			step.History = c.History[:n]
			step.Attribution = c.History[n-1].To
			if err := raw.PutConversion(ctx, &step); err != nil {
				return err
			}
		}
	}
	return nil
}
