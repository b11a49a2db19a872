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
}

// WriteTruth writes the ground truth of w as JSON lines, one per install.
func WriteTruth(out io.Writer, w *Workload) error {
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	for _, in := range w.Installs {
		d := w.Devices[in.Device]
		rec := TruthRecord{Install: in.N, InstallID: d.InstallID, Platform: d.Platform, At: in.At, IP: in.IP, Tap: in.Truth, Referrer: in.Referrer}
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
// its raw store: the conversion of the install's id, its hit, and the tap
// number the hit's lg_tap parameter carries. Installs without a
// conversion are left out (Score counts them as missing).
func Attributions(ctx context.Context, raw tapline.RawStore, appID int64, w *Workload) (map[int]int, error) {
	out := make(map[int]int, len(w.Installs))
	hits := map[string]int{}
	for _, in := range w.Installs {
		c, err := raw.ConversionByInstall(ctx, appID, w.Devices[in.Device].InstallID)
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			continue
		case err != nil:
			return nil, fmt.Errorf("conversion of install %d: %w", in.N, err)
		}
		if c.Method == tapline.MethodOrganic || c.HitID == "" {
			out[in.N] = Organic
			continue
		}
		n, ok := hits[c.HitID]
		if !ok {
			h, err := raw.Hit(ctx, appID, c.HitID)
			if err != nil {
				return nil, fmt.Errorf("hit %s of install %d: %w", c.HitID, in.N, err)
			}
			n, err = strconv.Atoi(h.Params[TapParam])
			if err != nil {
				n = -2 // a hit that is no tap of this workload
			}
			hits[c.HitID] = n
		}
		out[in.N] = n
	}
	return out, nil
}
