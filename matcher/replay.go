package matcher

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"tapline"
	"tapline/fingerprint"
	"tapline/internal/wire"
)

// Replay matches hits and installs of one app again, with the app's rules
// as given, through a matcher of their own: the same code that matched them
// in production, in receive order (Config.Ordered), on bus and raw, which
// must be empty scratch stores. Nothing is written anywhere else: the facts
// are discarded, no postback is made, no app setting is read. It returns
// the conversion each install of installs ends with, by install event id.
//
// The matcher starts cold: what production had learned of the app's
// devices before the first record (the fingerprint population) is not
// there, so installs at the start of a replay may be decided otherwise
// than they were. Two replays of the same records are compared with each
// other for that reason (package whatif).
//
// cfg is the matcher configuration production runs with (its clock skew,
// its flood parameters): the replay's runs with it, consuming in receive
// order from the scratch bus.
func Replay(ctx context.Context, cfg Config, bus tapline.Bus, raw tapline.RawStore, app *tapline.App, links []*tapline.Link, hits []*tapline.Hit, installs []*tapline.Event, logger *slog.Logger) (map[string]*tapline.Conversion, error) {
	type rec struct {
		at  time.Time
		hit *tapline.Hit
		ev  *tapline.Event
	}
	recs := make([]rec, 0, len(hits)+len(installs))
	for _, h := range hits {
		recs = append(recs, rec{at: h.Time, hit: h})
	}
	for _, e := range installs {
		recs = append(recs, rec{at: cmp.Or(e.ReceivedAt, e.Time), ev: e})
	}
	// Receive order; a hit before an event received at the same instant,
	// as the collector's order gate would have it.
	slices.SortStableFunc(recs, func(a, b rec) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.hit == nil), boolInt(b.hit == nil))
	})

	const batch = 1000
	msgs := make([]tapline.Message, 0, batch)
	publish := func() error {
		if len(msgs) == 0 {
			return nil
		}
		err := bus.Publish(ctx, msgs...)
		msgs = msgs[:0]
		return err
	}
	var ends = map[string]int64{}
	for _, r := range recs {
		var m tapline.Message
		if r.hit != nil {
			h := *r.hit
			h.Source = ""
			m = tapline.Message{Topic: tapline.TopicHits, Key: fingerprint.BusKey(app.ID, h.Fingerprint), Value: wire.AppendHit(nil, &h), Time: r.at}
		} else {
			e := *r.ev
			e.Source, e.CountedUnder = "", nil
			m = tapline.Message{Topic: tapline.TopicEvents, Key: fingerprint.BusKey(app.ID, e.Fingerprint), Value: wire.AppendEvent(nil, &e), Time: r.at}
		}
		ends[m.Topic]++
		msgs = append(msgs, m)
		if len(msgs) == batch {
			if err := publish(); err != nil {
				return nil, fmt.Errorf("replay: publish: %w", err)
			}
		}
	}
	if err := publish(); err != nil {
		return nil, fmt.Errorf("replay: publish: %w", err)
	}

	cfg.Ordered = true
	cfg.Consumer = "whatif"
	cfg.HitsTopic, cfg.EventsTopic = tapline.TopicHits, tapline.TopicEvents
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.ExpireEvery = 24 * time.Hour * 365 // the scratch store holds what it is given
	facts := &replayFacts{offsets: map[tapline.Partition]int64{}}
	m := New(cfg, bus, raw, facts, nil)
	m.Logger = cmp.Or(logger, slog.New(slog.DiscardHandler))
	a := *app
	a.SetDefaults()
	m.preload = map[int64]appEntry{app.ID: {app: &a, links: newLinkWindows(links), fetched: time.Now()}}
	if err := m.Open(ctx); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer m.Close()
	// Done when the discarded facts' offsets cover every message.
	for {
		if facts.covers(ends) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	out := make(map[string]*tapline.Conversion, len(installs))
	for _, e := range installs {
		c, err := raw.Conversion(ctx, app.ID, tapline.ConversionID(e.ID))
		if tapline.ErrorCode(err) == tapline.ENOTFOUND {
			continue // a resent copy of another install, or skipped
		} else if err != nil {
			return nil, fmt.Errorf("replay: conversion of %s: %w", e.ID, err)
		}
		out[e.ID] = c
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// replayFacts is the fact store of a replay: it keeps the consumed
// offsets, to tell when the replay is done, and drops the facts.
type replayFacts struct {
	mu      sync.Mutex
	offsets map[tapline.Partition]int64
}

func (f *replayFacts) ApplyFacts(_ context.Context, _ string, _ map[tapline.FactKey]tapline.FactValue, offs []tapline.Offset, _ tapline.FlushRows) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range offs {
		f.offsets[tapline.Partition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	}
	return nil
}

func (f *replayFacts) Offsets(context.Context, string) ([]tapline.Offset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tapline.Offset
	for p, o := range f.offsets {
		out = append(out, tapline.Offset{Topic: p.Topic, Partition: p.Partition, Offset: o})
	}
	return out, nil
}

// covers reports whether the stored offsets reach ends (messages per
// topic, over all its partitions).
func (f *replayFacts) covers(ends map[string]int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := map[string]int64{}
	for p, o := range f.offsets {
		got[p.Topic] += o
	}
	for topic, n := range ends {
		if got[topic] < n {
			return false
		}
	}
	return true
}
