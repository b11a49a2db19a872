package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
	"tapline/fingerprint"
	"tapline/internal/wire"
)

// EraseDevice erases one device's rows (see tapline.RawStore): it finds
// the hits of e's advertising ids in the advertising id index of every
// stored bucket, the installs of those ids likewise, and the events of the
// installations in the install index of every bucket, rows hidden by the
// watermark included; it deletes each row by id with every index entry
// its put wrote (setHit, setEvent), strips the installations' conversions
// and e.ConversionIDs (rewriting them and their index entries under their
// lock stripe), and strips the hits they credited. Each step commits one
// batch; a crash in between leaves a partial erasure that a second call
// completes.
func (s *RawStore) EraseDevice(ctx context.Context, e *tapline.Erasure) (tapline.ErasureCounts, error) {
	var n tapline.ErasureCounts
	if e == nil {
		return n, tapline.Errorf(tapline.EINVALID, "An erasure needs a device.")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return n, err
	}
	defer release()
	buckets, err := s.buckets(e.AppID, math.MinInt64)
	if err != nil {
		return n, err
	}

	adIDs := tapline.IDSet(e.AdIDs)
	installs := tapline.IDSet(e.InstallIDs)
	events := map[string]*tapline.Event{} // id → the whole event
	// Installs carrying an advertising id name their installations.
	for _, ad := range slices.Sorted(maps.Keys(adIDs)) {
		err := s.eachRow(e.AppID, buckets, tableInstallByAdID, appendString(nil, ad), func(_, v []byte) error {
			ev := new(tapline.Event)
			if err := wire.DecodeEvent(v, ev); err != nil {
				return err
			}
			events[ev.ID] = ev
			if ev.InstallID != "" {
				installs[ev.InstallID] = true
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	// Every event of the installations, read whole from its bucket.
	for _, id := range slices.Sorted(maps.Keys(installs)) {
		group := appendString(appendInt64(nil, installKey(id)), id)
		err := s.eachRow(e.AppID, buckets, tableEventByInstall, group, func(_, v []byte) error {
			var idx tapline.Event
			if err := wire.DecodeEvent(v, &idx); err != nil {
				return err
			}
			if events[idx.ID] != nil {
				return nil
			}
			ev, err := s.eventAt(e.AppID, idx.ID, tapline.UnixNanos(idx.Time))
			if err != nil {
				return err
			}
			if ev == nil {
				ev = &idx // the index entry outlived its row: delete it alone
			}
			events[ev.ID] = ev
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	// The advertising ids of the installations' events are the device's.
	evs := make([]*tapline.Event, 0, len(events))
	for _, id := range slices.Sorted(maps.Keys(events)) {
		evs = append(evs, events[id])
	}
	for _, ad := range tapline.EventAdIDs(evs) {
		adIDs[ad] = true
	}
	hits := map[string]*tapline.Hit{}
	for _, ad := range slices.Sorted(maps.Keys(adIDs)) {
		err := s.eachRow(e.AppID, buckets, tableHitByAdID, appendString(nil, ad), func(_, v []byte) error {
			h := new(tapline.Hit)
			if err := wire.DecodeHit(v, h); err != nil {
				return err
			}
			hits[h.ID] = h
			return nil
		})
		if err != nil {
			return n, err
		}
	}

	b := s.db.NewBatch()
	defer b.Close()
	for _, ev := range evs {
		if deleteEvent(b, ev, s.rowExists(appendString(bucketKey(ev.AppID, tapline.UnixNanos(ev.Time), tableEvent), ev.ID))) {
			n.Events++
		}
		// A re-engagement is kept by its open's id: it goes with the
		// open, and so does its claim on the tap.
		r, err := s.reengagement(e.AppID, tapline.ReengagementID(ev.ID))
		switch {
		case tapline.ErrorCode(err) == tapline.ENOTFOUND:
			continue
		case err != nil:
			return n, err
		}
		if err := b.Delete(appendString(appKey(spaceReengagement, e.AppID), r.ID), nil); err != nil {
			return n, fmt.Errorf("erase re-engagement: %w", err)
		}
		claim := appendString(appKey(spaceReengByHit, e.AppID), r.HitID)
		if v, closer, err := s.db.Get(claim); err == nil {
			ours := string(v) == r.ID
			closer.Close()
			if ours {
				if err := b.Delete(claim, nil); err != nil {
					return n, fmt.Errorf("erase re-engagement claim: %w", err)
				}
			}
		}
		n.Reengagements++
	}
	for _, id := range slices.Sorted(maps.Keys(hits)) {
		h := hits[id]
		if s.rowExists(appendString(bucketKey(h.AppID, tapline.UnixNanos(h.Time), tableHit), h.ID)) {
			n.Hits++
		}
		deleteHit(b, h)
	}
	if err := b.Commit(pdb.Sync); err != nil {
		return n, fmt.Errorf("erase raw rows: %w", err)
	}

	// The conversions: of the installations, and those named.
	convIDs := tapline.IDSet(e.ConversionIDs)
	for id := range installs {
		cs, err := s.conversionsByLocked(convInstallPrefix(e.AppID, id))
		if err != nil {
			return n, err
		}
		for _, c := range cs {
			convIDs[c.ID] = true
		}
	}
	err = e.EraseConversions(ctx, convIDs, &n, func(id string) bool { return hits[id] != nil },
		func(id string) (*tapline.Conversion, bool, error) { return s.eraseConversion(e.AppID, id) },
		func(id string) (bool, error) { return s.eraseHit(e.AppID, id, buckets) })
	if err != nil {
		return n, err
	}
	if err := s.db.LogData(nil, pdb.Sync); err != nil {
		return n, fmt.Errorf("erase raw rows: %w", err)
	}
	return n, nil
}

// eachRow calls fn with the key and value of every row of table under
// value in the given buckets, hidden by the watermark or not.
func (s *RawStore) eachRow(appID int64, buckets []int64, table byte, value []byte, fn func(k, v []byte) error) error {
	for _, bucket := range buckets {
		prefix := append(append(appendInt64(appKey(spaceRaw, appID), bucket), table), value...)
		it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return fmt.Errorf("raw store iterator: %w", err)
		}
		for it.First(); it.Valid(); it.Next() {
			v, err := it.ValueAndErr()
			if err == nil {
				err = fn(it.Key(), v)
			}
			if err != nil {
				_ = it.Close()
				return err
			}
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("raw store iterator: %w", err)
		}
	}
	return nil
}

// eventAt returns the stored event id of the bucket of t, hidden or not;
// nil when there is none.
func (s *RawStore) eventAt(appID int64, id string, t int64) (*tapline.Event, error) {
	v, closer, err := s.db.Get(appendString(bucketKey(appID, t, tableEvent), id))
	if errors.Is(err, pdb.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("get event: %w", err)
	}
	defer closer.Close()
	ev := new(tapline.Event)
	if err := wire.DecodeEvent(v, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// rowExists reports whether key is stored.
func (s *RawStore) rowExists(key []byte) bool {
	_, closer, err := s.db.Get(key)
	if err != nil {
		return false
	}
	closer.Close()
	return true
}

// deleteEvent adds to b the deletion of every row setEvent wrote for e,
// and returns counted.
func deleteEvent(b *pdb.Batch, e *tapline.Event, counted bool) bool {
	t := tapline.UnixNanos(e.Time)
	_ = b.Delete(appendString(bucketKey(e.AppID, t, tableEvent), e.ID), nil)
	if e.InstallID != "" {
		_ = b.Delete(installIndexKey(e.AppID, t, installKey(e.InstallID), e.InstallID, e.ID), nil)
	}
	if e.Kind == tapline.KindInstall {
		if e.Fingerprint != "" {
			_ = b.Delete(indexKey(e.AppID, tableInstallByFP, e.Fingerprint, t, e.ID), nil)
		}
		if ad := e.Device.AdID(); ad != "" {
			_ = b.Delete(indexKey(e.AppID, tableInstallByAdID, ad, t, e.ID), nil)
		}
		if hit := e.ReferrerHitID(); hit != "" {
			_ = b.Delete(indexKey(e.AppID, tableInstallByReferr, hit, t, e.ID), nil)
		}
	}
	return counted
}

// deleteHit adds to b the deletion of every row setHit wrote for h.
func deleteHit(b *pdb.Batch, h *tapline.Hit) {
	t := tapline.UnixNanos(h.Time)
	_ = b.Delete(appendString(bucketKey(h.AppID, t, tableHit), h.ID), nil)
	if h.Fingerprint != "" {
		_ = b.Delete(indexKey(h.AppID, tableHitByFP, h.Fingerprint, t, h.ID), nil)
	}
	if h.AdID != "" {
		_ = b.Delete(indexKey(h.AppID, tableHitByAdID, h.AdID, t, h.ID), nil)
	}
}

// conversionsByLocked reads the conversions of the index entries under
// prefix; the caller holds the store open.
func (s *RawStore) conversionsByLocked(prefix []byte) ([]*tapline.Conversion, error) {
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("conversion iterator: %w", err)
	}
	defer it.Close()
	var out []*tapline.Conversion
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read conversion: %w", err)
		}
		var c tapline.Conversion
		if err := wire.DecodeConversion(v, &c); err != nil {
			return nil, err
		}
		out = append(out, &c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("conversion iterator: %w", err)
	}
	return out, nil
}

// eraseConversion strips the conversion id of its personal fields under
// its lock stripe, rewriting it and its index entries; nil when there is
// no such conversion.
func (s *RawStore) eraseConversion(appID int64, id string) (*tapline.Conversion, bool, error) {
	defer s.lockID(spaceConversion, appID, id)()
	c, err := s.conversion(appendString(appKey(spaceConversion, appID), id))
	if tapline.ErrorCode(err) == tapline.ENOTFOUND {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	installID := c.InstallID
	if !c.Erase() {
		return c, false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	setConversion(b, c) // the same keys: the values are replaced
	if err := b.Commit(pdb.NoSync); err != nil {
		return nil, false, fmt.Errorf("erase conversion: %w", err)
	}
	s.convs.forget(appID, installID, c.InstallID)
	return c, true, nil
}

// eraseHit strips the stored hit id (hidden or not) of its personal
// fields, dropping its fingerprint and advertising id index entries.
func (s *RawStore) eraseHit(appID int64, id string, buckets []int64) (bool, error) {
	defer s.lockID(tableHit, appID, id)()
	var found []*tapline.Hit
	err := s.eachRow(appID, buckets, tableHit, appendString(nil, id), func(_, v []byte) error {
		h := new(tapline.Hit)
		if err := wire.DecodeHit(v, h); err != nil {
			return err
		}
		if h.ID == id {
			found = append(found, h)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	changed := false
	for _, h := range found {
		old := *h
		if !tapline.EraseHit(h) {
			continue
		}
		changed = true
		deleteHit(b, &old)
		setHit(b, h)
	}
	if !changed {
		return false, nil
	}
	if err := b.Commit(pdb.NoSync); err != nil {
		return false, fmt.Errorf("erase hit: %w", err)
	}
	return true, nil
}

// privateMarker is the key privateConversions sets once done.
var privateMarker = appendString([]byte{spaceMeta}, "private-conversions")

// privateConversions rewrites, once, the conversions stored before
// conversions were kept private (fingerprint.PrivateConversion: the
// address masked, no advertising id, none in hit parameters, decision
// signals masked), with their index entries, in batches; then it sets
// privateMarker. It runs at Open; a crash in between leaves the marker
// unset, and the next Open goes over the conversions again (a rewritten one
// is left as it is).
func privateConversions(db *pdb.DB, logger interface {
	Info(msg string, args ...any)
}) error {
	if _, closer, err := db.Get(privateMarker); err == nil {
		closer.Close()
		return nil
	} else if !errors.Is(err, pdb.ErrNotFound) {
		return fmt.Errorf("private conversions: %w", err)
	}
	lo := []byte{spaceConversion}
	it, err := db.NewIter(&pdb.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("private conversions: %w", err)
	}
	defer it.Close()
	b := db.NewBatch()
	defer func() { b.Close() }()
	rewritten := 0
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("private conversions: %w", err)
		}
		c := new(tapline.Conversion)
		if err := wire.DecodeConversion(v, c); err != nil {
			return fmt.Errorf("private conversions: key %x: %w", it.Key(), err)
		}
		changed := fingerprint.PrivateConversion(c)
		if !changed && bytes.Equal(wire.AppendConversion(nil, c), v) {
			continue
		}
		setConversion(b, c)
		if rewritten++; b.Len() >= 1<<20 {
			if err := b.Commit(pdb.Sync); err != nil {
				return fmt.Errorf("private conversions: %w", err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("private conversions: %w", err)
	}
	_ = b.Set(privateMarker, nil, nil)
	if err := b.Commit(pdb.Sync); err != nil {
		return fmt.Errorf("private conversions: %w", err)
	}
	if rewritten > 0 {
		logger.Info("raw store: conversions rewritten without addresses and advertising ids", "conversions", rewritten)
	}
	return nil
}
