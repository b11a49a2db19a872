package tapline

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
)

// ErasureKind names what an erasure request identifies its device by.
type ErasureKind string

// Erasure kinds.
const (
	ErasureAdID      ErasureKind = "ad_id"      // an advertising id (IDFA or GAID)
	ErasureInstallID ErasureKind = "install_id" // an install id (the SDK's installation id)
)

// Valid reports whether k is a known kind.
func (k ErasureKind) Valid() bool { return k == ErasureAdID || k == ErasureInstallID }

// MaxInstallIDLen bounds the install id an erasure request takes.
const MaxInstallIDLen = 256

// ErasureRequest is a data subject's request to erase one device's
// personal data from one app (docs/dashboard-api.md, "Erasure"). The
// dashboard records it; the matcher, which owns the raw store, performs it
// and marks it done.
type ErasureRequest struct {
	ID    int64       `json:"id"`
	AppID int64       `json:"app_id"`
	Kind  ErasureKind `json:"kind"`
	// Key is the advertising id (normalised, NormalizeAdID) or install id
	// to erase. It is kept only until the request is done; KeyHash, the
	// keyed hash of Key, stays so that a request can be recognised later.
	// Neither is shown by the API.
	Key         string    `json:"-"`
	KeyHash     string    `json:"-"`
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
	// DoneAt is when the matcher finished it; zero while pending.
	DoneAt time.Time     `json:"done_at,omitzero"`
	Counts ErasureCounts `json:"counts"`
}

// Done reports whether the request has been performed.
func (r *ErasureRequest) Done() bool { return !r.DoneAt.IsZero() }

// ErasureCounts is what an erasure removed.
type ErasureCounts struct {
	// Hits and Events count the raw rows deleted (a row with its index
	// entries counts once).
	Hits   int `json:"hits"`
	Events int `json:"events"`
	// Reengagements counts the re-engagements of the device's opens
	// deleted with them (their facts stay).
	Reengagements int `json:"reengagements"`
	// HitsStripped counts the hits credited by the device's conversions
	// that were kept (another device's tap may be among them, and the hit
	// is counted in the facts) without their address, fingerprint and
	// advertising id.
	HitsStripped int `json:"hits_stripped"`
	// Conversions counts the conversions stripped of their personal fields
	// in the raw store; Rows those in the PostgreSQL conversions table.
	Conversions int `json:"conversions"`
	Rows        int `json:"conversion_rows"`
}

// Add adds o to c.
func (c *ErasureCounts) Add(o ErasureCounts) {
	c.Hits += o.Hits
	c.Events += o.Events
	c.HitsStripped += o.HitsStripped
	c.Conversions += o.Conversions
	c.Rows += o.Rows
}

// IDSet returns the non-empty ids as a set: how a raw store's EraseDevice
// walks an Erasure's ids, each once.
func IDSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" {
			m[id] = true
		}
	}
	return m
}

// Erasure tells a raw store which device's rows to erase (RawStore.
// EraseDevice).
type Erasure struct {
	AppID int64
	// AdIDs are normalised advertising ids (NormalizeAdID): every hit
	// carrying one is deleted, and every installation whose install event
	// carries one is erased as if named in InstallIDs.
	AdIDs []string
	// InstallIDs name installations: every event with one of these install
	// ids is deleted, and the advertising ids those events carry are
	// erased as if named in AdIDs (one round: ids found this way find no
	// further ones).
	InstallIDs []string
	// ConversionIDs are further conversions to strip, found outside the
	// raw store (the PostgreSQL conversions table, searched by the
	// advertising id's keyed hash, finds conversions whose raw install
	// rows have expired).
	ConversionIDs []string

	// FoundConversions is set by EraseDevice: the ids of every conversion
	// of the device it found (stripped now or before), in id order, for the
	// conversions table to strip too (a conversion without an advertising
	// id hash is found there only by id).
	FoundConversions []string
}

// ErasureService records erasure requests and completes them; the
// PostgreSQL store implements it. Reads return ENOTFOUND for an unknown
// request.
type ErasureService interface {
	// RequestErasure records r (AppID, Kind, Key, RequestedBy) as pending
	// and fills in its ID, KeyHash and RequestedAt. EINVALID for a bad kind
	// or key.
	RequestErasure(ctx context.Context, r *ErasureRequest) error
	// Erasure returns the app's request id.
	Erasure(ctx context.Context, appID, id int64) (*ErasureRequest, error)
	// ClaimErasure returns the oldest pending request that no other matcher
	// holds, and holds it for lease; nil when there is none. A matcher that
	// dies holding one lets another take it once the lease ends: erasing is
	// idempotent.
	ClaimErasure(ctx context.Context, lease time.Duration) (*ErasureRequest, error)
	// ErasureConversions returns the ids of the app's conversions in the
	// conversions table that belong to r's device: by the advertising id's
	// keyed hash, or by install id.
	ErasureConversions(ctx context.Context, r *ErasureRequest) ([]string, error)
	// FinishErasure strips the conversions table rows ids (and those
	// ErasureConversions finds) of their personal fields, marks r done with
	// counts (adding the rows it stripped) and forgets r's Key, in one
	// transaction.
	FinishErasure(ctx context.Context, r *ErasureRequest, ids []string, counts ErasureCounts) error
}

