// Package wire is the binary encoding of hits, events and conversions:
// the values of the embedded raw store (package pebble) and of messages on
// the embedded bus. Each value starts with a format byte; a value whose
// first byte is '{' (or JSON whitespace) is a JSON object, the format of earlier versions and of
// the Kafka topics, and decodes with encoding/json, so a reader takes
// either.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"tapline"
)

// Values for hits, events and conversions start with a format tag. Values
// written before the tag existed, and messages on Kafka, are JSON objects,
// so their first byte is '{' (or JSON whitespace), which no tag uses; the
// decoders read them with encoding/json forever.
//
// After valueProto comes a Protocol Buffers wire-format message, written
// and read field by field with protowire (no generated code). The field
// numbers are listed on each append function below and are forever: a
// field that goes away leaves its number unused, a new field takes a new
// number. Encoders follow proto3: zero values are left out, map entries
// and repeated messages are written once per element, map entries in key
// order so that equal values encode to equal bytes. Decoders skip fields
// they do not know (written by a newer version); a singular field that
// occurs twice takes its last value, except nested messages, which merge
// as in proto, and timestamps, which are replaced whole. A field of a known
// number with the wrong wire type is an error, not a skip: numbers are
// never reused, so it can only be corruption.
//
// Nested types are nested messages. Where the Go field is a pointer
// (Event.Revenue, AttributionChange.From) the message is written, even
// empty, exactly when the pointer is not nil, so nil and a pointer to a
// zero value decode apart. Struct values (Event.Device, Conversion's
// embedded Attribution, AttributionChange.To) are left out when their
// message is empty. Slices and maps decode to nil when no element is
// present, as encoding/json decodes them when omitted.
//
// Timestamp (every time.Time), left out when IsZero, decoded in UTC:
//
//	1  seconds  sint64  t.Unix()
//	2  nanos    uint64  t.Nanosecond(), below 1e9
//
// Map entry (every map[string]string):
//
//	1  key    string
//	2  value  string
const valueProto = 0x01

// valueJSON is the first byte of a legacy JSON value.
const valueJSON = '{'

// Names of enumerated string fields; decoding returns these strings
// instead of allocating a copy.
var (
	pbPlatforms = []string{string(tapline.PlatformIOS), string(tapline.PlatformAndroid), string(tapline.PlatformWeb)}
	pbKinds     = []string{string(tapline.KindInstall), string(tapline.KindOpen), string(tapline.KindPurchase), string(tapline.KindCustom)}
	pbMethods   = []string{string(tapline.MethodReferrer), string(tapline.MethodAdID), string(tapline.MethodFingerprint), string(tapline.MethodOrganic)}
	pbProtocols = []string{"tapstream", "v1"}
)

// splitValue checks the format tag of the stored value v and returns the
// message after it, or isJSON for a legacy JSON value.
func splitValue(v []byte) (body []byte, isJSON bool, err error) {
	switch {
	case len(v) == 0:
		return nil, false, errors.New("empty value")
	case v[0] == valueJSON, v[0] == ' ', v[0] == '\t', v[0] == '\n', v[0] == '\r':
		// JSON, perhaps after whitespace, as another producer may write
		// it to a Kafka topic.
		return nil, true, nil
	case v[0] == valueProto:
		return v[1:], false, nil
	}
	return nil, false, fmt.Errorf("unknown value format 0x%02x", v[0])
}

