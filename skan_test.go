package tapline_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"tapline"
)

func TestSKANPostbackFact(t *testing.T) {
	at := time.Date(2026, 3, 10, 17, 30, 0, 0, time.UTC)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC).Unix()
	yes, no, fine := true, false, 20
	base := tapline.SKANPostback{AppID: 7, Kind: tapline.SKANKindSKAdNetwork, Via: tapline.SKANViaDeveloper,
		AdNetworkID: "example123.skadnetwork", SourceIdentifier: "42", Window: 0, ConversionValue: &fine,
		Redownload: true, Status: tapline.SKANVerified, ReceivedAt: at}
	with := func(f func(p *tapline.SKANPostback)) tapline.SKANPostback { p := base; f(&p); return p }
	counted := tapline.FactKey{Table: tapline.FactSKAN, Hour: day, AppID: 7, AdNetwork: "example123.skadnetwork",
		SourceIdentifier: "42", ConversionValue: "20"}
	tests := []struct {
		name string
		p    tapline.SKANPostback
		key  func(k tapline.FactKey) tapline.FactKey
		val  tapline.FactValue
	}{
		{"before 3.0 every postback won", base,
			func(k tapline.FactKey) tapline.FactKey { k.Outcome = tapline.SKANWon; return k }, tapline.FactValue{Count: 1, Sum: 1}},
		{"did-win true", with(func(p *tapline.SKANPostback) { p.DidWin, p.Redownload = &yes, false }),
			func(k tapline.FactKey) tapline.FactKey { k.Outcome = tapline.SKANWon; return k }, tapline.FactValue{Count: 1}},
		{"did-win false", with(func(p *tapline.SKANPostback) { p.DidWin = &no }),
			func(k tapline.FactKey) tapline.FactKey { k.Outcome = tapline.SKANNotWon; return k }, tapline.FactValue{Count: 1, Sum: 1}},
		{"coarse, window 2", with(func(p *tapline.SKANPostback) { p.ConversionValue, p.CoarseValue, p.Window = nil, "high", 2 }),
			func(k tapline.FactKey) tapline.FactKey {
				k.Outcome, k.ConversionValue, k.PostbackWindow = tapline.SKANWon, "high", 2
				return k
			}, tapline.FactValue{Count: 1, Sum: 1}},
		{"withheld value", with(func(p *tapline.SKANPostback) { p.ConversionValue = nil }),
			func(k tapline.FactKey) tapline.FactKey { k.Outcome, k.ConversionValue = tapline.SKANWon, ""; return k }, tapline.FactValue{Count: 1, Sum: 1}},
		{"re-engagement", with(func(p *tapline.SKANPostback) {
			p.ConversionType, p.Redownload = tapline.SKANConversionReengagement, false
		}),
			func(k tapline.FactKey) tapline.FactKey { k.Outcome = tapline.SKANReengagement; return k }, tapline.FactValue{Count: 1}},
		{"re-engagement not won", with(func(p *tapline.SKANPostback) { p.ConversionType, p.DidWin = tapline.SKANConversionReengagement, &no }),
			func(k tapline.FactKey) tapline.FactKey { k.Outcome = tapline.SKANNotWon; return k }, tapline.FactValue{Count: 1, Sum: 1}},
		{"duplicate", with(func(p *tapline.SKANPostback) { p.Status = tapline.SKANDuplicate }),
			func(k tapline.FactKey) tapline.FactKey { k.Outcome = tapline.SKANDuplicateOutcome; return k }, tapline.FactValue{Count: 1, Sum: 1}},
		{"rejected keeps nothing it claims", with(func(p *tapline.SKANPostback) { p.Status = tapline.SKANRejected }),
			func(tapline.FactKey) tapline.FactKey {
				return tapline.FactKey{Table: tapline.FactSKAN, Hour: day, AppID: 7, Outcome: tapline.SKANRejectedOutcome}
			}, tapline.FactValue{Count: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, v := tt.p.Fact()
			if want := tt.key(counted); k != want || v != tt.val {
				t.Errorf("Fact() = %+v, %+v\nwant      %+v, %+v", k, v, want, tt.val)
			}
			if err := k.Validate(); err != nil {
				t.Errorf("the key is no row of its table: %v", err)
			}
		})
	}
}

