package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"tapline"
)

// codecFiller sets every field of a value, recursively, to a non-zero
// value distinct from the others, so that a round trip through the codec
// fails for any field the codec forgets, including fields added later.
type codecFiller struct {
	tb testing.TB
	n  int
}

var codecTimeType = reflect.TypeFor[time.Time]()

// fill fills v, found at path (for messages).
func (f *codecFiller) fill(v reflect.Value, path string) {
	f.tb.Helper()
	f.n++
	if v.Type() == codecTimeType {
		// UTC with nanoseconds, as the collector stores times.
		t := time.Unix(1_700_000_000+int64(f.n)*3607, int64(f.n)*1_000_003+1).UTC()
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d", path, f.n))
	case reflect.Int64, reflect.Int:
		n := int64(f.n) * 1_000_003
		if f.n%2 == 1 {
			n = -n // negative ints take the long way through plain varints
		}
		v.SetInt(n)
	case reflect.Float64:
		// Scores and weights: signed, with a fraction JSON keeps exactly.
		x := float64(f.n) + 0.375
		if f.n%2 == 1 {
			x = -x
		}
		v.SetFloat(x)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			f.tb.Fatalf("%s: %s: only map[string]string is filled; teach codecFiller and the codec", path, v.Type())
		}
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k := fmt.Sprintf("%s-key%d-%d", path, i, f.n)
			m.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), reflect.ValueOf(k+"-value").Convert(v.Type().Elem()))
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), path)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			f.fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				f.tb.Fatalf("%s.%s: unexported field; teach codecFiller and the codec", path, sf.Name)
			}
			f.fill(v.Field(i), path+"."+sf.Name)
		}
	default:
		f.tb.Fatalf("%s: %s: kind %s is not filled; teach codecFiller and the codec", path, v.Type(), v.Kind())
	}
}

// codecFilled returns a new *T with every field set by codecFiller.
func codecFilled[T any](tb testing.TB) *T {
	tb.Helper()
	v := new(T)
	f := codecFiller{tb: tb}
	f.fill(reflect.ValueOf(v).Elem(), reflect.TypeFor[T]().Name())
	return v
}

// codecEncode encodes v, a *tapline.Hit, *tapline.Event or
// *tapline.Conversion, as the raw store does.
func codecEncode(tb testing.TB, v any) []byte {
	tb.Helper()
	switch v := v.(type) {
	case *tapline.Hit:
		return AppendHit(nil, v)
	case *tapline.Event:
		return AppendEvent(nil, v)
	case *tapline.Conversion:
		return AppendConversion(nil, v)
	}
	tb.Fatalf("codecEncode: %T", v)
	return nil
}

// codecDecode decodes b into a new value of like's type.
func codecDecode(tb testing.TB, b []byte, like any) (any, error) {
	tb.Helper()
	v := reflect.New(reflect.TypeOf(like).Elem()).Interface()
	return v, codecDecodeInto(tb, b, v)
}

// codecDecodeInto decodes b into v, a *tapline.Hit, *tapline.Event or
// *tapline.Conversion.
func codecDecodeInto(tb testing.TB, b []byte, v any) error {
	tb.Helper()
	switch v := v.(type) {
	case *tapline.Hit:
		return DecodeHit(b, v)
	case *tapline.Event:
		return DecodeEvent(b, v)
	case *tapline.Conversion:
		return DecodeConversion(b, v)
	}
	tb.Fatalf("codecDecodeInto: %T", v)
	return nil
}

// codecMismatch returns "" if got and want are reflect.DeepEqual, or else
// where they first differ, with both values there.
func codecMismatch(got, want any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	if d := codecDiff(fmt.Sprintf("%T", want), reflect.ValueOf(got), reflect.ValueOf(want)); d != "" {
		return d
	}
	return fmt.Sprintf("got %+v, want %+v", got, want)
}