// AppendHit appends the stored value of h to b. Its message:
//
//	 1  id               string
//	 2  time             Timestamp
//	 3  app_id           uint64 (int64 as two's complement)
//	 4  link_id          uint64 (int64 as two's complement)
//	 5  ip               string
//	 6  user_agent       string
//	 7  referer          string
//	 8  accept_language  string
//	 9  client_hints     repeated map entry
//	10  params           repeated map entry
//	11  ad_id            string
//	12  platform         string
//	13  os_version       string
//	14  model            string
//	15  fingerprint      string
//	16  source           string
//	17  bot              string
func AppendHit(b []byte, h *tapline.Hit) []byte {
	b = append(b, valueProto)
	b = pbAppendString(b, 1, h.ID)
	b = pbAppendTime(b, 2, h.Time)
	b = pbAppendInt(b, 3, h.AppID)
	b = pbAppendInt(b, 4, h.LinkID)
	b = pbAppendString(b, 5, h.IP)
	b = pbAppendString(b, 6, h.UserAgent)
	b = pbAppendString(b, 7, h.Referer)
	b = pbAppendString(b, 8, h.AcceptLanguage)
	b = pbAppendMap(b, 9, h.ClientHints)
	b = pbAppendMap(b, 10, h.Params)
	b = pbAppendString(b, 11, h.AdID)
	b = pbAppendString(b, 12, string(h.Platform))
	b = pbAppendString(b, 13, h.OSVersion)
	b = pbAppendString(b, 14, h.Model)
	b = pbAppendString(b, 15, h.Fingerprint)
	b = pbAppendString(b, 16, h.Source)
	b = pbAppendString(b, 17, h.Bot)
	return b
}

// DecodeHit decodes a value written by AppendHit, or a legacy
// JSON one, into h, which it resets first. On error h is left zero.
func DecodeHit(v []byte, h *tapline.Hit) error {
	*h = tapline.Hit{}
	body, isJSON, err := splitValue(v)
	switch {
	case err != nil:
	case isJSON:
		err = json.Unmarshal(v, h)
	default:
		err = pbDecodeHit(body, h)
	}
	if err != nil {
		*h = tapline.Hit{}
		return fmt.Errorf("decode hit: %w", err)
	}
	return nil
}

// pbDecodeHit decodes the message of AppendHit into h.
func pbDecodeHit(b []byte, h *tapline.Hit) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			h.ID = r.string()
		case 2:
			h.Time = r.time()
		case 3:
			h.AppID = r.int()
		case 4:
			h.LinkID = r.int()
		case 5:
			h.IP = r.string()
		case 6:
			h.UserAgent = r.string()
		case 7:
			h.Referer = r.string()
		case 8:
			h.AcceptLanguage = r.string()
		case 9:
			r.mapEntry(&h.ClientHints)
		case 10:
			r.mapEntry(&h.Params)
		case 11:
			h.AdID = r.string()
		case 12:
			h.Platform = tapline.Platform(r.name(pbPlatforms))
		case 13:
			h.OSVersion = r.string()
		case 14:
			h.Model = r.string()
		case 15:
			h.Fingerprint = r.string()
		case 16:
			h.Source = r.string()
		case 17:
			h.Bot = r.string()
		default:
			r.skip()
		}
	}
	return r.err
}

// AppendEvent appends the stored value of e to b. Its message:
//
//	 1  id           string
//	 2  app_id       uint64 (int64 as two's complement)
//	 3  name         string
//	 4  kind         string
//	 5  time         Timestamp
//	 6  received_at  Timestamp
//	 7  install_id   string
//	 8  ip           string
//	 9  device       Device, left out when empty
//	10  referrer     string
//	11  revenue      Revenue, present exactly when not nil
//	12  params       repeated map entry
//	13  protocol     string
//	14  fingerprint  string
//	15  source       string
//
// Device:
//
//	 1  platform           string
//	 2  os_version         string
//	 3  model              string
//	 4  vendor             string
//	 5  locale             string
//	 6  resolution         string
//	 7  app_version        string
//	 8  idfa               string
//	 9  idfv               string
//	10  gaid               string
//	11  limit_ad_tracking  bool
//
// Revenue:
//
//	1  micros    sint64
//	2  currency  string
func AppendEvent(b []byte, e *tapline.Event) []byte {
	b = append(b, valueProto)
	b = pbAppendString(b, 1, e.ID)
	b = pbAppendInt(b, 2, e.AppID)
	b = pbAppendString(b, 3, e.Name)
	b = pbAppendString(b, 4, string(e.Kind))
	b = pbAppendTime(b, 5, e.Time)
	b = pbAppendTime(b, 6, e.ReceivedAt)
	b = pbAppendString(b, 7, e.InstallID)
	b = pbAppendString(b, 8, e.IP)
	b, m := pbBegin(b, 9)
	b = pbAppendDevice(b, &e.Device)
	b = m.endOrDrop(b)
	b = pbAppendString(b, 10, e.Referrer)
	if e.Revenue != nil {
		b, m = pbBegin(b, 11)
		b = pbAppendSint(b, 1, e.Revenue.Micros)
		b = pbAppendString(b, 2, e.Revenue.Currency)
		b = m.end(b)
	}
	b = pbAppendMap(b, 12, e.Params)
	b = pbAppendString(b, 13, e.Protocol)
	b = pbAppendString(b, 14, e.Fingerprint)
	b = pbAppendString(b, 15, e.Source)
	if e.CountedUnder != nil {
		// "h:" before the hit id, so that organic ("") is told from
		// not recorded (absent).
		b = pbAppendString(b, 16, "h:"+*e.CountedUnder)
	}
	return b
}

