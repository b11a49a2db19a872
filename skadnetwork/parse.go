package skadnetwork

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"tapline"
)

// separator is U+2063 INVISIBLE SEPARATOR, which joins the fields of the
// message Apple signs.
const separator = "\u2063"

// version describes what one SKAdNetwork version's postback holds.
type version struct {
	fidelity bool // fidelity-type (2.2 and later)
	didWin   bool // did-win (3.0 and later)
	v4       bool // source-identifier for campaign-id, source-domain,
	// coarse-conversion-value and postback-sequence-index (4.0)
}

var versions = map[string]version{
	"2.0": {},
	"2.1": {},
	"2.2": {fidelity: true},
	"3.0": {fidelity: true, didWin: true},
	"4.0": {fidelity: true, didWin: true, v4: true},
}

// has reports whether a postback of version v may carry the field name; ok
// is false for a name that is no SKAdNetwork field at all.
func (v version) has(name string) (has, ok bool) {
	switch name {
	case "version", "ad-network-id", "app-id", "transaction-id", "attribution-signature",
		"redownload", "source-app-id", "conversion-value":
		return true, true
	case "campaign-id":
		return !v.v4, true
	case "fidelity-type":
		return v.fidelity, true
	case "did-win":
		return v.didWin, true
	case "source-identifier", "source-domain", "coarse-conversion-value", "postback-sequence-index":
		return v.v4, true
	}
	return false, false
}

// Parse decodes a postback body: an SKAdNetwork postback (versions 2.0,
// 2.1, 2.2, 3.0 and 4.0), or an AdAttributionKit one, recognised by its
// jws-string. It checks that the fields the version requires are there with
// the right types and ranges, and that no field of another version is; it
// ignores members Apple does not define, such as those an ad network adds
// when it forwards a postback. It does not check the signature: see Verify.
// Errors are *tapline.Error with code EINVALID.
func Parse(body []byte) (*Postback, error) {
	if !utf8.Valid(body) {
		return nil, invalid("the body is not UTF-8.")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, invalid("the body is not a JSON object.")
	}
	o := &object{what: "postback", m: fields}
	var p *Postback
	if _, ok := fields["jws-string"]; ok {
		p = parseAdAttributionKit(o)
	} else {
		p = parseSKAdNetwork(o)
	}
	if o.err != nil {
		return nil, o.err
	}
	p.Raw = body
	return p, nil
}

func parseSKAdNetwork(o *object) *Postback {
	p := &Postback{Kind: KindSKAdNetwork}
	p.Version = o.str("version", true)
	if o.err != nil {
		if _, ok := o.m["version"]; !ok {
			o.err = invalid("postback: version is missing; SKAdNetwork 1.0 postbacks, which had none, are not supported.")
		}
		return p
	}
	v, ok := versions[p.Version]
	if !ok {
		o.fail("version %q is not supported (%s are)", p.Version, strings.Join(Versions, ", "))
		return p
	}
	for _, name := range slices.Sorted(maps.Keys(o.m)) {
		if has, known := v.has(name); known && !has {
			o.fail("%s is not a field of version %s", name, p.Version)
			return p
		}
	}

	p.AdNetworkID = o.str("ad-network-id", true)
	if v.v4 {
		p.SourceIdentifier = o.sourceIdentifier("source-identifier")
	} else if c, ok := o.integer("campaign-id", true); ok {
		if c < 1 || c > 100 {
			o.fail("campaign-id %d is not between 1 and 100", c)
		}
		p.SourceIdentifier = strconv.FormatInt(c, 10)
	}
	p.AppID, _ = o.integer("app-id", true)
	p.TransactionID = o.str("transaction-id", true)
	p.Signature = o.str("attribution-signature", true)
	if o.err == nil {
		if _, err := base64.StdEncoding.DecodeString(p.Signature); err != nil {
			o.fail("attribution-signature is not base64")
		}
	}
	p.Redownload, _ = o.boolean("redownload", true)
	if id, ok := o.integer("source-app-id", false); ok {
		p.SourceAppID = &id
	}
	if v.v4 {
		p.SourceDomain = o.str("source-domain", false)
		if p.SourceAppID != nil && p.SourceDomain != "" {
			o.fail("source-app-id and source-domain are both present")
		}
	}
	p.FidelityType = 1
	if v.fidelity {
		f, _ := o.integer("fidelity-type", true)
		if f != 0 && f != 1 {
			o.fail("fidelity-type %d is neither 0 nor 1", f)
		}
		p.FidelityType = int(f)
	}
	if v.didWin {
		if w, ok := o.boolean("did-win", true); ok {
			p.DidWin = &w
		}
	}
	if v.v4 {
		p.SequenceIndex = o.sequenceIndex("postback-sequence-index")
	}
	o.conversionValues(p)
	return p
}