// codecDiff returns the first difference between got and want, found at
// path, or "".
func codecDiff(path string, got, want reflect.Value) string {
	switch {
	case got.Type() == codecTimeType:
	case got.Kind() == reflect.Pointer && !got.IsNil() && !want.IsNil():
		return codecDiff(path, got.Elem(), want.Elem())
	case got.Kind() == reflect.Struct:
		for i := range got.NumField() {
			if d := codecDiff(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case got.Kind() == reflect.Slice && got.Len() == want.Len() && got.IsNil() == want.IsNil():
		for i := range got.Len() {
			if d := codecDiff(fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i)); d != "" {
				return d
			}
		}
		return ""
	}
	if reflect.DeepEqual(got.Interface(), want.Interface()) {
		return ""
	}
	return fmt.Sprintf("%s: got %#v, want %#v", path, got.Interface(), want.Interface())
}

// codecFilledValues returns a filled hit, event and conversion.
func codecFilledValues(tb testing.TB) []any {
	c := codecFilled[tapline.Conversion](tb)
	c.AdID = "" // never stored: TestConversionKeepsNoAdID
	return []any{codecFilled[tapline.Hit](tb), codecFilled[tapline.Event](tb), c}
}

// TestConversionKeepsNoAdID checks that a conversion's advertising id is
// not encoded, and that one encoded before (field 8, or legacy JSON) is
// dropped when read.
func TestConversionKeepsNoAdID(t *testing.T) {
	const ad = "6d9c5b8e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"
	c := codecFilled[tapline.Conversion](t)
	c.AdID = ad
	b := codecEncode(t, c)
	if bytes.Contains(b, []byte(ad)) {
		t.Fatalf("encoded conversion holds the advertising id: %x", b)
	}
	legacy := protowire.AppendString(protowire.AppendTag(bytes.Clone(b), 8, protowire.BytesType), ad)
	want := *c
	want.AdID = ""
	for name, v := range map[string][]byte{"current": b, "legacy": legacy, "json": []byte(`{"id":"cv-1","ad_id":"` + ad + `"}`)} {
		got, err := codecDecode(t, v, c)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if g := got.(*tapline.Conversion); g.AdID != "" {
			t.Errorf("%s: decoded AdID = %q, want none", name, g.AdID)
		} else if name != "json" {
			if d := codecMismatch(g, &want); d != "" {
				t.Errorf("%s: %s", name, d)
			}
		}
	}
}

// checkRoundTrip encodes in, decodes it and compares the result with want;
// it also checks that encoding is deterministic.
func checkRoundTrip(t *testing.T, in, want any) {
	t.Helper()
	b := codecEncode(t, in)
	if b[0] != valueProto {
		t.Fatalf("value starts with 0x%02x, want 0x%02x", b[0], valueProto)
	}
	got, err := codecDecode(t, b, in)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if d := codecMismatch(got, want); d != "" {
		t.Fatalf("round trip: %s", d)
	}
	for range 5 { // map iteration order differs from run to run
		if again := codecEncode(t, in); !bytes.Equal(again, b) {
			t.Fatalf("encoding is not deterministic:\n%x\n%x", b, again)
		}
	}
}

func TestCodecRoundTripFilled(t *testing.T) {
	for _, v := range codecFilledValues(t) {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			checkRoundTrip(t, v, v)
		})
	}
}

