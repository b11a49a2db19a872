package tapline

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// SKANStatus is what tapline made of a SKAdNetwork or AdAttributionKit
// postback.
type SKANStatus string

// Statuses of a postback.
const (
	// SKANVerified: Apple's signature checks out and its key (SKANPostback.Key)
	// was not counted before: counted once.
	SKANVerified SKANStatus = "verified"
	// SKANRejected: the signature does not check out, or is made with a
	// key tapline does not trust. Kept and shown, never counted.
	SKANRejected SKANStatus = "rejected"
	// SKANDuplicate: verified, but a postback with its key was counted
	// before (the developer's copy and an ad network's forward of the same
	// postback, say). Kept and shown, counted as a duplicate only.
	SKANDuplicate SKANStatus = "duplicate"
)

// SKANStatuses lists the statuses.
var SKANStatuses = []SKANStatus{SKANVerified, SKANRejected, SKANDuplicate}

// The kinds of postback (SKANPostback.Kind); package skadnetwork names
// them too.
const (
	SKANKindSKAdNetwork      = "skadnetwork"
	SKANKindAdAttributionKit = "adattributionkit"
)

// AdAttributionKit's conversion types (SKANPostback.ConversionType).
const (
	SKANConversionDownload     = "download"
	SKANConversionRedownload   = "redownload"
	SKANConversionReengagement = "re-engagement"
)

// How a postback reached tapline (SKANPostback.Via).
const (
	// SKANViaDeveloper is Apple's copy to the advertised app's developer,
	// posted to the collector's /.well-known/... endpoints.
	SKANViaDeveloper = "developer"
	// SKANViaNetwork is a postback an ad network received and forwarded
	// with the app's SDK key.
	SKANViaNetwork = "network"
)

// SKANOutcome is how a postback counts in the FactSKAN rows.
type SKANOutcome string

// Outcomes of a postback.
const (
	// SKANWon is a verified postback of the ad network Apple credited
	// (did-win true, or absent before SKAdNetwork 3.0, when only the
	// winner was told). In window 0 it is an install.
	SKANWon SKANOutcome = "won"
	// SKANNotWon is a verified postback of a network that took part but
	// was not credited (did-win false): never an install.
	SKANNotWon SKANOutcome = "not_won"
	// SKANReengagement is a winning AdAttributionKit postback of a
	// re-engagement (conversion-type re-engagement): a person who had the
	// app opened it from an ad. Never an install.
	SKANReengagement SKANOutcome = "reengagement"
	// SKANRejectedOutcome counts rejected postbacks; their row keeps none
	// of the dimensions they claim, which nothing vouches for.
	SKANRejectedOutcome SKANOutcome = "rejected"
	// SKANDuplicateOutcome counts duplicates.
	SKANDuplicateOutcome SKANOutcome = "duplicate"
)

// SKANPostback is one SKAdNetwork or AdAttributionKit install postback as
// tapline keeps it: the fields Apple sent (see package skadnetwork for
// their meaning), which app it belongs to, how it came and what was made
// of it.
type SKANPostback struct {
	ID    int64 `json:"id"`
	AppID int64 `json:"app_id"`
	// Kind is "skadnetwork" or "adattributionkit"; Version the SKAdNetwork
	// version ("2.0" to "4.0"), empty for AdAttributionKit.
	Kind    string `json:"kind"`
	Version string `json:"version,omitempty"`
	// Via is SKANViaDeveloper or SKANViaNetwork.
	Via string `json:"via"`

	AdNetworkID string `json:"ad_network_id"`
	// SourceIdentifier is the source identifier, or before SKAdNetwork
	// 4.0 the campaign id, in decimal.
	SourceIdentifier string `json:"source_identifier"`
	// AppStoreID is the postback's app-id: the advertised app's App Store
	// id, which names its App (App.AppStoreID).
	AppStoreID    int64  `json:"app_store_id"`
	TransactionID string `json:"transaction_id"`
	// Window is the conversion window the postback reports on: 0 (days
	// 0–2, the install's), 1 (days 3–7) or 2 (days 8–35).
	Window int `json:"window"`
	// ConversionValue is the fine value (0–63), CoarseValue the coarse one
	// (low, medium, high); a postback has at most one, none when Apple
	// withheld it.
	ConversionValue *int   `json:"conversion_value,omitempty"`
	CoarseValue     string `json:"coarse_value,omitempty"`
	// ConversionType is AdAttributionKit's conversion-type: download,
	// redownload or re-engagement; empty for SKAdNetwork.
	ConversionType string `json:"conversion_type,omitempty"`
	// FidelityType is 0 for a view-through ad, 1 for a StoreKit-rendered
	// or web ad (a click).
	FidelityType int   `json:"fidelity_type"`
	Redownload   bool  `json:"redownload"`
	DidWin       *bool `json:"did_win,omitempty"`
	// SourceAppID is the app that showed the ad, SourceDomain the site.
	SourceAppID  *int64 `json:"source_app_id,omitempty"`
	SourceDomain string `json:"source_domain,omitempty"`

	Status SKANStatus `json:"status"`
	// Reason says why a postback was rejected or is a duplicate.
	Reason string `json:"reason,omitempty"`
	// Key is the deduplication key: kind, transaction id and window.
	Key string `json:"key"`
	// Raw is the body as received.
	Raw json.RawMessage `json:"raw"`
	// ReceivedAt is when the postback first came; Received counts the
	// times this very body came (Apple retries until answered 200).
	ReceivedAt time.Time `json:"received_at"`
	Received   int       `json:"received"`
}

