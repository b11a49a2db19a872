package fingerprint

import (
	"strings"

	lru "github.com/hashicorp/golang-lru"
	"github.com/ua-parser/uap-go/uaparser"

	"tapline"
)

// DefaultCacheSize is how many parsed User-Agents a Fingerprinter keeps
// unless WithCacheSize says otherwise.
const DefaultCacheSize = 10000

// MaxUserAgent is the longest User-Agent prefix that is parsed; the rest of
// a longer header is ignored. Real browsers and in-app browsers stay far
// below it, and the cap bounds the regex work and the cache's memory.
const MaxUserAgent = 1024

// Option changes how New builds a Fingerprinter.
type Option func(*Fingerprinter)

// WithCacheSize sets how many parsed User-Agents are cached; zero or less
// turns the cache off (every call parses, which only benchmarks want).
func WithCacheSize(n int) Option {
	return func(f *Fingerprinter) { f.cacheSize = n }
}

// Fingerprinter derives device attributes and fingerprints from hits and
// events. It is safe for concurrent use.
type Fingerprinter struct {
	parser    *uaparser.Parser
	cache     *lru.Cache // parse key -> device; nil when caching is off
	cacheSize int
}

// New returns a Fingerprinter using uap-go's built-in regex definitions and
// a bounded LRU cache of parsed User-Agents. Building the parser compiles
// several hundred regular expressions, so make one and share it.
func New(options ...Option) *Fingerprinter {
	f := &Fingerprinter{cacheSize: DefaultCacheSize}
	for _, o := range options {
		o(f)
	}
	// uap-go keeps its own cache of raw parse results; ours holds the
	// derived device, so its copy is kept minimal.
	p, err := uaparser.New(uaparser.WithCacheSize(1))
	if err != nil {
		// Only malformed built-in definitions fail here, a build error.
		panic("fingerprint: uap-go built-in definitions: " + err.Error())
	}
	f.parser = p
	if f.cacheSize > 0 {
		c, err := lru.New(f.cacheSize)
		if err != nil {
			panic("fingerprint: lru cache: " + err.Error())
		}
		f.cache = c
	}
	return f
}

// Hit sets h.Platform, h.OSVersion, h.Model and h.Fingerprint from h.IP,
// h.UserAgent and h.ClientHints. The fingerprint is "" when h.IP is not an
// IP address.
func (f *Fingerprinter) Hit(h *tapline.Hit) {
	d := f.device(h.UserAgent, h.ClientHints)
	h.Platform = d.platform
	h.OSVersion = d.osVersion
	h.Model = d.model
	h.Fingerprint = Key(h.IP, h.Platform)
}

// Event normalizes e.Device.Platform (filling it from e.Device.Model when it
// is empty; an unrecognized platform is left as it is) and sets e.Fingerprint from e.IP and that platform. The
// fingerprint is "" when e.IP is not an IP address or the platform is
// unknown, so such an event can only be matched by deterministic signals.
func (f *Fingerprinter) Event(e *tapline.Event) {
	p := EventPlatform(&e.Device)
	if p != "" {
		e.Device.Platform = p
	}
	e.Fingerprint = Key(e.IP, p)
}

// Platform returns ios, android or web for a User-Agent and client hints
// (lower-case header names); it picks the redirect destination.
func (f *Fingerprinter) Platform(userAgent string, hints map[string]string) tapline.Platform {
	return f.device(userAgent, hints).platform
}

// Classify returns what a redirect needs of a User-Agent and client hints,
// parsed once per distinct pair: the platform (Platform) and the link
// previewer or crawler it names (Bot), "" for a person's browser.
func (f *Fingerprinter) Classify(userAgent string, hints map[string]string) (tapline.Platform, string) {
	d := f.device(userAgent, hints)
	return d.platform, d.bot
}

// device returns what a User-Agent and client hints reveal, from the cache
// when it can.
func (f *Fingerprinter) device(userAgent string, hints map[string]string) device {
	if len(userAgent) > MaxUserAgent {
		userAgent = userAgent[:MaxUserAgent]
	}
	ch := readHints(hints)
	parse := func() device {
		d := analyze(f.parser, userAgent, ch)
		d.bot = Bot(userAgent)
		return d
	}
	if f.cache == nil {
		return parse()
	}
	key := ch.cacheKey(userAgent)
	if v, ok := f.cache.Get(key); ok {
		return v.(device)
	}
	d := parse()
	f.cache.Add(key, d)
	return d
}

// EventPlatform returns the platform of an SDK-reported device: its
// Platform normalized to a tapline platform, or, when that is empty, the
// platform its Model implies ("iPhone15,2" is ios, "Pixel 7" is android).
// It returns "" when neither tells.
func EventPlatform(d *tapline.Device) tapline.Platform {
	switch p := strings.ToLower(strings.TrimSpace(string(d.Platform))); p {
	case "ios", "ipados", "iphone os", "iphone", "ipad":
		return tapline.PlatformIOS
	case "android":
		return tapline.PlatformAndroid
	case "web":
		return tapline.PlatformWeb
	case "":
	default:
		return ""
	}
	m := strings.TrimSpace(d.Model)
	switch {
	case m == "":
		return ""
	case appleClass(m) != "", isSimulator(m), strings.EqualFold(d.Vendor, "apple") && !isAppleIdentifier(m):
		return tapline.PlatformIOS
	case isAppleIdentifier(m):
		// A Mac, Watch, Apple TV or Vision device: neither platform.
		return ""
	default:
		return tapline.PlatformAndroid
	}
}