// pbAppendDevice appends the fields of the Device message (see
// AppendEvent) to b.
func pbAppendDevice(b []byte, d *tapline.Device) []byte {
	b = pbAppendString(b, 1, string(d.Platform))
	b = pbAppendString(b, 2, d.OSVersion)
	b = pbAppendString(b, 3, d.Model)
	b = pbAppendString(b, 4, d.Vendor)
	b = pbAppendString(b, 5, d.Locale)
	b = pbAppendString(b, 6, d.Resolution)
	b = pbAppendString(b, 7, d.AppVersion)
	b = pbAppendString(b, 8, d.IDFA)
	b = pbAppendString(b, 9, d.IDFV)
	b = pbAppendString(b, 10, d.GAID)
	b = pbAppendBool(b, 11, d.LimitAdTracking)
	return b
}

// DecodeEvent decodes a value written by AppendEvent, or a legacy
// JSON one, into e, which it resets first. On error e is left zero.
func DecodeEvent(v []byte, e *tapline.Event) error {
	*e = tapline.Event{}
	body, isJSON, err := splitValue(v)
	switch {
	case err != nil:
	case isJSON:
		err = json.Unmarshal(v, e)
	default:
		err = pbDecodeEvent(body, e)
	}
	if err != nil {
		*e = tapline.Event{}
		return fmt.Errorf("decode event: %w", err)
	}
	return nil
}

// pbDecodeEvent decodes the message of AppendEvent into e.
func pbDecodeEvent(b []byte, e *tapline.Event) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			e.ID = r.string()
		case 2:
			e.AppID = r.int()
		case 3:
			e.Name = r.string()
		case 4:
			e.Kind = tapline.EventKind(r.name(pbKinds))
		case 5:
			e.Time = r.time()
		case 6:
			e.ReceivedAt = r.time()
		case 7:
			e.InstallID = r.string()
		case 8:
			e.IP = r.string()
		case 9:
			if m, ok := r.message(); ok {
				r.fail(pbDecodeDevice(m, &e.Device))
			}
		case 10:
			e.Referrer = r.string()
		case 11:
			if m, ok := r.message(); ok {
				if e.Revenue == nil {
					e.Revenue = new(tapline.Revenue)
				}
				r.fail(pbDecodeRevenue(m, e.Revenue))
			}
		case 12:
			r.mapEntry(&e.Params)
		case 13:
			e.Protocol = r.name(pbProtocols)
		case 14:
			e.Fingerprint = r.string()
		case 15:
			e.Source = r.string()
		case 16:
			hit, ok := strings.CutPrefix(r.string(), "h:")
			if !ok {
				r.fail(fmt.Errorf("decode event: counted-under value without its prefix"))
			}
			e.CountedUnder = &hit
		default:
			r.skip()
		}
	}
	return r.err
}

