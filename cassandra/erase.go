package cassandra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"

	"tapline"
)

// erasureDaysBack and erasureDaysAhead bound the day partitions EraseDevice
// reads in the advertising id index tables, around the time of the call. A
// row lives 60 days from its write, and a hit's day is the collector's
// clock; an install's day is the device's, which may be far off, hence the
// wide window (MaxLookupDays in all).
const (
	erasureDaysBack  = MaxLookupDays - 30
	erasureDaysAhead = 30
)

// EraseDevice erases one device's rows (see tapline.RawStore). It reads the
// advertising id index tables over the day partitions of the last
// erasureDaysBack days and the next erasureDaysAhead, and the
// events_by_install partitions of the installations, whole (rows behind the
// app's cut-off included: they are still on disk), then deletes each row by
// its primary key in every table its put wrote. Conversions are stripped
// with the same lightweight transaction as PutConversion (IF data = the
// bytes read), retried on a conflict; their index rows name ids only and
// stay. The hits they credited are rewritten stripped with the hits
// table's conditional replace, which restarts their TTL; their
// fingerprint and advertising id index rows are deleted.
func (s *RawStore) EraseDevice(ctx context.Context, e *tapline.Erasure) (tapline.ErasureCounts, error) {
	var n tapline.ErasureCounts
	if e == nil {
		return n, tapline.Errorf(tapline.EINVALID, "An erasure needs a device.")
	}
	if err := s.check(ctx); err != nil {
		return n, err
	}
	now := tapline.UnixNanos(time.Now())
	lo, hi := now-erasureDaysBack*dayNanos, now+erasureDaysAhead*dayNanos

	adIDs, installs := tapline.IDSet(e.AdIDs), tapline.IDSet(e.InstallIDs)
	events := map[string]*tapline.Event{}
	for _, ad := range slices.Sorted(maps.Keys(adIDs)) {
		evs, err := allDays[tapline.Event](ctx, s, s.stmt.installsByAdID.selectDay, e.AppID, ad, lo, hi)
		if err != nil {
			return n, fmt.Errorf("erase: installs by advertising id: %w", err)
		}
		for _, ev := range evs {
			events[ev.ID] = ev
			if ev.InstallID != "" {
				installs[ev.InstallID] = true
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(installs)) {
		vs, err := s.readBlobs(ctx, s.stmt.selectByInstall, e.AppID, id, int64(math.MinInt64))
		if err != nil {
			return n, fmt.Errorf("erase: events by install: %w", err)
		}
		evs, err := decodeAll[tapline.Event](vs)
		if err != nil {
			return n, err
		}
		for _, ev := range evs {
			events[ev.ID] = ev
		}
	}
	evs := slices.Collect(maps.Values(events))
	slices.SortFunc(evs, tapline.CompareEvents)
	for _, ad := range tapline.EventAdIDs(evs) {
		adIDs[ad] = true
	}
	hits := map[string]*tapline.Hit{}
	for _, ad := range slices.Sorted(maps.Keys(adIDs)) {
		hs, err := allDays[tapline.Hit](ctx, s, s.stmt.hitsByAdID.selectDay, e.AppID, ad, lo, hi)
		if err != nil {
			return n, fmt.Errorf("erase: hits by advertising id: %w", err)
		}
		for _, h := range hs {
			hits[h.ID] = h
		}
	}

	for _, ev := range evs {
		found, err := s.exists(ctx, &s.stmt.events, e.AppID, ev.ID)
		if err != nil {
			return n, err
		}
		if err := s.exec(ctx, s.eventDeletes(ev)...); err != nil {
			return n, fmt.Errorf("erase event %s: %w", ev.ID, err)
		}
		if found {
			n.Events++
		}
		// A re-engagement is kept by its open's id: it goes with the
		// open, and so does its claim on the tap (if still its own).
		r, err := s.reengagement(ctx, e.AppID, tapline.ReengagementID(ev.ID))
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			continue
		case err != nil:
			return n, fmt.Errorf("re-engagement of event %s: %w", ev.ID, err)
		}
		if _, err := s.query(ctx, s.stmt.reengClaimDel, false, e.AppID, r.HitID, r.ID).MapScanCAS(map[string]any{}); err != nil && !casUncertain(err) {
			return n, fmt.Errorf("erase re-engagement claim of tap %s: %w", r.HitID, translate(err))
		}
		if err := s.exec(ctx, write{s.stmt.reengDelete, []any{e.AppID, r.ID}}); err != nil {
			return n, fmt.Errorf("erase re-engagement %s: %w", r.ID, err)
		}
		n.Reengagements++
	}
	for _, id := range slices.Sorted(maps.Keys(hits)) {
		found, err := s.exists(ctx, &s.stmt.hits, e.AppID, id)
		if err != nil {
			return n, err
		}
		if err := s.exec(ctx, s.hitDeletes(hits[id])...); err != nil {
			return n, fmt.Errorf("erase hit %s: %w", id, err)
		}
		if found {
			n.Hits++
		}
	}

	convIDs := tapline.IDSet(e.ConversionIDs)
	for id := range installs {
		iter := s.query(ctx, s.stmt.convByInstall.selectIDs, true, e.AppID, id).Iter()
		var cid string
		for iter.Scan(&cid) {
			convIDs[cid] = true
		}
		if err := iter.Close(); err != nil {
			return n, fmt.Errorf("erase: conversion index: %w", translate(err))
		}
	}
	err := e.EraseConversions(ctx, convIDs, &n, func(id string) bool { return hits[id] != nil },
		func(id string) (*tapline.Conversion, bool, error) { return s.eraseConversion(ctx, e.AppID, id) },
		func(id string) (bool, error) { return s.eraseHit(ctx, e.AppID, id) })
	if err != nil {
		return n, err
	}
	return n, nil
}

// allDays returns the rows of a day-bucketed index table under key in the
// day partitions of [lo, hi], whatever their time and the app's cut-off.
func allDays[T any](ctx context.Context, s *RawStore, stmt string, appID int64, key string, lo, hi int64) ([]*T, error) {
	ds := days(lo, hi)
	parts := make([][][]byte, len(ds))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookupParallelism)
	for i, d := range ds {
		g.Go(func() error {
			vs, err := s.readBlobs(gctx, stmt, appID, d, key, int64(math.MinInt64), int64(math.MaxInt64))
			parts[i] = vs
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return decodeAll[T](slices.Concat(parts...))
}

// exists reports whether the table holds a row of id, visible or not.
func (s *RawStore) exists(ctx context.Context, tb *byIDTable, appID int64, id string) (bool, error) {
	_, _, found, err := s.readRow(ctx, tb, appID, id)
	return found, err
}

// readRow reads the row of id, visible or not.
func (s *RawStore) readRow(ctx context.Context, tb *byIDTable, appID int64, id string) ([]byte, int64, bool, error) {
	var data []byte
	var t int64
	err := s.query(ctx, tb.selectByID, true, appID, id).Scan(&t, &data)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, 0, false, nil
	} else if err != nil {
		return nil, 0, false, fmt.Errorf("get %s: %w", tb.noun, translate(err))
	}
	return data, t, true, nil
}

// eventDeletes returns the deletes of every row PutEvent wrote for ev.
func (s *RawStore) eventDeletes(ev *tapline.Event) []write {
	t := tapline.UnixNanos(ev.Time)
	ws := []write{{s.stmt.events.delete, []any{ev.AppID, ev.ID}}}
	if ev.InstallID != "" {
		ws = append(ws, write{s.stmt.deleteByInstall, []any{ev.AppID, ev.InstallID, t, ev.ID}})
	}
	if ev.Kind == tapline.KindInstall {
		day := dayOf(t)
		if ev.Fingerprint != "" {
			ws = append(ws, write{s.stmt.installsByFP.delete, []any{ev.AppID, day, ev.Fingerprint, t, ev.ID}})
		}
		if ad := ev.Device.AdID(); ad != "" {
			ws = append(ws, write{s.stmt.installsByAdID.delete, []any{ev.AppID, day, ad, t, ev.ID}})
		}
		if hit := ev.ReferrerHitID(); hit != "" {
			ws = append(ws, write{s.stmt.deleteRefHit, []any{ev.AppID, hit, t, ev.ID}})
		}
	}
	return ws
}

// hitDeletes returns the deletes of every row PutHit wrote for h.
func (s *RawStore) hitDeletes(h *tapline.Hit) []write {
	ws := []write{{s.stmt.hits.delete, []any{h.AppID, h.ID}}}
	return append(ws, s.hitIndexDeletes(h)...)
}

// hitIndexDeletes returns the deletes of h's fingerprint and advertising
// id index rows.
func (s *RawStore) hitIndexDeletes(h *tapline.Hit) []write {
	t := tapline.UnixNanos(h.Time)
	var ws []write
	if h.Fingerprint != "" {
		ws = append(ws, write{s.stmt.hitsByFP.delete, []any{h.AppID, dayOf(t), h.Fingerprint, t, h.ID}})
	}
	if h.AdID != "" {
		ws = append(ws, write{s.stmt.hitsByAdID.delete, []any{h.AppID, dayOf(t), h.AdID, t, h.ID}})
	}
	return ws
}

// eraseConversion strips the conversion id of its personal fields with a
// conditional replace, reading it again after a conflict; nil when there is
// none.
func (s *RawStore) eraseConversion(ctx context.Context, appID int64, id string) (*tapline.Conversion, bool, error) {
	for range maxCASAttempts {
		oldV, c, err := s.conversionRow(ctx, appID, id, gocql.Consistency(s.serial))
		if err != nil || c == nil {
			return nil, false, err
		}
		if !c.Erase() && !bytes.Contains(oldV, []byte(`"ad_id"`)) {
			return c, false, nil
		}
		v, err := json.Marshal(c)
		if err != nil {
			return nil, false, fmt.Errorf("encode conversion: %w", err)
		}
		applied, err := s.query(ctx, s.stmt.convReplace, false, c.InstallID, c.HitID, v, appID, id, oldV).MapScanCAS(make(map[string]any))
		if err != nil && !casUncertain(err) {
			return nil, false, fmt.Errorf("erase conversion: %w", translate(err))
		}
		if err == nil && applied {
			return c, true, nil
		}
	}
	return nil, false, tapline.Errorf(tapline.EUNAVAILABLE, "Too much contention on conversion %q; retry later.", id)
}

// eraseHit rewrites the stored hit id stripped of its personal fields and
// deletes its fingerprint and advertising id index rows.
func (s *RawStore) eraseHit(ctx context.Context, appID int64, id string) (bool, error) {
	for range maxCASAttempts {
		oldV, t, found, err := s.readRow(ctx, &s.stmt.hits, appID, id)
		if err != nil || !found {
			return false, err
		}
		var h tapline.Hit
		if err := json.Unmarshal(oldV, &h); err != nil {
			return false, fmt.Errorf("decode hit: %w", err)
		}
		old := h
		if !tapline.EraseHit(&h) {
			return false, nil
		}
		v, err := json.Marshal(&h)
		if err != nil {
			return false, fmt.Errorf("encode hit: %w", err)
		}
		applied, err := s.query(ctx, s.stmt.hits.replace, false, t, v, appID, id, oldV).MapScanCAS(make(map[string]any))
		if err != nil && !casUncertain(err) {
			return false, fmt.Errorf("erase hit: %w", translate(err))
		}
		if err == nil && applied {
			if err := s.exec(ctx, s.hitIndexDeletes(&old)...); err != nil {
				return false, fmt.Errorf("erase hit index: %w", err)
			}
			return true, nil
		}
	}
	return false, tapline.Errorf(tapline.EUNAVAILABLE, "Too much contention on hit %q; retry later.", id)
}
