package skadnetwork

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"tapline"
)

// The kinds of postback, as tapline.SKANPostback keeps them.
const (
	KindSKAdNetwork      = tapline.SKANKindSKAdNetwork
	KindAdAttributionKit = tapline.SKANKindAdAttributionKit
)

// Versions lists the SKAdNetwork versions Parse accepts, oldest first.
var Versions = []string{"2.0", "2.1", "2.2", "3.0", "4.0"}

// The coarse conversion values.
const (
	CoarseLow    = "low"
	CoarseMedium = "medium"
	CoarseHigh   = "high"
)

// The AdAttributionKit conversion types, as tapline.SKANPostback keeps
// them.
const (
	ConversionDownload     = tapline.SKANConversionDownload
	ConversionRedownload   = tapline.SKANConversionRedownload
	ConversionReengagement = tapline.SKANConversionReengagement
)

// Postback is one SKAdNetwork or AdAttributionKit postback as Apple sent it,
// after Parse checked its shape. Fields a version does not have are left at
// their zero value, except where a field says otherwise.
type Postback struct {
	// Kind is KindSKAdNetwork or KindAdAttributionKit.
	Kind string
	// Version is the SKAdNetwork version ("2.0" to "4.0"); empty for
	// AdAttributionKit, whose postbacks carry no version.
	Version string
	// AdNetworkID is ad-network-id (ad-network-identifier in
	// AdAttributionKit).
	AdNetworkID string
	// SourceIdentifier is source-identifier: two to four digits. Before
	// SKAdNetwork 4.0 it holds campaign-id written in decimal without
	// padding ("42", "7"), exactly as the signature covers it.
	SourceIdentifier string
	// TransactionID is transaction-id, or AdAttributionKit's
	// postback-identifier: Apple's unique id of the postback.
	TransactionID string
	// AppID is app-id (advertised-item-identifier in AdAttributionKit), the
	// App Store id of the advertised app.
	AppID int64
	// Redownload is redownload; for AdAttributionKit, conversion-type is
	// "redownload".
	Redownload bool
	// SourceAppID is source-app-id (publisher-item-identifier in
	// AdAttributionKit), the app that showed the ad; nil when absent. Test
	// postbacks carry 0, so presence and value are kept apart.
	SourceAppID *int64
	// SourceDomain is source-domain, the site of a web ad (4.0 only).
	SourceDomain string
	// FidelityType is fidelity-type: 0 view-through, 1 StoreKit-rendered or
	// web ad. Versions before 2.2 had only StoreKit-rendered ads and no such
	// field, so they get 1; AdAttributionKit postbacks have no such field
	// and get 0 (see InteractionType).
	FidelityType int
	// ConversionValue is conversion-value (0–63); nil when absent.
	ConversionValue *int
	// CoarseValue is coarse-conversion-value: "low", "medium", "high" or
	// empty when absent.
	CoarseValue string
	// DidWin is did-win; nil before SKAdNetwork 3.0.
	DidWin *bool
	// SequenceIndex is postback-sequence-index, 0 to 2; 0 before 4.0.
	SequenceIndex int
	// Signature is SKAdNetwork's attribution-signature, base64.
	Signature string

	// JWS is AdAttributionKit's jws-string, the compact JWS Apple signed.
	JWS string
	// KeyID is the JWS header's kid: which Apple key signed it.
	KeyID string
	// MarketplaceID is AdAttributionKit's marketplace-identifier.
	MarketplaceID string
	// ConversionType is AdAttributionKit's conversion-type: "download",
	// "redownload" or "re-engagement".
	ConversionType string
	// ImpressionType is AdAttributionKit's impression-type.
	ImpressionType string
	// InteractionType is AdAttributionKit's ad-interaction-type, "view" or
	// "click"; outside the signature.
	InteractionType string
	// CountryCode is AdAttributionKit's country-code; outside the signature.
	CountryCode string

	// Raw is the body Parse was given.
	Raw []byte
}

// Window returns which of the three conversion windows the postback
// reports on: 0 (days 0–2), 1 (days 3–7) or 2 (days 8–35). Postbacks
// before SKAdNetwork 4.0 have one window, 0.
func (p *Postback) Window() int { return p.SequenceIndex }

// Key returns the postback's deduplication key: its kind, Apple's
// transaction (or postback) id and the window. Apple resends a postback
// until it is answered with 200, so the same key can arrive several times.
func (p *Postback) Key() string {
	return p.Kind + ":" + p.TransactionID + ":" + strconv.Itoa(p.SequenceIndex)
}

// MarshalJSON writes the postback back in Apple's form: the SKAdNetwork
// fields of its version, or the jws-string and the unsigned fields of an
// AdAttributionKit postback. Fields Parse ignored (ones Apple does not
// define) are not kept. Parse of the result gives p back, Raw aside.
func (p *Postback) MarshalJSON() ([]byte, error) {
	var w jsonWriter
	if p.Kind == KindAdAttributionKit {
		w.str("jws-string", p.JWS)
	} else {
		v, ok := versions[p.Version]
		if !ok {
			return nil, fmt.Errorf("marshal postback: version %q is not supported", p.Version)
		}
		w.str("version", p.Version)
		w.str("ad-network-id", p.AdNetworkID)
		if v.v4 {
			w.str("source-identifier", p.SourceIdentifier)
		} else if c, err := strconv.ParseUint(p.SourceIdentifier, 10, 31); err == nil {
			w.int("campaign-id", int64(c))
		} else {
			return nil, fmt.Errorf("marshal postback: campaign id %q is not a number", p.SourceIdentifier)
		}
		w.int("app-id", p.AppID)
		w.str("transaction-id", p.TransactionID)
		w.bool("redownload", p.Redownload)
		if p.SourceAppID != nil {
			w.int("source-app-id", *p.SourceAppID)
		}
		if p.SourceDomain != "" {
			w.str("source-domain", p.SourceDomain)
		}
		if v.fidelity {
			w.int("fidelity-type", int64(p.FidelityType))
		}
		if v.didWin && p.DidWin != nil {
			w.bool("did-win", *p.DidWin)
		}
		if v.v4 {
			w.int("postback-sequence-index", int64(p.SequenceIndex))
		}
		w.str("attribution-signature", p.Signature)
	}
	if p.ConversionValue != nil {
		w.int("conversion-value", int64(*p.ConversionValue))
	}
	if p.CoarseValue != "" {
		w.str("coarse-conversion-value", p.CoarseValue)
	}
	if p.InteractionType != "" {
		w.str("ad-interaction-type", p.InteractionType)
	}
	if p.CountryCode != "" {
		w.str("country-code", p.CountryCode)
	}
	return w.close(), nil
}

// jsonWriter writes one flat JSON object, its members in call order.
type jsonWriter struct{ b bytes.Buffer }

func (w *jsonWriter) raw(name, value string) {
	if w.b.Len() == 0 {
		w.b.WriteByte('{')
	} else {
		w.b.WriteByte(',')
	}
	w.b.WriteString(strconv.Quote(name))
	w.b.WriteByte(':')
	w.b.WriteString(value)
}

func (w *jsonWriter) str(name, value string) {
	v, _ := json.Marshal(value) // a string always marshals
	w.raw(name, string(v))
}

func (w *jsonWriter) int(name string, v int64) { w.raw(name, strconv.FormatInt(v, 10)) }

func (w *jsonWriter) bool(name string, v bool) { w.raw(name, strconv.FormatBool(v)) }

func (w *jsonWriter) close() []byte {
	if w.b.Len() == 0 {
		w.b.WriteByte('{')
	}
	w.b.WriteByte('}')
	return w.b.Bytes()
}