// pbDecodeDevice decodes a Device message (see AppendEvent) into d.
func pbDecodeDevice(b []byte, d *tapline.Device) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			d.Platform = tapline.Platform(r.name(pbPlatforms))
		case 2:
			d.OSVersion = r.string()
		case 3:
			d.Model = r.string()
		case 4:
			d.Vendor = r.string()
		case 5:
			d.Locale = r.string()
		case 6:
			d.Resolution = r.string()
		case 7:
			d.AppVersion = r.string()
		case 8:
			d.IDFA = r.string()
		case 9:
			d.IDFV = r.string()
		case 10:
			d.GAID = r.string()
		case 11:
			d.LimitAdTracking = r.bool()
		default:
			r.skip()
		}
	}
	return r.err
}

// pbDecodeRevenue decodes a Revenue message (see AppendEvent) into rev.
func pbDecodeRevenue(b []byte, rev *tapline.Revenue) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			rev.Micros = r.sint()
		case 2:
			rev.Currency = r.string()
		default:
			r.skip()
		}
	}
	return r.err
}

// AppendConversion appends the stored value of c to b. Its message:
//
//	 1  id                string
//	 2  app_id            uint64 (int64 as two's complement)
//	 3  event_id          string
//	 4  install_id        string
//	 5  install_time      Timestamp
//	 6  platform          string
//	 7  fingerprint       string
//	 8  ad_id             string, no longer written (a conversion keeps no
//	                      advertising id) and dropped when read
//	 9  attribution       Attribution (the embedded struct), left out when empty
//	10  click_to_install  sint64 nanoseconds
//	11  history           repeated AttributionChange
//	12  updated_at        Timestamp
//	13  decision          string, the Decision as JSON
//	14  reinstall         Reinstall, present exactly when not nil
//
// Reinstall:
//
//	1  of            string
//	2  by            string
//	3  reattributed  bool
//
// Attribution:
//
//	1  hit_id    string
//	2  link_id   uint64 (int64 as two's complement)
//	3  method    string
//	4  hit_time  Timestamp
//	5  hit_params  repeated map entry
//
// AttributionChange:
//
//	1  by    string
//	2  from  Attribution, present exactly when not nil
//	3  to    Attribution, left out when empty
//	4  at    Timestamp
//	5  fraud string: the JSON of the fraud findings, left out when none
func AppendConversion(b []byte, c *tapline.Conversion) []byte {
	b = append(b, valueProto)
	b = pbAppendString(b, 1, c.ID)
	b = pbAppendInt(b, 2, c.AppID)
	b = pbAppendString(b, 3, c.EventID)
	b = pbAppendString(b, 4, c.InstallID)
	b = pbAppendTime(b, 5, c.InstallTime)
	b = pbAppendString(b, 6, string(c.Platform))
	b = pbAppendString(b, 7, c.Fingerprint)
	b, m := pbBegin(b, 9)
	b = pbAppendAttribution(b, &c.Attribution)
	b = m.endOrDrop(b)
	b = pbAppendSint(b, 10, int64(c.ClickToInstall))
	for i := range c.History {
		ch := &c.History[i]
		b, m = pbBegin(b, 11)
		b = pbAppendString(b, 1, ch.By)
		if ch.From != nil {
			var from pbMessage
			b, from = pbBegin(b, 2)
			b = pbAppendAttribution(b, ch.From)
			b = from.end(b)
		}
		var to pbMessage
		b, to = pbBegin(b, 3)
		b = pbAppendAttribution(b, &ch.To)
		b = to.endOrDrop(b)
		b = pbAppendTime(b, 4, ch.At)
		if len(ch.Fraud) > 0 {
			// JSON inside, as the decision: read to be counted again
			// on a replay and shown.
			if f, err := json.Marshal(ch.Fraud); err == nil {
				b = pbAppendString(b, 5, string(f))
			}
		}
		if len(ch.Moved) > 0 {
			// JSON inside too: read to be moved again on a replay.
			if mv, err := json.Marshal(ch.Moved); err == nil {
				b = pbAppendString(b, 6, string(mv))
			}
		}
		b = m.end(b)
	}
	b = pbAppendTime(b, 12, c.UpdatedAt)
	if c.Decision != nil {
		// JSON inside: a decision grows with the matcher, and is read
		// only to be shown.
		d, err := json.Marshal(c.Decision)
		if err == nil {
			b = pbAppendString(b, 13, string(d))
		}
	}
	if ri := c.Reinstall; ri != nil {
		var m pbMessage
		b, m = pbBegin(b, 14)
		b = pbAppendString(b, 1, ri.Of)
		b = pbAppendString(b, 2, ri.By)
		b = pbAppendBool(b, 3, ri.Reattributed)
		b = m.end(b)
	}
	return b
}