// Limits on what a stored postback holds.
const (
	MaxSKANField = 255 // bytes of an identifier (ad network, transaction, domain)
)

// Validate checks what is stored and counted of p: its app, kind, via,
// status, window, values and the length of its identifiers. Anything else
// is Apple's and package skadnetwork checked its shape.
func (p *SKANPostback) Validate() error {
	bad := func(format string, args ...any) error { return Errorf(EINVALID, "postback: "+format, args...) }
	switch {
	case p.AppID <= 0:
		return bad("app is required.")
	case p.Kind != SKANKindSKAdNetwork && p.Kind != SKANKindAdAttributionKit:
		return bad("kind %q is neither skadnetwork nor adattributionkit.", p.Kind)
	case p.Via != SKANViaDeveloper && p.Via != SKANViaNetwork:
		return bad("via %q is neither developer nor network.", p.Via)
	case p.Status != SKANVerified && p.Status != SKANRejected:
		return bad("a postback is recorded verified or rejected, not %q.", p.Status)
	case p.Window < 0 || p.Window > 2:
		return bad("window %d is not 0, 1 or 2.", p.Window)
	case p.ConversionValue != nil && (*p.ConversionValue < 0 || *p.ConversionValue > 63):
		return bad("conversion value %d is not 0 to 63.", *p.ConversionValue)
	case p.ConversionValue != nil && p.CoarseValue != "":
		return bad("a fine and a coarse conversion value.")
	case p.CoarseValue != "" && !slices.Contains(CoarseValues, p.CoarseValue):
		return bad("coarse value %q is not low, medium or high.", p.CoarseValue)
	case !slices.Contains([]string{"", SKANConversionDownload, SKANConversionRedownload, SKANConversionReengagement}, p.ConversionType):
		return bad("conversion type %q is not download, redownload or re-engagement.", p.ConversionType)
	case len(p.Raw) == 0:
		return bad("the body is empty.")
	}
	for _, f := range []struct{ name, v string }{
		{"ad network id", p.AdNetworkID}, {"source identifier", p.SourceIdentifier}, {"transaction id", p.TransactionID},
		{"source domain", p.SourceDomain}, {"version", p.Version}, {"key", p.Key},
	} {
		if len(f.v) > MaxSKANField || !storableText(f.v) {
			return bad("%s is over %d bytes or not text.", f.name, MaxSKANField)
		}
	}
	if !storableText(p.Reason) {
		return bad("the reason is not text.")
	}
	return nil
}

// storableText reports whether s is valid UTF-8 without NUL, which a
// PostgreSQL text column takes.
func storableText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// Won reports whether p's ad network is the one Apple credited: did-win
// true, or absent (before SKAdNetwork 3.0 only the winner was told).
func (p *SKANPostback) Won() bool { return p.DidWin == nil || *p.DidWin }

// Value returns p's conversion value as the fact rows and reports keep
// it: the fine value in decimal ("20"), the coarse one ("high"), or ""
// when Apple withheld it.
func (p *SKANPostback) Value() string {
	if p.ConversionValue != nil {
		return strconv.Itoa(*p.ConversionValue)
	}
	return p.CoarseValue
}

// Outcome returns how p counts: by its status and, verified, whether its
// network won and whether it is a re-engagement.
func (p *SKANPostback) Outcome() SKANOutcome {
	switch {
	case p.Status == SKANRejected:
		return SKANRejectedOutcome
	case p.Status == SKANDuplicate:
		return SKANDuplicateOutcome
	case !p.Won():
		return SKANNotWon
	case p.ConversionType == SKANConversionReengagement:
		return SKANReengagement
	}
	return SKANWon
}

