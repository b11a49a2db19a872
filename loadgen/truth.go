package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"tapline"
)

// TapParam is the query parameter that carries a tap's number into
// Hit.Params.
const TapParam = "lg_tap"

// TruthRecord is one line of the ground truth file: an install and the
// tap that caused it.
type TruthRecord struct {
	Install   int              `json:"install"`
	InstallID string           `json:"install_id"`
	Platform  tapline.Platform `json:"platform"`
	At        time.Duration    `json:"at_ns"` // simulated offset
	IP        string           `json:"ip"`
	Tap       int              `json:"tap"` // -1: organic
	TapAt     time.Duration    `json:"tap_at_ns,omitempty"`
	TapIP     string           `json:"tap_ip,omitempty"`
	TapUA     string           `json:"tap_user_agent,omitempty"`
	Referrer  bool             `json:"referrer,omitempty"`
	Class     string           `json:"class"` // Classify
}

// WriteTruth writes the ground truth of w as JSON lines, one per install.
func WriteTruth(out io.Writer, w *Workload) error {
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	classes := Classify(w)
	for _, in := range w.Installs {
		d := w.Devices[in.Device]
		rec := TruthRecord{Install: in.N, InstallID: d.InstallID, Platform: d.Platform, At: in.At, IP: in.IP, Tap: in.Truth, Referrer: in.Referrer, Class: classes[in.N]}
		if in.Truth != Organic {
			t := w.Taps[in.Truth]
			rec.TapAt, rec.TapIP, rec.TapUA = t.At, t.IP, t.UserAgent
		}
		if err := enc.Encode(&rec); err != nil {
			return fmt.Errorf("write truth: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	return nil
}

// Attributions reads what tapline attributed each install of w to from
// its raw store: the conversion of the install's id, its method, its hit
// and the tap number the hit's lg_tap parameter carries, and the
// fingerprint candidate its decision scored best (Answer.Best). Installs
// without a conversion are left out (Score counts them as missing).
func Attributions(ctx context.Context, raw tapline.RawStore, appID int64, w *Workload) (map[int]Answer, error) {
	out := make(map[int]Answer, len(w.Installs))
	hits := map[string]int{}
	tapOf := func(hitID string) (int, error) {
		n, ok := hits[hitID]
		if ok {
			return n, nil
		}
		h, err := raw.Hit(ctx, appID, hitID)
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			n = -2 // expired or unknown: no tap of this workload
		case err != nil:
			return 0, fmt.Errorf("hit %s: %w", hitID, err)
		default:
			if n, err = strconv.Atoi(h.Params[TapParam]); err != nil {
				n = -2 // a hit that is no tap of this workload
			}
		}
		hits[hitID] = n
		return n, nil
	}
	for _, in := range w.Installs {
		c, err := raw.ConversionByInstall(ctx, appID, w.Devices[in.Device].InstallID)
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			continue
		case err != nil:
			return nil, fmt.Errorf("conversion of install %d: %w", in.N, err)
		}
		if c.Decision == nil {
			// Indexes may keep the conversion without its decision.
			if c, err = raw.Conversion(ctx, appID, c.ID); err != nil {
				return nil, fmt.Errorf("conversion of install %d: %w", in.N, err)
			}
		}
		ans := Answer{Tap: Organic, Method: c.Method, Best: Organic}
		if c.Method != tapline.MethodOrganic && c.HitID != "" {
			if ans.Tap, err = tapOf(c.HitID); err != nil {
				return nil, fmt.Errorf("install %d: %w", in.N, err)
			}
		} else {
			ans.Method = tapline.MethodOrganic
		}
		if d := c.Decision; d != nil && len(d.Candidates) > 0 &&
			(c.Method == tapline.MethodFingerprint || d.Rule == tapline.RuleBelowMinScore) &&
			d.Candidates[0].Method == tapline.MethodFingerprint {
			if ans.Best, err = tapOf(d.Candidates[0].HitID); err != nil {
				return nil, fmt.Errorf("install %d: %w", in.N, err)
			}
			ans.Score = d.Score
		}
		out[in.N] = ans
	}
	return out, nil
}