func TestCodecRoundTripPartial(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	for _, tc := range []struct {
		name string
		in   any
		want any // nil: in
	}{
		{name: "zero hit", in: &tapline.Hit{}},
		{name: "zero event", in: &tapline.Event{}},
		{name: "zero conversion", in: &tapline.Conversion{}},
		{name: "hit without maps", in: &tapline.Hit{ID: "h1", Time: at, AppID: 1, IP: "203.0.113.7", Platform: tapline.PlatformWeb}},
		{name: "hit with empty maps", in: &tapline.Hit{ID: "h1", ClientHints: map[string]string{}, Params: map[string]string{}}, want: &tapline.Hit{ID: "h1"}},
		{name: "map entries with empty key and value", in: &tapline.Hit{Params: map[string]string{"": "v", "k": ""}}},
		{name: "event with nil revenue and params", in: &tapline.Event{ID: "e1", Kind: tapline.KindOpen, Time: at, Device: tapline.Device{Platform: tapline.PlatformAndroid}}},
		{name: "event with empty revenue", in: &tapline.Event{ID: "e1", Revenue: &tapline.Revenue{}}},
		{name: "event with refund", in: &tapline.Event{Revenue: &tapline.Revenue{Micros: -990_000, Currency: "EUR"}}},
		{name: "event with only limit ad tracking", in: &tapline.Event{Device: tapline.Device{LimitAdTracking: true}}},
		{name: "event at the epoch", in: &tapline.Event{Time: time.Unix(0, 0).UTC(), ReceivedAt: time.Unix(-1, 999_999_999).UTC()}},
		{name: "conversion without history", in: &tapline.Conversion{ID: "cv-e1", Attribution: tapline.Attribution{Method: tapline.MethodOrganic}}},
		{name: "conversion with empty history", in: &tapline.Conversion{ID: "cv-e1", History: []tapline.AttributionChange{}}, want: &tapline.Conversion{ID: "cv-e1"}},
		{name: "conversion with zero changes", in: &tapline.Conversion{History: make([]tapline.AttributionChange, 2)}},
		{name: "conversion with empty from", in: &tapline.Conversion{History: []tapline.AttributionChange{{By: "p1"}, {By: "p2", From: &tapline.Attribution{}}}}},
		{
			name: "conversion re-attributed",
			in: &tapline.Conversion{
				ID: "cv-e1", AppID: 3, EventID: "e1", InstallID: "i1", InstallTime: at, Platform: tapline.PlatformIOS,
				Attribution:    tapline.Attribution{HitID: "h2", LinkID: 9, Method: tapline.MethodFingerprint, HitTime: at.Add(-time.Hour)},
				ClickToInstall: time.Hour,
				History: []tapline.AttributionChange{
					{By: "events/0/17", To: tapline.Attribution{Method: tapline.MethodOrganic}, At: at},
					{By: "hits/1/4", From: &tapline.Attribution{Method: tapline.MethodOrganic}, To: tapline.Attribution{HitID: "h2", LinkID: 9, Method: tapline.MethodFingerprint, HitTime: at.Add(-time.Hour)}, At: at.Add(time.Minute)},
				},
				UpdatedAt: at.Add(time.Minute),
			},
		},
		{
			name: "conversion with fraud findings",
			in: &tapline.Conversion{
				ID: "cv-e2", Attribution: tapline.Attribution{Method: tapline.MethodOrganic},
				History: []tapline.AttributionChange{{By: "events/0/18", To: tapline.Attribution{Method: tapline.MethodOrganic}, At: at,
					Fraud: []tapline.FraudFinding{
						{Signal: tapline.FraudClickInjection, HitID: "h3", LinkID: 4, Method: tapline.MethodReferrer, Value: "2s", Threshold: "10s", Action: tapline.FraudReject},
						{Signal: tapline.FraudDatacenter, HitID: "h3", LinkID: 4, Method: tapline.MethodReferrer, Value: "3.0.0.0/24 in AWS", Action: tapline.FraudFlag},
					}}},
			},
		},
		{name: "reinstall kept", in: &tapline.Conversion{ID: "cv-e2", Reinstall: &tapline.Reinstall{Of: "cv-e1", By: tapline.ReinstallByAdID}}},
		{name: "reinstall re-attributed", in: &tapline.Conversion{ID: "cv-e2", Reinstall: &tapline.Reinstall{Of: "cv-e1", By: tapline.ReinstallByVendorID, Reattributed: true}}},
		{name: "empty reinstall", in: &tapline.Conversion{ID: "cv-e2", Reinstall: &tapline.Reinstall{}}},
		{name: "long device", in: &tapline.Event{Device: tapline.Device{Model: strings.Repeat("m", 200), IDFA: strings.Repeat("a", 20000)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = tc.in
			}
			checkRoundTrip(t, tc.in, want)
		})
	}
}