// Fact returns the FactSKAN row p adds to and what it adds: one postback,
// and one redownload when it is one, on the UTC day it was received. A
// rejected postback's row keeps only its day and outcome: nothing vouches
// for the network, source, window or value it claims, and anyone can post
// one.
func (p *SKANPostback) Fact() (FactKey, FactValue) {
	k := FactKey{Table: FactSKAN, Hour: p.ReceivedAt.Unix(), AppID: p.AppID, Outcome: p.Outcome()}
	if p.Status != SKANRejected {
		k.AdNetwork, k.SourceIdentifier, k.PostbackWindow, k.ConversionValue = p.AdNetworkID, p.SourceIdentifier, p.Window, p.Value()
	}
	v := FactValue{Count: 1}
	if p.Redownload && p.Status != SKANRejected {
		v.Sum = 1
	}
	return k.Normalise(), v
}

// CoarseValues are the coarse conversion values, lowest first.
var CoarseValues = []string{"low", "medium", "high"}

// MaxFineValue is the highest fine conversion value.
const MaxFineValue = 63

// MaxSchemaLabel bounds a label of a ConversionSchema, in bytes.
const MaxSchemaLabel = 100

// ConversionSchema names an app's conversion values: what the app meant by
// fine value 20 or coarse value high ("purchase", "revenue 1–5 USD"), so
// reports say that instead of the number. An empty label leaves a value
// unnamed. It is comparable, as App is. In JSON it is two objects of the
// labelled values: {"fine":{"20":"purchase"},"coarse":{"high":"paying"}}.
type ConversionSchema struct {
	// Fine labels the fine values, 0 to MaxFineValue, by index.
	Fine [MaxFineValue + 1]string
	// Coarse labels the coarse values in CoarseValues order: low, medium,
	// high.
	Coarse [3]string
}

// conversionSchemaJSON is ConversionSchema's JSON shape.
type conversionSchemaJSON struct {
	Fine   map[string]string `json:"fine,omitempty"`
	Coarse map[string]string `json:"coarse,omitempty"`
}

