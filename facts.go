package tapline

import (
	"context"
	"time"
)

// FactTable names an hourly fact table.
type FactTable string

// Fact tables and the dimensions of FactKey each one uses (beyond Hour and
// AppID):
//
//	hits         LinkID, Platform                          Count = hits
//	events       LinkID, EventName, Platform, Method       Count = events
//	installs     LinkID, Platform, Method                  Count = installs (LinkID 0: organic)
//	conversions  LinkID, Platform, Method                  Count = conversions, Sum = click-to-install seconds
//	revenue      LinkID, Platform, Currency                Count = purchases, Sum = micros
const (
	FactHits        FactTable = "hits"
	FactEvents      FactTable = "events"
	FactInstalls    FactTable = "installs"
	FactConversions FactTable = "conversions"
	FactRevenue     FactTable = "revenue"
)

// FactKey identifies one row of a fact table. Dimensions a table does not use
// are zero. It is comparable, so deltas aggregate in a map.
type FactKey struct {
	Table     FactTable
	Hour      int64 // Unix seconds of the UTC hour
	AppID     int64
	LinkID    int64
	Platform  Platform
	EventName string
	Method    MatchMethod
	Currency  string
}

// HourOf returns the Hour of a FactKey for t.
func HourOf(t time.Time) int64 { return t.Truncate(time.Hour).Unix() }

// FactValue is what a delta adds to a fact row.
type FactValue struct {
	Count int64
	Sum   int64
}

// Offset is the next offset a consumer will read from one partition.
type Offset struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`

	// Fenced makes ApplyFacts store Offset only if the stored offset is
	// still From (NoOffset: none stored yet). A consumer that lost its
	// partitions to another member of its group, and flushes late, then
	// fails with ECONFLICT instead of counting records twice.
	Fenced bool  `json:"-"`
	From   int64 `json:"-"`
}

// NoOffset is the From of a fenced Offset whose partition has no stored
// offset yet.
const NoOffset = -1

// Same reports whether o and p name the same position of the same
// partition, ignoring fencing.
func (o Offset) Same(p Offset) bool {
	return o.Topic == p.Topic && o.Partition == p.Partition && o.Offset == p.Offset
}

// FactStore holds the fact tables and the matcher's consumed offsets.
type FactStore interface {
	// ApplyFacts adds deltas to the fact tables and stores offsets as the
	// consumer's position, in one transaction: either all of it lands or
	// none does. A fenced offset whose stored value is no longer its From
	// fails the whole call with ECONFLICT.
	ApplyFacts(ctx context.Context, consumer string, deltas map[FactKey]FactValue, offsets []Offset) error
	// Offsets returns the consumer's stored positions.
	Offsets(ctx context.Context, consumer string) ([]Offset, error)
}

// StatsFilter selects the facts a report covers: one app, the days from
// From up to and excluding To, both midnights in Location.
type StatsFilter struct {
	AppID    int64
	LinkID   int64 // 0: all links
	From, To time.Time
	Location *time.Location
}

// DailyStats are one day's totals of an app in the filter's time zone.
type DailyStats struct {
	Day             string           `json:"day"` // YYYY-MM-DD
	Hits            int64            `json:"hits"`
	Installs        int64            `json:"installs"`
	OrganicInstalls int64            `json:"organic_installs"`
	Conversions     int64            `json:"conversions"`
	Events          int64            `json:"events"`
	ConversionRate  float64          `json:"conversion_rate"` // conversions / hits, 0 without hits
	RevenueMicros   map[string]int64 `json:"revenue_micros,omitempty"`
}

// LinkStats are the totals of one link over a filter's days.
type LinkStats struct {
	LinkID         int64   `json:"link_id"`
	Hits           int64   `json:"hits"`
	Conversions    int64   `json:"conversions"`
	ConversionRate float64 `json:"conversion_rate"`
	// MeanClickToInstall is the mean click-to-install time in seconds.
	MeanClickToInstall float64          `json:"mean_click_to_install_seconds"`
	ByMethod           map[string]int64 `json:"conversions_by_method,omitempty"`
}

// Reports answers the dashboard's questions from the fact tables alone.
type Reports interface {
	DailyStats(ctx context.Context, f StatsFilter) ([]DailyStats, error)
	LinkStats(ctx context.Context, f StatsFilter) ([]LinkStats, error)
}
