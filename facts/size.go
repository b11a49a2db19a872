package facts

import (
	"unsafe"

	"tapline"
)

// The estimates below are what an Aggregator's pending rows hold on the
// heap: each struct's size, the bytes of its strings and slices, and the
// map slot that holds it, a quarter more for the slots a map keeps free
// (slot). They are estimates to bound memory by, not exact sizes:
// TestPendingBytesEstimate keeps them within a factor of 1.6 of what the
// heap shows.
func slot(size uintptr) int64 { return int64(size+1) * 5 / 4 }

var (
	// a fact row's slot, and the strings of its key (campaign, event name)
	factRowBytes  = slot(unsafe.Sizeof(tapline.FactKey{})+unsafe.Sizeof(tapline.FactValue{})) + 64
	activityBytes = slot(unsafe.Sizeof(activityKey{}) + unsafe.Sizeof(tapline.CohortActivity{}))
	// a pointer map's slot, keyed by a string
	ptrSlotBytes = slot(unsafe.Sizeof("") + unsafe.Sizeof(uintptr(0)))
)

// conversionBytes estimates the heap c holds: the struct and what it
// points to, its history and decision with theirs.
func conversionBytes(c *tapline.Conversion) int64 {
	n := int64(unsafe.Sizeof(*c)) + ptrSlotBytes
	n += int64(len(c.ID) + len(c.EventID) + len(c.InstallID) + len(c.Fingerprint) + len(c.AdID))
	n += attributionBytes(&c.Attribution)
	n += int64(cap(c.History)) * int64(unsafe.Sizeof(tapline.AttributionChange{}))
	for i := range c.History {
		ch := &c.History[i]
		n += int64(len(ch.By))
		if ch.From != nil {
			n += int64(unsafe.Sizeof(*ch.From)) + attributionBytes(ch.From)
		}
		n += attributionBytes(&ch.To)
		n += fraudBytes(ch.Fraud)
		n += int64(cap(ch.Moved)) * int64(unsafe.Sizeof(tapline.MovedEvent{}))
		for _, mv := range ch.Moved {
			n += int64(len(mv.ID) + len(mv.Name))
			if mv.Revenue != nil {
				n += int64(unsafe.Sizeof(*mv.Revenue)) + int64(len(mv.Revenue.Currency))
			}
		}
	}
	if d := c.Decision; d != nil {
		n += int64(unsafe.Sizeof(*d)) + int64(len(d.Rule)+len(d.Reason))
		n += int64(cap(d.Signals)) * int64(unsafe.Sizeof(tapline.Signal{}))
		for _, s := range d.Signals {
			n += int64(len(s.Name) + len(s.Install) + len(s.Hit) + len(s.Verdict))
		}
		n += int64(cap(d.Candidates)) * int64(unsafe.Sizeof(tapline.Candidate{}))
		for _, cand := range d.Candidates {
			n += int64(len(cand.HitID) + len(cand.Method) + len(cand.Reason))
		}
		n += fraudBytes(d.Fraud)
	}
	if r := c.Reinstall; r != nil {
		n += int64(unsafe.Sizeof(*r)) + int64(len(r.Of)+len(r.By))
	}
	return n
}

// attributionBytes estimates what a's strings and parameters hold beside
// the struct itself.
func attributionBytes(a *tapline.Attribution) int64 {
	n := int64(len(a.HitID) + len(a.Method))
	if len(a.HitParams) > 0 {
		n += 48 // the map's header
		for k, v := range a.HitParams {
			n += slot(2*unsafe.Sizeof("")) + int64(len(k)+len(v))
		}
	}
	return n
}

func fraudBytes(fs []tapline.FraudFinding) int64 {
	n := int64(cap(fs)) * int64(unsafe.Sizeof(tapline.FraudFinding{}))
	for _, f := range fs {
		n += int64(len(f.Signal) + len(f.HitID) + len(f.Method) + len(f.Value) + len(f.Threshold) + len(f.Action))
	}
	return n
}

// deliveryBytes estimates the heap a pending delivery holds.
func deliveryBytes(d *tapline.Delivery) int64 {
	return int64(unsafe.Sizeof(*d)) + ptrSlotBytes + int64(len(d.Key)+len(d.Network)+len(d.Trigger)+len(d.ConversionID)+
		len(d.EventID)+len(d.Method)+len(d.URL)+len(d.ContentType)+cap(d.Body)+len(d.LastError)+len(d.LastBody))
}
