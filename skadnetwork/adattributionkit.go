package skadnetwork

import (
	"encoding/base64"
	"strings"
)

// jwsPart decodes one segment of a compact JWS (RFC 7515 §7.1): base64url
// without padding, with no stray bits.
var jwsPart = base64.RawURLEncoding.Strict()

// parseAdAttributionKit reads the JSON Apple sends for an AdAttributionKit
// postback: jws-string, the compact JWS of the signed fields, beside the
// unsigned conversion-value, coarse-conversion-value, ad-interaction-type
// and country-code ("Identifying the parameters in a postback").
func parseAdAttributionKit(o *object) *Postback {
	p := &Postback{Kind: KindAdAttributionKit}
	p.JWS = o.str("jws-string", true)
	o.conversionValues(p)
	switch p.InteractionType = o.str("ad-interaction-type", false); p.InteractionType {
	case "", "view":
	case "click":
		p.FidelityType = 1
	default:
		o.fail("ad-interaction-type %q is neither view nor click", p.InteractionType)
	}
	p.CountryCode = o.str("country-code", false)
	if p.CountryCode != "" && (len(p.CountryCode) != 2 || strings.Trim(p.CountryCode, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "") {
		o.fail("country-code %q is not two capital letters", p.CountryCode)
	}
	if o.err != nil {
		return p
	}

	header, payload, _, err := splitJWS(p.JWS)
	if err != nil {
		o.err = err
		return p
	}
	h := decodeObject("jws header", header)
	if _, ok := h.m["crit"]; ok {
		h.fail("crit is not supported")
	}
	if alg := h.str("alg", true); h.err == nil && alg != "ES256" {
		h.fail("alg %q is not ES256", alg)
	}
	p.KeyID = h.str("kid", true)
	if h.err != nil {
		o.err = h.err
		return p
	}

	b := decodeObject("jws payload", payload)
	p.AdNetworkID = b.str("ad-network-identifier", true)
	p.SourceIdentifier = b.sourceIdentifier("source-identifier")
	p.AppID, _ = b.integer("advertised-item-identifier", true)
	p.TransactionID = b.str("postback-identifier", true)
	switch p.ConversionType = b.str("conversion-type", true); p.ConversionType {
	case ConversionDownload, ConversionReengagement:
	case ConversionRedownload:
		p.Redownload = true
	default:
		b.fail("conversion-type %q is not download, redownload or re-engagement", p.ConversionType)
	}
	p.ImpressionType = b.str("impression-type", true)
	if w, ok := b.boolean("did-win", true); ok {
		p.DidWin = &w
	}
	p.SequenceIndex = b.sequenceIndex("postback-sequence-index")
	p.MarketplaceID = b.str("marketplace-identifier", false)
	if id, ok := b.integer("publisher-item-identifier", false); ok {
		p.SourceAppID = &id
	}
	o.err = b.err
	return p
}

// splitJWS splits a compact JWS into its decoded header, payload and
// signature (RFC 7515 §7.1).
func splitJWS(jws string) (header, payload, sig []byte, err error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, nil, nil, invalid("postback: jws-string has %d parts, not 3.", len(parts))
	}
	for i, name := range []string{"header", "payload", "signature"} {
		b, err := jwsPart.DecodeString(parts[i])
		if err != nil || len(b) == 0 {
			return nil, nil, nil, invalid("postback: the jws %s is not base64url.", name)
		}
		switch i {
		case 0:
			header = b
		case 1:
			payload = b
		case 2:
			sig = b
		}
	}
	if len(sig) != 64 {
		return nil, nil, nil, invalid("postback: the jws signature has %d bytes, not the 64 of ES256.", len(sig))
	}
	return header, payload, sig, nil
}