// object reads the members of one JSON object, keeping the first error.
type object struct {
	what string // "postback" or "jws payload", for error messages
	m    map[string]json.RawMessage
	err  error
}

func invalid(format string, args ...any) error {
	return tapline.Errorf(tapline.EINVALID, format, args...)
}

func (o *object) fail(format string, args ...any) {
	if o.err == nil {
		o.err = invalid(o.what+": "+format+".", args...)
	}
}

// member returns the raw value of name, or false (and an error if
// required) when it is absent.
func (o *object) member(name string, required bool) (json.RawMessage, bool) {
	raw, ok := o.m[name]
	if !ok && required {
		o.fail("%s is missing", name)
	}
	return raw, ok && o.err == nil
}

// str reads a non-empty string. The fields Apple signs are joined by
// U+2063, so a value holding one could pass for two fields: it is refused.
func (o *object) str(name string, required bool) string {
	raw, ok := o.member(name, required)
	if !ok {
		return ""
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		o.fail("%s is not a string", name)
		return ""
	}
	if s == "" {
		o.fail("%s is empty", name)
	} else if strings.Contains(s, separator) {
		o.fail("%s holds the separator U+2063", name)
	}
	return s
}

// integer reads a non-negative integer written without fraction or
// exponent, as Apple writes them.
func (o *object) integer(name string, required bool) (int64, bool) {
	raw, ok := o.member(name, required)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		o.fail("%s is not an integer", name)
		return 0, false
	}
	if n < 0 {
		o.fail("%s %d is negative", name, n)
		return 0, false
	}
	return n, true
}

func (o *object) boolean(name string, required bool) (bool, bool) {
	raw, ok := o.member(name, required)
	if !ok {
		return false, false
	}
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	o.fail("%s is not true or false", name)
	return false, false
}

// sourceIdentifier reads a hierarchical source identifier: a string of
// two, three or four digits.
func (o *object) sourceIdentifier(name string) string {
	s := o.str(name, true)
	if o.err != nil {
		return ""
	}
	if len(s) < 2 || len(s) > 4 || strings.Trim(s, "0123456789") != "" {
		o.fail("%s %q is not two to four digits", name, s)
	}
	return s
}

func (o *object) sequenceIndex(name string) int {
	i, ok := o.integer(name, true)
	if ok && i > 2 {
		o.fail("%s %d is not 0, 1 or 2", name, i)
	}
	return int(i)
}

// conversionValues reads conversion-value and coarse-conversion-value, of
// which a postback carries at most one.
func (o *object) conversionValues(p *Postback) {
	if cv, ok := o.integer("conversion-value", false); ok {
		if cv > 63 {
			o.fail("conversion-value %d is over 63", cv)
		}
		v := int(cv)
		p.ConversionValue = &v
	}
	switch p.CoarseValue = o.str("coarse-conversion-value", false); p.CoarseValue {
	case "", CoarseLow, CoarseMedium, CoarseHigh:
	default:
		o.fail("coarse-conversion-value %q is not low, medium or high", p.CoarseValue)
	}
	if p.ConversionValue != nil && p.CoarseValue != "" {
		o.fail("conversion-value and coarse-conversion-value are both present")
	}
}

// decodeObject decodes one JSON object for object.
func decodeObject(what string, b []byte) *object {
	o := &object{what: what}
	if !utf8.Valid(b) || json.Unmarshal(b, &o.m) != nil || o.m == nil {
		o.err = invalid("%s is not a JSON object.", what)
	}
	return o
}