// NormalizeAdID returns an advertising id as the collector stores it: a
// lower-case hyphenated UUID, taken in that form or as 32 hex digits, with
// surrounding space trimmed. It returns "" for anything else, and for the
// all-zero id of limited ad tracking.
func NormalizeAdID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 32 {
		s = s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
	}
	if len(s) != 36 {
		return ""
	}
	zero := true
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
			zero = zero && c == '0'
		default:
			return ""
		}
	}
	if zero {
		return ""
	}
	return s
}

// StripAdIDParams drops the advertising ids from the hit parameters of
// c's attribution and of its history (WithoutAdIDs), and reports whether
// there were any.
func (c *Conversion) StripAdIDParams() bool {
	changed := false
	strip := func(a *Attribution) {
		if p := WithoutAdIDs(a.HitParams); len(p) != len(a.HitParams) {
			a.HitParams, changed = p, true
		}
	}
	strip(&c.Attribution)
	for i := range c.History {
		strip(&c.History[i].To)
		if c.History[i].From != nil {
			strip(c.History[i].From)
		}
	}
	return changed
}

// Erase strips c of what identifies its device, keeping its attribution
// and history: the fingerprint and advertising id, the advertising ids in
// its hit parameters (WithoutAdIDs), and the install's and hit's values of
// its decision's signals (their names and verdicts stay). It reports
// whether anything changed.
func (c *Conversion) Erase() bool {
	changed := c.Fingerprint != "" || c.AdID != ""
	c.Fingerprint, c.AdID = "", ""
	if c.StripAdIDParams() {
		changed = true
	}
	if c.Decision != nil {
		for i := range c.Decision.Signals {
			s := &c.Decision.Signals[i]
			if s.Name == "install_referrer" {
				continue // hit ids, no device value
			}
			if s.Install != "" || s.Hit != "" {
				s.Install, s.Hit, changed = "", "", true
			}
		}
		for i := range c.Decision.Candidates {
			// A losing tap's reason may name both devices' values
			// ("model Pixel 7 (install) vs SM-S918B (tap)").
			cd := &c.Decision.Candidates[i]
			if strings.HasPrefix(cd.Reason, candidateConflict) && cd.Reason != candidateConflictErased {
				cd.Reason, changed = candidateConflictErased, true
			}
		}
	}
	return changed
}

// Reasons of a decision's candidate whose device did not fit the
// install's: the matcher's, which names the values, starts with
// candidateConflict; an erased conversion keeps candidateConflictErased.
const (
	candidateConflict       = "Same network, but "
	candidateConflictErased = "Same network, but the device did not fit (its values are erased)."
)

// CandidateConflict is the reason of a candidate whose device did not fit
// the install's, naming what conflicted: "model Pixel 7 (install) vs
// SM-S918B (tap)".
func CandidateConflict(conflicts string) string { return candidateConflict + conflicts + "." }

// EraseHit strips h of what identifies its device: address, fingerprint,
// advertising id (also in its parameters) and client hints. It reports
// whether anything changed.
func EraseHit(h *Hit) bool {
	changed := h.IP != "" || h.Fingerprint != "" || h.AdID != "" || len(h.ClientHints) > 0
	h.IP, h.Fingerprint, h.AdID, h.ClientHints = "", "", "", nil
	if p := WithoutAdIDs(h.Params); len(p) != len(h.Params) {
		h.Params, changed = p, true
	}
	return changed
}

// CreditedHits returns the ids of the hits c's history credited, oldest
// first, each once.
func (c *Conversion) CreditedHits() []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, ch := range c.History {
		add(ch.To.HitID)
	}
	add(c.HitID)
	return out
}

// EventAdIDs returns the usable advertising ids events carry (IDFA, GAID),
// normalised, each once.
func EventAdIDs(evs []*Event) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range evs {
		for _, id := range []string{e.Device.IDFA, e.Device.GAID} {
			if n := NormalizeAdID(id); n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// EraseConversions is the end of an EraseDevice that both raw stores
// share: it erases the conversions ids, in id order, with eraseConv (the
// conversion as it was, nil when none is stored, and whether erasing
// changed it), notes each found on e and counts the changed ones in n;
// then it strips each hit those conversions credit that deleted does not
// report gone, with stripHit (whether it changed), counting them too.
func (e *Erasure) EraseConversions(ctx context.Context, ids map[string]bool, n *ErasureCounts, deleted func(hitID string) bool,
	eraseConv func(id string) (*Conversion, bool, error), stripHit func(hitID string) (bool, error)) error {
	credited := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, changed, err := eraseConv(id)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		e.FoundConversions = append(e.FoundConversions, c.ID)
		if changed {
			n.Conversions++
		}
		for _, h := range c.CreditedHits() {
			credited[h] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(credited)) {
		if deleted(id) {
			continue
		}
		stripped, err := stripHit(id)
		if err != nil {
			return err
		}
		if stripped {
			n.HitsStripped++
		}
	}
	return nil
}
