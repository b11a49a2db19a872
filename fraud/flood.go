package fraud

import (
	"slices"
	"strings"
	"sync"
	"time"

	"tapline"
	"tapline/fingerprint"
)

// DefaultFloodParams are the tap query parameters that name an ad
// network's sub-publisher (the app or site that showed the ad), compared
// without case: a click flood's other source besides its network.
var DefaultFloodParams = []string{"sub_publisher", "sub_publisher_id", "site_id", "pub_id", "publisher_id", "af_siteid", "af_sub_siteid"}

// DefaultFloodSources bounds the sources a Flood keeps.
const DefaultFloodSources = 100_000

// maxFloodValue is the longest parameter value kept as a source, in bytes.
const maxFloodValue = 100

// FloodSource is where taps come from, for the click-flooding rule: the
// tap's network (Kind "network", Value its /24 or /64), or a
// sub-publisher parameter (Kind the parameter's name, Value its value).
type FloodSource struct {
	Kind  string
	Value string
}

// String shows s: "network 203.0.113.0/24", "site_id=1234".
func (s FloodSource) String() string {
	if s.Kind == "network" {
		return "network " + s.Value
	}
	return s.Kind + "=" + s.Value
}

// Flood counts, per app and source, the taps consumed and the installs
// credited to one of the source's taps, in hourly buckets by the tap's
// and the install's time: what the click-flooding rule compares. A source
// keeps only its buckets within the app's fingerprint window of the newest
// one, and a Flood keeps at most MaxSources sources: when full it drops
// those whose buckets all lie outside their window of the newest time
// seen, then, if still nine tenths full, arbitrary ones. Counts are of
// this process: a matcher in a consumer group counts the taps of its own
// partitions. It is safe for concurrent use.
type Flood struct {
	// Params are the sub-publisher parameters (DefaultFloodParams when
	// nil); MaxSources bounds the sources kept (DefaultFloodSources when
	// 0).
	Params     []string
	MaxSources int

	mu      sync.Mutex
	sources map[floodKey]*floodCounts
	latest  int64 // newest hour seen
}

type floodKey struct {
	app int64
	src FloodSource
}

type floodCounts struct {
	window  int64 // seconds
	buckets []floodBucket
}

type floodBucket struct {
	hour            int64
	taps, installed int64
}

// Sources returns the sources of tap h: its network, then each
// sub-publisher parameter it carries, in Params order.
func (f *Flood) Sources(h *tapline.Hit) []FloodSource {
	var out []FloodSource
	if n := fingerprint.Network(h.IP); n != "" {
		out = append(out, FloodSource{Kind: "network", Value: fingerprint.MaskNetwork(n)})
	}
	params := f.Params
	if params == nil {
		params = DefaultFloodParams
	}
	for _, p := range params {
		for k, v := range h.Params {
			if strings.EqualFold(k, p) {
				if v = strings.TrimSpace(strings.ToValidUTF8(v, "")); v != "" {
					out = append(out, FloodSource{Kind: strings.ToLower(p), Value: clip(v, maxFloodValue)})
				}
				break
			}
		}
	}
	return out
}

// clip cuts s to at most n bytes, at a rune start.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Tap counts tap h for each of its sources; window is its app's
// fingerprint window.
func (f *Flood) Tap(h *tapline.Hit, window time.Duration) {
	f.add(h.AppID, f.Sources(h), h.Time, window, 1, 0)
}

// Credit counts one install at install time at credited to tap h.
func (f *Flood) Credit(h *tapline.Hit, at time.Time, window time.Duration) {
	f.add(h.AppID, f.Sources(h), at, window, 0, 1)
}

// Count returns the taps of source src of app appID and the installs
// credited to them in the window before at: the hourly buckets from the
// one holding at-window to the one holding at.
func (f *Flood) Count(appID int64, src FloodSource, at time.Time, window time.Duration) (taps, installed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.sources[floodKey{appID, src}]
	if c == nil {
		return 0, 0
	}
	to := tapline.HourOf(at)
	from := tapline.HourOf(at.Add(-window))
	for _, b := range c.buckets {
		if b.hour >= from && b.hour <= to {
			taps += b.taps
			installed += b.installed
		}
	}
	return taps, installed
}

// Len returns how many sources are kept.
func (f *Flood) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sources)
}

func (f *Flood) add(appID int64, srcs []FloodSource, at time.Time, window time.Duration, taps, installed int64) {
	if len(srcs) == 0 {
		return
	}
	hour := tapline.HourOf(at)
	w := int64(window / time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sources == nil {
		f.sources = map[floodKey]*floodCounts{}
	}
	f.latest = max(f.latest, hour)
	for i, src := range srcs {
		k := floodKey{appID, src}
		c := f.sources[k]
		if c == nil {
			f.makeRoom(appID, srcs[:i])
			c = &floodCounts{}
			f.sources[k] = c
		}
		c.window = w
		c.add(hour, taps, installed)
	}
}

// add counts in the bucket of hour, keeping the buckets sorted and only
// those within the window of the newest.
func (c *floodCounts) add(hour, taps, installed int64) {
	i := len(c.buckets)
	for i > 0 && c.buckets[i-1].hour > hour {
		i--
	}
	if i > 0 && c.buckets[i-1].hour == hour {
		c.buckets[i-1].taps += taps
		c.buckets[i-1].installed += installed
	} else {
		c.buckets = append(c.buckets, floodBucket{})
		copy(c.buckets[i+1:], c.buckets[i:])
		c.buckets[i] = floodBucket{hour: hour, taps: taps, installed: installed}
	}
	newest := c.buckets[len(c.buckets)-1].hour
	drop := 0
	for drop < len(c.buckets) && c.buckets[drop].hour < newest-c.window-3600 {
		drop++
	}
	c.buckets = c.buckets[drop:]
}

// makeRoom drops sources when the Flood is full, never the sources keep
// of app appID (the tap being counted has just counted them); f.mu is
// held.
func (f *Flood) makeRoom(appID int64, keep []FloodSource) {
	limit := f.MaxSources
	if limit <= 0 {
		limit = DefaultFloodSources
	}
	if len(f.sources) < limit {
		return
	}
	for k, c := range f.sources {
		if n := len(c.buckets); n == 0 || c.buckets[n-1].hour < f.latest-c.window-3600 {
			delete(f.sources, k)
		}
	}
	for k := range f.sources {
		if len(f.sources) < limit*9/10 {
			break
		}
		if k.app == appID && slices.Contains(keep, k.src) {
			continue
		}
		delete(f.sources, k)
	}
}