// MarshalJSON writes the labelled values of s.
func (s ConversionSchema) MarshalJSON() ([]byte, error) {
	var j conversionSchemaJSON
	for v, l := range s.Fine {
		if l != "" {
			if j.Fine == nil {
				j.Fine = map[string]string{}
			}
			j.Fine[strconv.Itoa(v)] = l
		}
	}
	for i, l := range s.Coarse {
		if l != "" {
			if j.Coarse == nil {
				j.Coarse = map[string]string{}
			}
			j.Coarse[CoarseValues[i]] = l
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the JSON shape MarshalJSON writes; a fine value that
// is not 0 to 63, a coarse one that is not low, medium or high, or a label
// that is no string is EINVALID. The labels are checked by Validate.
func (s *ConversionSchema) UnmarshalJSON(b []byte) error {
	var j conversionSchemaJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Errorf(EINVALID, "conversion_schema: want {\"fine\": {\"20\": \"label\"}, \"coarse\": {\"high\": \"label\"}}")
	}
	var out ConversionSchema
	for v, l := range j.Fine {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxFineValue || v != strconv.Itoa(n) {
			return Errorf(EINVALID, "conversion_schema: fine value %q is not 0 to %d", v, MaxFineValue)
		}
		out.Fine[n] = l
	}
	for v, l := range j.Coarse {
		i := slices.Index(CoarseValues, v)
		if i < 0 {
			return Errorf(EINVALID, "conversion_schema: coarse value %q is not low, medium or high", v)
		}
		out.Coarse[i] = l
	}
	*s = out
	return nil
}

// Validate trims the labels and checks that each has at most
// MaxSchemaLabel bytes of text without control characters.
func (s *ConversionSchema) Validate() error {
	check := func(what string, l *string) error {
		*l = strings.TrimSpace(*l)
		if len(*l) > MaxSchemaLabel || !utf8.ValidString(*l) || strings.ContainsFunc(*l, unicode.IsControl) {
			return Errorf(EINVALID, "conversion_schema: the label of %s must be at most %d characters of text", what, MaxSchemaLabel)
		}
		return nil
	}
	for v := range s.Fine {
		if err := check("fine value "+strconv.Itoa(v), &s.Fine[v]); err != nil {
			return err
		}
	}
	for i := range s.Coarse {
		if err := check("coarse value "+CoarseValues[i], &s.Coarse[i]); err != nil {
			return err
		}
	}
	return nil
}

// SetLabel labels value (as SKANPostback.Value gives it: "20", "high");
// an empty label removes it. An unknown value is EINVALID.
func (s *ConversionSchema) SetLabel(value, label string) error {
	if i := slices.Index(CoarseValues, value); i >= 0 {
		s.Coarse[i] = label
		return nil
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 || n > MaxFineValue || value != strconv.Itoa(n) {
		return Errorf(EINVALID, "conversion_schema: %q is neither a fine value (0 to %d) nor low, medium or high", value, MaxFineValue)
	}
	s.Fine[n] = label
	return nil
}

// Labelled returns the label of value, "" when it has none.
func (s *ConversionSchema) Labelled(value string) string {
	if i := slices.Index(CoarseValues, value); i >= 0 {
		return s.Coarse[i]
	}
	if n, err := strconv.Atoi(value); err == nil && n >= 0 && n <= MaxFineValue {
		return s.Fine[n]
	}
	return ""
}

// Label returns what the schema calls a conversion value as
// SKANPostback.Value gives it: its label, else "value 20" for an
// unlabelled fine value, the coarse value itself ("high"), or, for "",
// that Apple withheld it.
func (s *ConversionSchema) Label(value string) string {
	switch l := s.Labelled(value); {
	case l != "":
		return l
	case value == "":
		return "no value (withheld by Apple)"
	case slices.Contains(CoarseValues, value):
		return value
	}
	return "value " + value
}

// Values lists the values s labels as SKANPostback.Value gives them: fine
// ones in order, then the coarse ones from low to high.
func (s *ConversionSchema) Values() []string {
	var out []string
	for v, l := range s.Fine {
		if l != "" {
			out = append(out, strconv.Itoa(v))
		}
	}
	for i, l := range s.Coarse {
		if l != "" {
			out = append(out, CoarseValues[i])
		}
	}
	return out
}

// SKANCount is one FactSKAN row summed over a range of days: the
// postbacks of one ad network, source identifier, window, value and
// outcome, and how many of them were redownloads.
type SKANCount struct {
	AdNetwork        string      `json:"ad_network"`
	SourceIdentifier string      `json:"source_identifier"`
	Window           int         `json:"window"`
	Value            string      `json:"value"`
	Outcome          SKANOutcome `json:"outcome"`
	Postbacks        int64       `json:"postbacks"`
	Redownloads      int64       `json:"redownloads"`
}

// SKANQuery selects stored postbacks of one app, newest first.
type SKANQuery struct {
	AppID int64
	// Status, when set, selects postbacks of that status.
	Status SKANStatus
	// Before, when not 0, continues after the page whose last id it was.
	Before int64
	// Limit is the page size: 1 to MaxSKANPage, 0 for DefaultSKANPage.
	Limit int
}

// Sizes of a page of postbacks.
const (
	DefaultSKANPage = 50
	MaxSKANPage     = 500
)

// DefaultSKANMaxRejected is how many rejected postbacks an app keeps per
// UTC day of receipt by default. Anyone can post a forged postback for a
// known App Store id and each distinct body would be a row: the bound
// keeps a flood of them from filling the database, and leaves enough of
// them to see why postbacks are rejected (a development build, say).
// Verified postbacks have no such bound.
const DefaultSKANMaxRejected = 100

// ErrSKANRejectedFull is the error of RecordSKANPostback for a rejected
// postback it did not store because its app already keeps its bound of
// rejected postbacks of that UTC day: nothing was stored or counted.
var ErrSKANRejectedFull = &Error{Code: ERATELIMITED, Message: "The app keeps no more rejected postbacks today; this one was not stored."}

// SKANStore keeps the SKAdNetwork and AdAttributionKit postbacks and their
// FactSKAN rows.
type SKANStore interface {
	// RecordSKANPostback stores p (verified or rejected) and adds its fact
	// row (SKANPostback.Fact) in one transaction, setting ID, ReceivedAt
	// and Received. A body the app stored before is the same postback
	// sent again: p becomes that row, with Received one more, and nothing
	// is counted. A verified postback whose Key a verified one holds is
	// stored as SKANDuplicate with the reason. A new rejected postback of
	// an app that keeps its bound of rejected postbacks of the UTC day is
	// not stored: ErrSKANRejectedFull. A bad p is EINVALID; a database that
	// cannot be reached EUNAVAILABLE.
	RecordSKANPostback(ctx context.Context, p *SKANPostback) error
	// SKANPostbacks lists the postbacks q selects, newest first.
	SKANPostbacks(ctx context.Context, q SKANQuery) ([]*SKANPostback, error)
	// SKANCounts sums an app's FactSKAN rows of the UTC days from from up
	// to and excluding to (midnights in UTC), one SKANCount per row key.
	SKANCounts(ctx context.Context, appID int64, from, to time.Time) ([]SKANCount, error)
}