func TestCodecTimes(t *testing.T) {
	// An absent time and the zero time written as Unix seconds decode to
	// time.Time{}, and a UTC time to what json.Unmarshal makes of its
	// RFC 3339 "Z" form, all by reflect.DeepEqual as the rows are compared.
	var e tapline.Event
	if err := DecodeEvent([]byte{valueProto}, &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Time, time.Time{}) {
		t.Errorf("absent time decodes to %#v, want time.Time{}", e.Time)
	}
	zero := time.Time{}
	b := []byte{valueProto}
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	b = protowire.AppendBytes(b, protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), protowire.EncodeZigZag(zero.Unix())))
	if err := DecodeEvent(b, &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Time, zero) {
		t.Errorf("zero time as seconds decodes to %#v, want time.Time{}", e.Time)
	}
	var fromJSON time.Time
	if err := json.Unmarshal([]byte(`"2025-03-14T15:09:26.535897932Z"`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	b = AppendEvent(nil, &tapline.Event{Time: fromJSON})
	if err := DecodeEvent(b, &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Time, fromJSON) {
		t.Errorf("got %#v, want %#v as json.Unmarshal decodes it", e.Time, fromJSON)
	}
}

func TestValueDecodeResets(t *testing.T) {
	for i, v := range codecFilledValues(t) {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			zero := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			for _, b := range [][]byte{codecEncode(t, zero), []byte("{}")} {
				// Decode into a filled value, as a scan reusing one struct does.
				reused := codecFilledValues(t)[i]
				if err := codecDecodeInto(t, b, reused); err != nil {
					t.Fatalf("decode %q: %v", b, err)
				}
				if d := codecMismatch(reused, zero); d != "" {
					t.Errorf("decode %q into a filled value: %s", b, d)
				}
			}
		})
	}
}

func TestValueLegacyJSON(t *testing.T) {
	for _, v := range codecFilledValues(t) {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			js, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codecDecode(t, js, v)
			if err != nil {
				t.Fatalf("decode JSON: %v", err)
			}
			want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(js, want); err != nil {
				t.Fatal(err)
			}
			if d := codecMismatch(got, want); d != "" {
				t.Errorf("JSON value: %s", d)
			}
			// With UTC times, JSON and binary values of the same row decode
			// alike, so a store holding both reads one kind of row.
			bin, err := codecDecode(t, codecEncode(t, v), v)
			if err != nil {
				t.Fatal(err)
			}
			if d := codecMismatch(bin, got); d != "" {
				t.Errorf("binary value differs from JSON one: %s", d)
			}
		})
	}
}

func TestValueUnknownFields(t *testing.T) {
	// Fields of every wire type, with numbers no message uses.
	var extra []byte
	extra = protowire.AppendTag(extra, 1000, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 1<<40)
	extra = protowire.AppendTag(extra, 1001, protowire.Fixed32Type)
	extra = protowire.AppendFixed32(extra, 7)
	extra = protowire.AppendTag(extra, 1002, protowire.Fixed64Type)
	extra = protowire.AppendFixed64(extra, 7)
	extra = protowire.AppendTag(extra, 1003, protowire.BytesType)
	extra = protowire.AppendString(extra, "from a newer version")
	extra = protowire.AppendTag(extra, 1004, protowire.StartGroupType)
	extra = protowire.AppendTag(extra, 1, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 1)
	extra = protowire.AppendTag(extra, 1004, protowire.EndGroupType)

	for _, v := range codecFilledValues(t) {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			b := codecEncode(t, v)
			for name, b := range map[string][]byte{
				"after":  append(bytes.Clone(b), extra...),
				"before": append(append([]byte{valueProto}, extra...), b[1:]...),
			} {
				got, err := codecDecode(t, b, v)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if d := codecMismatch(got, v); d != "" {
					t.Errorf("%s: %s", name, d)
				}
			}
		})
	}

	t.Run("nested", func(t *testing.T) {
		// A timestamp and a map entry with a field each that a newer
		// version added.
		ts := protowire.AppendTag(nil, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, protowire.EncodeZigZag(1_700_000_000))
		ts = append(ts, extra...)
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, 5)
		entry := append(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "k"), extra...)
		entry = protowire.AppendString(protowire.AppendTag(entry, 2, protowire.BytesType), "v")
		b := []byte{valueProto}
		b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), ts)
		b = protowire.AppendBytes(protowire.AppendTag(b, 10, protowire.BytesType), entry)
		var h tapline.Hit
		if err := DecodeHit(b, &h); err != nil {
			t.Fatal(err)
		}
		want := tapline.Hit{Time: time.Unix(1_700_000_000, 5).UTC(), Params: map[string]string{"k": "v"}}
		if d := codecMismatch(h, want); d != "" {
			t.Error(d)
		}
	})
}