// pbDecodeReinstall decodes a Reinstall message (see
// AppendConversion) into ri.
func pbDecodeReinstall(b []byte, ri *tapline.Reinstall) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			ri.Of = r.string()
		case 2:
			ri.By = r.string()
		case 3:
			ri.Reattributed = r.bool()
		default:
			r.skip()
		}
	}
	return r.err
}

// pbAppendAttribution appends the fields of the Attribution message (see
// AppendConversion) to b.
func pbAppendAttribution(b []byte, a *tapline.Attribution) []byte {
	b = pbAppendString(b, 1, a.HitID)
	b = pbAppendInt(b, 2, a.LinkID)
	b = pbAppendString(b, 3, string(a.Method))
	b = pbAppendTime(b, 4, a.HitTime)
	b = pbAppendMap(b, 5, a.HitParams)
	return b
}

// DecodeConversion decodes a value written by AppendConversion,
// or a legacy JSON one, into c, which it resets first. On error c is left
// zero.
func DecodeConversion(v []byte, c *tapline.Conversion) error {
	*c = tapline.Conversion{}
	body, isJSON, err := splitValue(v)
	switch {
	case err != nil:
	case isJSON:
		err = json.Unmarshal(v, c)
	default:
		err = pbDecodeConversion(body, c)
	}
	if err != nil {
		*c = tapline.Conversion{}
		return fmt.Errorf("decode conversion: %w", err)
	}
	return nil
}

// pbDecodeConversion decodes the message of AppendConversion into c.
func pbDecodeConversion(b []byte, c *tapline.Conversion) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			c.ID = r.string()
		case 2:
			c.AppID = r.int()
		case 3:
			c.EventID = r.string()
		case 4:
			c.InstallID = r.string()
		case 5:
			c.InstallTime = r.time()
		case 6:
			c.Platform = tapline.Platform(r.name(pbPlatforms))
		case 7:
			c.Fingerprint = r.string()
		case 8:
			r.skip() // written before conversions kept no advertising id
		case 9:
			if m, ok := r.message(); ok {
				r.fail(pbDecodeAttribution(m, &c.Attribution))
			}
		case 10:
			c.ClickToInstall = time.Duration(r.sint())
		case 11:
			if m, ok := r.message(); ok {
				c.History = append(c.History, tapline.AttributionChange{})
				r.fail(pbDecodeChange(m, &c.History[len(c.History)-1]))
			}
		case 12:
			c.UpdatedAt = r.time()
		case 13:
			c.Decision = new(tapline.Decision)
			if err := json.Unmarshal([]byte(r.string()), c.Decision); err != nil {
				r.fail(fmt.Errorf("decode decision: %w", err))
			}
		case 14:
			if m, ok := r.message(); ok {
				c.Reinstall = new(tapline.Reinstall)
				r.fail(pbDecodeReinstall(m, c.Reinstall))
			}
		default:
			r.skip()
		}
	}
	return r.err
}

// pbDecodeChange decodes an AttributionChange message (see
// AppendConversion) into ch.
func pbDecodeChange(b []byte, ch *tapline.AttributionChange) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			ch.By = r.string()
		case 2:
			if m, ok := r.message(); ok {
				if ch.From == nil {
					ch.From = new(tapline.Attribution)
				}
				r.fail(pbDecodeAttribution(m, ch.From))
			}
		case 3:
			if m, ok := r.message(); ok {
				r.fail(pbDecodeAttribution(m, &ch.To))
			}
		case 4:
			ch.At = r.time()
		case 5:
			if err := json.Unmarshal([]byte(r.string()), &ch.Fraud); err != nil {
				r.fail(fmt.Errorf("decode fraud findings: %w", err))
			}
		case 6:
			if err := json.Unmarshal([]byte(r.string()), &ch.Moved); err != nil {
				r.fail(fmt.Errorf("decode moved events: %w", err))
			}
		default:
			r.skip()
		}
	}
	return r.err
}

