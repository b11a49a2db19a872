package pebble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	pdb "github.com/cockroachdb/pebble/v2"

	"tapline"
)

// PutReengagement stores r unless a re-engagement with its id, or one
// crediting its tap, is stored; it returns the one that stands. The claim
// on the tap (T app hitID → id) and the re-engagement (G app id) are
// written in one batch under the lock stripes of the tap and of the
// re-engagement's id, so two opens never both claim one tap and two taps
// never both credit one open.
func (s *RawStore) PutReengagement(ctx context.Context, r *tapline.Reengagement) (*tapline.Reengagement, error) {
	if r == nil || r.ID == "" || r.HitID == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "A re-engagement needs an id and a hit id.")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	type key = struct {
		kind  byte
		appID int64
		id    string
	}
	defer s.lockIDs(key{spaceReengagement, r.AppID, r.ID}, key{spaceReengByHit, r.AppID, r.HitID})()

	if stored, err := s.reengagement(r.AppID, r.ID); err == nil {
		return stored, nil
	} else if tapline.ErrorCode(err) != tapline.ENOTFOUND {
		return nil, err
	}
	claim := appendString(appKey(spaceReengByHit, r.AppID), r.HitID)
	v, closer, err := s.db.Get(claim)
	switch {
	case err == nil:
		id := string(v)
		closer.Close()
		stored, err := s.reengagement(r.AppID, id)
		if err != nil {
			return nil, fmt.Errorf("re-engagement %s crediting tap %s: %w", id, r.HitID, err)
		}
		return stored, nil
	case !errors.Is(err, pdb.ErrNotFound):
		return nil, fmt.Errorf("get re-engagement claim: %w", err)
	}
	val, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode re-engagement: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(appendString(appKey(spaceReengagement, r.AppID), r.ID), val, nil); err != nil {
		return nil, fmt.Errorf("put re-engagement: %w", err)
	}
	if err := b.Set(claim, []byte(r.ID), nil); err != nil {
		return nil, fmt.Errorf("put re-engagement claim: %w", err)
	}
	if err := b.Commit(pdb.NoSync); err != nil {
		return nil, fmt.Errorf("put re-engagement: %w", err)
	}
	return r, nil
}

// Reengagement returns the app's re-engagement id, or ENOTFOUND.
func (s *RawStore) Reengagement(ctx context.Context, appID int64, id string) (*tapline.Reengagement, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.reengagement(appID, id)
}

func (s *RawStore) reengagement(appID int64, id string) (*tapline.Reengagement, error) {
	v, closer, err := s.db.Get(appendString(appKey(spaceReengagement, appID), id))
	if errors.Is(err, pdb.ErrNotFound) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Re-engagement not found.")
	} else if err != nil {
		return nil, fmt.Errorf("get re-engagement: %w", err)
	}
	defer closer.Close()
	var r tapline.Reengagement
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode re-engagement %s: %w", id, err)
	}
	return &r, nil
}