func TestValueErrors(t *testing.T) {
	field := func(num protowire.Number, typ protowire.Type, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag([]byte{valueProto}, num, typ), v)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		want  string
	}{
		{name: "empty", value: nil, want: "decode %s: empty value"},
		{name: "unknown tag", value: []byte{0x02, 0x0a, 0x00}, want: "decode %s: unknown value format 0x02"},
		{name: "tag 0", value: []byte{0x00}, want: "decode %s: unknown value format 0x00"},
		{name: "bad JSON", value: []byte(`{"id":`), want: "decode %s: unexpected end of JSON input"},
		{name: "field number 0", value: []byte{valueProto, 0x00}, want: "decode %s: field tag: "},
		{name: "truncated length", value: []byte{valueProto, 0x0a, 0x05, 'a'}, want: "decode %s: field 1: "},
		{name: "wrong wire type", value: field(1, protowire.VarintType, 1), want: "decode %s: field 1: wire type 0, want 2"},
		{name: "reserved wire type", value: field(999, 6, 1), want: "decode %s: field 999: "},
		{name: "stray end group", value: field(999, protowire.EndGroupType, 1), want: "decode %s: field 999: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range codecFilledValues(t) {
				name := strings.ToLower(reflect.TypeOf(v).Elem().Name())
				got, err := codecDecode(t, tc.value, v)
				if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf(tc.want, name)) {
					t.Errorf("%s: got error %v, want %q", name, err, fmt.Sprintf(tc.want, name))
				}
				if zero := reflect.New(reflect.TypeOf(v).Elem()).Interface(); !reflect.DeepEqual(got, zero) {
					t.Errorf("%s: decoded %+v despite the error", name, got)
				}
			}
		})
	}

	t.Run("nanos out of range", func(t *testing.T) {
		ts := protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), uint64(time.Second))
		b := protowire.AppendBytes(protowire.AppendTag([]byte{valueProto}, 5, protowire.BytesType), ts)
		var e tapline.Event
		err := DecodeEvent(b, &e)
		if want := "decode event: field 5: field 2: nanos 1000000000 out of range"; err == nil || err.Error() != want {
			t.Errorf("got error %v, want %q", err, want)
		}
	})
	t.Run("nested error", func(t *testing.T) {
		dev := protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)
		b := protowire.AppendBytes(protowire.AppendTag([]byte{valueProto}, 9, protowire.BytesType), dev)
		var e tapline.Event
		err := DecodeEvent(b, &e)
		if want := "decode event: field 9: field 2: wire type 0, want 2"; err == nil || err.Error() != want {
			t.Errorf("got error %v, want %q", err, want)
		}
	})
}

func TestValuePrefixes(t *testing.T) {
	for _, v := range codecFilledValues(t) {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			b := codecEncode(t, v)
			var failed int
			for i := range len(b) {
				// A prefix ending between fields decodes (to fewer fields);
				// any other fails; none panics.
				got, err := codecDecode(t, b[:i:i], v)
				switch {
				case err != nil:
					failed++
				case i == 0:
					t.Fatalf("empty prefix decodes to %+v", got)
				case reflect.DeepEqual(got, v):
					t.Fatalf("prefix of %d of %d bytes decodes to the whole value", i, len(b))
				}
			}
			if failed < len(b)/2 {
				t.Errorf("only %d of %d prefixes fail to decode", failed, len(b))
			}
		})
	}
}

// FuzzDecodeValues feeds the three decoders arbitrary values and checks
// them with codecCheckDecode.
func FuzzDecodeValues(f *testing.F) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	seeds := append(codecFilledValues(f),
		&tapline.Hit{}, &tapline.Event{}, &tapline.Conversion{},
		codecBenchEvent(),
		&tapline.Event{Revenue: &tapline.Revenue{}, Device: tapline.Device{LimitAdTracking: true}},
		&tapline.Conversion{History: []tapline.AttributionChange{{By: "p", From: &tapline.Attribution{}, At: at}}},
	)
	for _, v := range seeds {
		f.Add(codecEncode(f, v))
		js, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	f.Fuzz(codecCheckDecode)
}