// pbDecodeAttribution decodes an Attribution message (see
// AppendConversion) into a.
func pbDecodeAttribution(b []byte, a *tapline.Attribution) error {
	r := pbReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			a.HitID = r.string()
		case 2:
			a.LinkID = r.int()
		case 3:
			a.Method = tapline.MatchMethod(r.name(pbMethods))
		case 4:
			a.HitTime = r.time()
		case 5:
			r.mapEntry(&a.HitParams)
		default:
			r.skip()
		}
	}
	return r.err
}

// pbAppendString appends field num with s, unless s is "".
//
// Protocol Buffers strings are UTF-8: a byte of s that is not part of a
// valid UTF-8 sequence is written as U+FFFD, as encoding/json writes it,
// so that a record reads the same from a binary value as from JSON.
func pbAppendString(b []byte, num protowire.Number, s string) []byte {
	return pbAppendValidString(b, num, validUTF8(s))
}

// pbAppendValidString is pbAppendString for s known to be valid UTF-8.
func pbAppendValidString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// validUTF8 returns s, with each byte outside a valid UTF-8 sequence
// replaced by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}

// pbAppendInt appends field num with v as a plain varint, unless v is 0.
// A negative v takes ten bytes; fields that may be negative use pbAppendSint.
func pbAppendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// pbAppendSint appends field num with v as a zigzag varint, unless v is 0.
func pbAppendSint(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(v))
}

// pbAppendBool appends field num as 1 if v is true.
func pbAppendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

// pbAppendTime appends field num with t as a Timestamp message, unless t
// is the zero time. The location and any monotonic reading are dropped.
func pbAppendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	sec, nsec := protowire.EncodeZigZag(t.Unix()), uint64(t.Nanosecond())
	n := 0
	if sec != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(sec)
	}
	if nsec != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(nsec)
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if sec != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, sec)
	}
	if nsec != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, nsec)
	}
	return b
}

// pbAppendMap appends m as repeated field num of map entries, in key
// order. A key or value of "" is left out of its entry.
func pbAppendMap(b []byte, num protowire.Number, m map[string]string) []byte {
	if len(m) == 0 {
		return b
	}
	var buf [16]string // keeps the keys of small maps off the heap
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		k, v := validUTF8(k), validUTF8(m[k]) // the sizes below are of what is written
		n := 0
		if k != "" {
			n += protowire.SizeTag(1) + protowire.SizeBytes(len(k))
		}
		if v != "" {
			n += protowire.SizeTag(2) + protowire.SizeBytes(len(v))
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = pbAppendValidString(b, 1, k)
		b = pbAppendValidString(b, 2, v)
	}
	return b
}

// pbMessage is a nested message being appended: pbBegin writes its tag and
// a one-byte length, the caller appends its fields, and end or endOrDrop
// sets the length, moving the fields on when it needs more bytes. One pass,
// with no size computation to keep in step with the fields.
type pbMessage struct {
	start int // offset of the tag
	body  int // offset of the first field, after the length
}

// pbBegin appends the tag of nested message field num and room for its
// length.
func pbBegin(b []byte, num protowire.Number) ([]byte, pbMessage) {
	start := len(b)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, pbMessage{start: start, body: len(b)}
}

// end sets the length of the message m, which ends at the end of b, and
// returns b. An empty message stays.
func (m pbMessage) end(b []byte) []byte {
	n := len(b) - m.body
	if n < 0x80 {
		b[m.body-1] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k-1)...)
	copy(b[m.body+k-1:], b[m.body:m.body+n])
	protowire.AppendVarint(b[:m.body-1], uint64(n))
	return b
}

