package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// Target is the collector (or a look-alike) a workload is sent to, and
// the credentials of the app the workload belongs to.
type Target struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Account string // account name in Tapstream SDK URLs
	Secret  string // the app's SDK secret (Tapstream form protocol)
	SDKKey  string // the app's SDK key (JSON batch API bearer)
	AppName string // app name in Tapstream event names: ios-<AppName>-install
}

// NewClient returns an HTTP client for load: keep-alive connections for
// up to conns concurrent requests, no redirects followed, no compression.
func NewClient(conns int) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TapRequest builds the GET of a tap on its link, from the tap's address
// (X-Forwarded-For) and browser, with lg_tap carrying the tap's number and
// the advertising id where the ad network filled one in. A Chromium
// browser's request carries its low-entropy client hints, and the
// high-entropy ones too when withHints (its retry after Critical-CH).
func (t *Target) TapRequest(tap *Tap, d *Device, withHints bool) *http.Request {
	q := url.Values{"lg_tap": {strconv.Itoa(tap.N)}, "utm_source": {"loadgen"}, "utm_campaign": {tap.Link}}
	if tap.AdID != "" {
		if d.Platform == tapline.PlatformIOS {
			q.Set("idfa", tap.AdID)
		} else {
			q.Set("gaid", tap.AdID)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, t.BaseURL+"/l/"+tap.Link+"?"+q.Encode(), nil)
	req.Header.Set("User-Agent", tap.UserAgent)
	lang := tap.Language
	if lang == "" {
		lang = strings.ReplaceAll(d.Locale, "_", "-")
	}
	req.Header.Set("Accept-Language", lang)
	req.Header.Set("X-Forwarded-For", tap.IP)
	for k, v := range tap.Hints {
		if withHints || !slices.Contains(highEntropyHints, k) {
			req.Header.Set(k, v)
		}
	}
	return req
}

// SDKEvent is one event as an SDK reports it.
type SDKEvent struct {
	ID       string // JSON API event id
	Kind     tapline.EventKind
	Time     time.Time
	IP       string
	Referrer string
	// Purchase fields.
	PriceCents  int64
	Currency    string
	Product     string
	Transaction string
}

func (t *Target) eventName(d *Device, e *SDKEvent) string {
	switch e.Kind {
	case tapline.KindInstall:
		return string(d.Platform) + "-" + t.AppName + "-install"
	case tapline.KindOpen:
		return string(d.Platform) + "-" + t.AppName + "-open"
	case tapline.KindPurchase:
		return string(d.Platform) + "-" + t.AppName + "-purchase-" + e.Product
	}
	return "custom"
}

// TapstreamRequest builds the form post the Tapstream SDK of d makes for e.
func (t *Target) TapstreamRequest(d *Device, e *SDKEvent) *http.Request {
	f := url.Values{
		"secret":       {t.Secret},
		"uuid":         {d.InstallID},
		"model":        {d.Model},
		"vendor":       {d.Vendor},
		"locale":       {d.Locale},
		"app-name":     {t.AppName},
		"app-version":  {"1.0"},
		"package-name": {"com.example.loadgen"},
		"created-ms":   {strconv.FormatInt(e.Time.UnixMilli(), 10)},
	}
	path := t.BaseURL + "/" + t.Account + "/event/" + t.eventName(d, e)
	if d.Platform == tapline.PlatformIOS {
		f.Set("sdkversion", "2.12.0")
		f.Set("platform", "iOS")
		f.Set("os", "iOS "+d.OSVersion)
		if d.AdID != "" {
			f.Set("hardware-ios-idfa", d.AdID)
		} else {
			f.Set("hardware-ios-idfa", "00000000-0000-0000-0000-000000000000")
		}
		path += "/"
	} else {
		f.Set("sdkversion", "4.0.0")
		f.Set("platform", "Android")
		f.Set("os", "Android "+d.OSVersion)
		if d.AdID != "" {
			f.Set("hardware-android-advertising-id", d.AdID)
			f.Set("android-limit-ad-tracking", "false")
		} else {
			f.Set("android-limit-ad-tracking", "true")
		}
		if e.Referrer != "" {
			f.Set("android-referrer", e.Referrer)
		}
	}
	if e.Kind == tapline.KindPurchase {
		f.Set("purchase-transaction-id", e.Transaction)
		f.Set("purchase-product-id", e.Product)
		f.Set("purchase-quantity", "1")
		f.Set("purchase-price", strconv.FormatInt(e.PriceCents, 10))
		f.Set("purchase-currency", e.Currency)
	}
	req, _ := http.NewRequest(http.MethodPost, path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", e.IP)
	return req
}

type jsonDevice struct {
	Platform        string `json:"platform"`
	OSVersion       string `json:"os_version,omitempty"`
	Model           string `json:"model,omitempty"`
	Vendor          string `json:"vendor,omitempty"`
	Locale          string `json:"locale,omitempty"`
	IDFA            string `json:"idfa,omitempty"`
	GAID            string `json:"gaid,omitempty"`
	LimitAdTracking bool   `json:"limit_ad_tracking,omitempty"`
}

type jsonRevenue struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

type jsonEvent struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Time      string            `json:"time"`
	InstallID string            `json:"install_id"`
	Device    jsonDevice        `json:"device"`
	Referrer  string            `json:"referrer,omitempty"`
	Revenue   *jsonRevenue      `json:"revenue,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
}

// JSONRequest builds a POST /v1/events batch of events of d, sent from
// the address of the first one.
func (t *Target) JSONRequest(d *Device, events ...*SDKEvent) *http.Request {
	batch := struct {
		Events []jsonEvent `json:"events"`
	}{}
	for _, e := range events {
		je := jsonEvent{
			ID: e.ID, Name: string(e.Kind), Time: e.Time.UTC().Format(time.RFC3339Nano), InstallID: d.InstallID,
			Device:   jsonDevice{Platform: string(d.Platform), OSVersion: d.OSVersion, Model: d.Model, Vendor: d.Vendor, Locale: d.Locale},
			Referrer: e.Referrer,
		}
		switch {
		case d.AdID == "":
			je.Device.LimitAdTracking = true
		case d.Platform == tapline.PlatformIOS:
			je.Device.IDFA = d.AdID
		default:
			je.Device.GAID = d.AdID
		}
		if e.Kind == tapline.KindPurchase {
			je.Revenue = &jsonRevenue{Amount: fmt.Sprintf("%d.%02d", e.PriceCents/100, e.PriceCents%100), Currency: e.Currency}
			je.Params = map[string]string{"sku": e.Product, "transaction": e.Transaction}
		}
		batch.Events = append(batch.Events, je)
	}
	body, _ := json.Marshal(batch)
	req, _ := http.NewRequest(http.MethodPost, t.BaseURL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.SDKKey)
	if len(events) > 0 {
		req.Header.Set("X-Forwarded-For", events[0].IP)
	}
	return req
}

// PlayReferrer returns the Play install referrer a redirect's Location
// carries (the decoded referrer parameter of a Play Store URL), or "".
func PlayReferrer(location string) string {
	u, err := url.Parse(location)
	if err != nil || !(u.Scheme == "market" || strings.EqualFold(u.Hostname(), "play.google.com")) {
		return ""
	}
	return u.Query().Get("referrer")
}