// codecCheckDecode decodes data with each decoder: none may panic, and
// whatever decodes from a binary value encodes to a value that decodes to
// the same struct and encodes to the same bytes.
func codecCheckDecode(t *testing.T, data []byte) {
	for _, like := range []any{&tapline.Hit{}, &tapline.Event{}, &tapline.Conversion{}} {
		got, err := codecDecode(t, data, like)
		if _, isJSON, _ := splitValue(data); err != nil || isJSON {
			// JSON values keep their time zones and empty slices, which
			// the binary format drops, so only binary ones round-trip.
			continue
		}
		b := codecEncode(t, got)
		again, err := codecDecode(t, b, like)
		if err != nil {
			t.Fatalf("%T: re-encoded value does not decode: %v\nvalue %x\nre-encoded %x", like, err, data, b)
		}
		if d := codecMismatch(again, got); d != "" {
			t.Fatalf("re-encoded value decodes differently: %s", d)
		}
		if b2 := codecEncode(t, again); !bytes.Equal(b2, b) {
			t.Fatalf("%T: encoding is not stable:\n%x\n%x", like, b, b2)
		}
	}
}

// TestValueCorrupted runs the fuzz test's checks on every valid value with
// each byte in turn overwritten, which the short fuzzing runs on shared
// machines may not reach.
func TestValueCorrupted(t *testing.T) {
	for _, v := range append(codecFilledValues(t), codecBenchEvent()) {
		b := codecEncode(t, v)
		for i := range b {
			for _, x := range []byte{0x00, 0x01, 0x7f, 0x80, 0xff, b[i] ^ 0x01, b[i] ^ 0x80} {
				c := bytes.Clone(b)
				c[i] = x
				codecCheckDecode(t, c)
			}
		}
	}
}

// codecBenchEvent returns a typical purchase as the collector stores it.
func codecBenchEvent() *tapline.Event {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	return &tapline.Event{
		ID:         "0f8c2a8e-3c1b-4b7e-9a55-6d2f1c9e7b40",
		AppID:      42,
		Name:       "purchase",
		Kind:       tapline.KindPurchase,
		Time:       at,
		ReceivedAt: at.Add(1213 * time.Millisecond),
		InstallID:  "6c1f0d3e-8b2a-4f9c-a7d5-1e3b9c0f2a64",
		IP:         "203.0.113.7",
		Device: tapline.Device{
			Platform:   tapline.PlatformIOS,
			OSVersion:  "17.4.1",
			Model:      "iPhone15,2",
			Vendor:     "Apple",
			Locale:     "en_US",
			Resolution: "1179x2556",
			AppVersion: "3.12.0",
			IDFA:       "5B0E3F4A-8C2D-4E6F-9A1B-2C3D4E5F6A7B",
			IDFV:       "A1B2C3D4-E5F6-4789-8ABC-DEF012345678",
		},
		Revenue:     &tapline.Revenue{Micros: 4_990_000, Currency: "USD"},
		Params:      map[string]string{"sku": "coins_500", "screen": "store", "ab_group": "b"},
		Protocol:    "v1",
		Fingerprint: "3f9a1c0e7b2d4a68",
		Source:      "events/3/1048576",
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	e := codecBenchEvent()
	js, err := json.Marshal(e)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		value []byte
	}{
		{"binary", AppendEvent(nil, e)},
		{"json", js},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var got tapline.Event // reused, as a scan may
			for b.Loop() {
				if err := DecodeEvent(bc.value, &got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(bc.value)), "value-bytes")
		})
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := codecBenchEvent()
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = AppendEvent(buf[:0], e)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestValueInvalidUTF8: bytes outside valid UTF-8 read back as U+FFFD from
// a binary value, as from the JSON one (a campaign counts alike whichever
// bus carried it), and JSON after whitespace is JSON.
func TestValueInvalidUTF8(t *testing.T) {
	h := &tapline.Hit{ID: "h1", UserAgent: "Mozilla/5.0 (caf\xc3", Params: map[string]string{"utm_campaign": "caf\xff\xfe", "k\x80": "v"},
		Time: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromBinary, fromSpacedJSON tapline.Hit
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := DecodeHit(AppendHit(nil, h), &fromBinary); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromBinary, fromJSON) {
		t.Errorf("binary value reads %+v, JSON %+v", fromBinary, fromJSON)
	}
	if fromBinary.Params["utm_campaign"] != "caf\ufffd\ufffd" {
		t.Errorf("campaign = %q, want two U+FFFD", fromBinary.Params["utm_campaign"])
	}
	if err := DecodeHit(append([]byte(" \n\t"), js...), &fromSpacedJSON); err != nil || !reflect.DeepEqual(fromSpacedJSON, fromJSON) {
		t.Errorf("JSON after whitespace: %+v, %v", fromSpacedJSON, err)
	}
}
