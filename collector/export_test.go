package collector

import (
	"time"

	"tapline"
)

// Internals exposed to the external tests and fuzzers.

// ParseTapstream parses a Tapstream event post for app 1.
func ParseTapstream(name string, body []byte, now time.Time) (*tapline.Event, string, error) {
	te, err := parseTapstream(name, body, now, DefaultMaxClockSkew)
	if err != nil {
		return nil, "", err
	}
	te.Event.AppID = 1
	te.Event.ID = tapstreamEventID(1, te.seed)
	return te.Event, te.Secret, nil
}

// DecodeBatch decodes a JSON batch for app 1.
func DecodeBatch(body []byte, now time.Time, maxEvents int) ([]*tapline.Event, []BatchResult, error) {
	return decodeBatch(body, 1, now, DefaultMaxClockSkew, maxEvents)
}

var (
	WithPlayReferrer = withPlayReferrer
	NormalizeAdID    = normalizeAdID
	DecimalMicros    = decimalMicros
)