// endOrDrop is end, except that it removes an empty message, tag and all.
func (m pbMessage) endOrDrop(b []byte) []byte {
	if len(b) == m.body {
		return b[:m.start]
	}
	return m.end(b)
}

// pbReader reads the fields of one message: next moves to a field, then
// exactly one of the reading methods consumes its value. The first error
// stops next and stays in err, prefixed with the field number.
type pbReader struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	err error
}

// next reads the tag of the next field and reports whether there is one.
func (r *pbReader) next() bool {
	if r.err != nil || len(r.b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.err = fmt.Errorf("field tag: %w", protowire.ParseError(n))
		return false
	}
	r.b = r.b[n:]
	r.num, r.typ = num, typ
	return true
}

// fail records err, if any, as the error of the current field.
func (r *pbReader) fail(err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("field %d: %w", r.num, err)
	}
}

// want reports whether the current field has wire type typ, and fails if
// not.
func (r *pbReader) want(typ protowire.Type) bool {
	if r.typ != typ {
		r.fail(fmt.Errorf("wire type %d, want %d", r.typ, typ))
		return false
	}
	return true
}

// varint consumes the current field as a varint.
func (r *pbReader) varint() uint64 {
	if !r.want(protowire.VarintType) {
		return 0
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.fail(protowire.ParseError(n))
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int consumes the current field as an int64 written by pbAppendInt.
func (r *pbReader) int() int64 { return int64(r.varint()) }

// sint consumes the current field as an int64 written by pbAppendSint.
func (r *pbReader) sint() int64 { return protowire.DecodeZigZag(r.varint()) }

// bool consumes the current field as a bool.
func (r *pbReader) bool() bool { return r.varint() != 0 }

// bytes consumes the current length-delimited field and returns its
// content, which aliases the message.
func (r *pbReader) bytes() ([]byte, bool) {
	if !r.want(protowire.BytesType) {
		return nil, false
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.fail(protowire.ParseError(n))
		return nil, false
	}
	r.b = r.b[n:]
	return v, true
}

// message consumes the current field as a nested message and returns it.
func (r *pbReader) message() ([]byte, bool) { return r.bytes() }

// string consumes the current field as a string.
func (r *pbReader) string() string {
	v, _ := r.bytes()
	return validUTF8(string(v)) // as pbAppendString writes it
}

// name consumes the current field as a string, returning the element of
// known equal to it, if any, to save a copy.
func (r *pbReader) name(known []string) string {
	v, _ := r.bytes()
	for _, s := range known {
		if string(v) == s {
			return s
		}
	}
	return validUTF8(string(v))
}

// time consumes the current field as a Timestamp message.
func (r *pbReader) time() time.Time {
	m, ok := r.message()
	if !ok {
		return time.Time{}
	}
	var sec int64
	var nsec uint64
	tr := pbReader{b: m}
	for tr.next() {
		switch tr.num {
		case 1:
			sec = tr.sint()
		case 2:
			nsec = tr.varint()
			if nsec >= uint64(time.Second) {
				tr.fail(fmt.Errorf("nanos %d out of range", nsec))
			}
		default:
			tr.skip()
		}
	}
	if tr.err != nil {
		r.fail(tr.err)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// mapEntry consumes the current field as a map entry and adds it to *m,
// making the map if it is nil.
func (r *pbReader) mapEntry(m *map[string]string) {
	e, ok := r.message()
	if !ok {
		return
	}
	var k, v string
	er := pbReader{b: e}
	for er.next() {
		switch er.num {
		case 1:
			k = er.string()
		case 2:
			v = er.string()
		default:
			er.skip()
		}
	}
	if er.err != nil {
		r.fail(er.err)
		return
	}
	if *m == nil {
		*m = make(map[string]string)
	}
	(*m)[k] = v
}

// skip consumes the current field, whatever its type, for a field number
// the reader does not know.
func (r *pbReader) skip() {
	n := protowire.ConsumeFieldValue(r.num, r.typ, r.b)
	if n < 0 {
		r.fail(protowire.ParseError(n))
		return
	}
	r.b = r.b[n:]
}