func TestSKANPostbackValidate(t *testing.T) {
	fine := 64
	ok := tapline.SKANPostback{AppID: 1, Kind: tapline.SKANKindAdAttributionKit, Via: tapline.SKANViaNetwork,
		Status: tapline.SKANRejected, Raw: []byte(`{}`)}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	for name, f := range map[string]func(p *tapline.SKANPostback){
		"no app":          func(p *tapline.SKANPostback) { p.AppID = 0 },
		"kind":            func(p *tapline.SKANPostback) { p.Kind = "skan" },
		"via":             func(p *tapline.SKANPostback) { p.Via = "" },
		"duplicate given": func(p *tapline.SKANPostback) { p.Status = tapline.SKANDuplicate },
		"window":          func(p *tapline.SKANPostback) { p.Window = 3 },
		"fine value":      func(p *tapline.SKANPostback) { p.ConversionValue = &fine },
		"coarse value":    func(p *tapline.SKANPostback) { p.CoarseValue = "huge" },
		"conversion type": func(p *tapline.SKANPostback) { p.ConversionType = "install" },
		"long network":    func(p *tapline.SKANPostback) { p.AdNetworkID = strings.Repeat("n", 256) },
		"NUL":             func(p *tapline.SKANPostback) { p.TransactionID = "a\x00" },
		"no body":         func(p *tapline.SKANPostback) { p.Raw = nil },
	} {
		p := ok
		f(&p)
		if err := p.Validate(); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("%s: Validate() = %v, want EINVALID", name, err)
		}
	}
}

func TestConversionSchema(t *testing.T) {
	var s tapline.ConversionSchema
	if err := json.Unmarshal([]byte(`{"fine":{"20":" purchase ","3":"","63":"revenue over 100 USD"},"coarse":{"high":"paying user"}}`), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	var want tapline.ConversionSchema
	want.Fine[20], want.Fine[63], want.Coarse[2] = "purchase", "revenue over 100 USD", "paying user"
	if s != want {
		t.Errorf("validated schema %+v, want %+v", s, want)
	}
	if b, err := json.Marshal(s); err != nil || string(b) != `{"fine":{"20":"purchase","63":"revenue over 100 USD"},"coarse":{"high":"paying user"}}` {
		t.Errorf("JSON %s, %v", b, err)
	}
	if b, _ := json.Marshal(tapline.ConversionSchema{}); string(b) != `{}` {
		t.Errorf("empty schema's JSON %s", b)
	}
	for value, label := range map[string]string{"20": "purchase", "21": "value 21", "high": "paying user", "low": "low", "": "no value (withheld by Apple)"} {
		if got := s.Label(value); got != label {
			t.Errorf("Label(%q) = %q, want %q", value, got, label)
		}
	}
	if got := strings.Join(s.Values(), ","); got != "20,63,high" {
		t.Errorf("Values() = %s", got)
	}
	if err := s.SetLabel("medium", "some"); err != nil || s.Label("medium") != "some" {
		t.Errorf("SetLabel(medium) = %v, label %q", err, s.Label("medium"))
	}
	for _, v := range []string{"64", "-1", "07", "max", ""} {
		if err := s.SetLabel(v, "x"); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("SetLabel(%q) = %v, want EINVALID", v, err)
		}
	}
	for _, bad := range []string{`{"fine":{"64":"x"}}`, `{"fine":{"-1":"x"}}`, `{"coarse":{"max":"x"}}`, `{"fine":{"1":2}}`, `[]`} {
		var s tapline.ConversionSchema
		if err := json.Unmarshal([]byte(bad), &s); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("Unmarshal(%s) = %v, want EINVALID", bad, err)
		}
	}
	long := tapline.ConversionSchema{}
	long.Fine[1] = strings.Repeat("x", tapline.MaxSchemaLabel+1)
	control := tapline.ConversionSchema{}
	control.Coarse[0] = "a\nb"
	for name, bad := range map[string]tapline.ConversionSchema{"long label": long, "control label": control} {
		if err := bad.Validate(); tapline.ErrorCode(err) != tapline.EINVALID {
			t.Errorf("%s: Validate() = %v, want EINVALID", name, err)
		}
	}
}
