package cassandra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gocql/gocql"

	"tapline"
)

// PutReengagement stores r unless a re-engagement with its id, or one
// crediting its tap, is stored; it returns the one that stands. The claim
// on the tap (reengagements_by_hit) is taken with a lightweight
// transaction, so of two opens claiming one tap one wins; the row by id
// follows with a plain write. A claim whose row by id was never written
// (a crash between the two) is completed by the next put of the same
// re-engagement, which finds its own claim.
func (s *RawStore) PutReengagement(ctx context.Context, r *tapline.Reengagement) (*tapline.Reengagement, error) {
	if r == nil || r.ID == "" || r.HitID == "" {
		return nil, tapline.Errorf(tapline.EINVALID, "A re-engagement needs an id and a hit id.")
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	stored, err := s.reengagement(ctx, r.AppID, r.ID)
	if err == nil {
		return stored, nil
	} else if tapline.ErrorCode(err) != tapline.ENOTFOUND {
		return nil, err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode re-engagement: %w", err)
	}
	for range maxCASAttempts {
		row := make(map[string]any)
		applied, err := s.query(ctx, s.stmt.reengClaim, false, r.AppID, r.HitID, r.ID, v).MapScanCAS(row)
		var id string
		var data []byte
		switch {
		case err != nil && !casUncertain(err):
			return nil, fmt.Errorf("claim tap %s for re-engagement: %w", r.HitID, translate(err))
		case err == nil && applied:
			id, data = r.ID, v
		case err == nil:
			id, _ = row["id"].(string)
			data, _ = row["data"].([]byte)
		}
		if id == "" || data == nil {
			// Unknown outcome, or a refusal without the row: a SERIAL read
			// completes any transaction in progress.
			err := s.query(ctx, s.stmt.reengClaimSelect, true, r.AppID, r.HitID).
				Consistency(gocql.Consistency(s.serial)).Scan(&id, &data)
			switch {
			case errors.Is(err, gocql.ErrNotFound):
				continue
			case err != nil && casUncertain(err):
				continue
			case err != nil:
				return nil, fmt.Errorf("read claim of tap %s: %w", r.HitID, translate(err))
			}
		}
		var won tapline.Reengagement
		if err := json.Unmarshal(data, &won); err != nil {
			return nil, fmt.Errorf("decode re-engagement %s: %w", id, err)
		}
		if id == r.ID {
			// Ours (now or by an earlier attempt): the row by id follows,
			// itself a lightweight transaction, so that of two taps
			// claimed for one open at once one stands (the other's claim
			// stays, its tap spent).
			row := make(map[string]any)
			applied, err := s.query(ctx, s.stmt.reengInsert, false, r.AppID, r.ID, r.HitID, data).MapScanCAS(row)
			switch {
			case err != nil && casUncertain(err):
				continue // read back by the next attempt's claim and row
			case err != nil:
				return nil, fmt.Errorf("put re-engagement: %w", translate(err))
			case !applied:
				stored, _ := row["data"].([]byte)
				var other tapline.Reengagement
				if err := json.Unmarshal(stored, &other); err != nil {
					return nil, fmt.Errorf("decode re-engagement %s: %w", r.ID, err)
				}
				return &other, nil
			}
		}
		return &won, nil
	}
	return nil, tapline.Errorf(tapline.EUNAVAILABLE, "Too much contention on the re-engagement of tap %q; retry later.", r.HitID)
}

// Reengagement returns the app's re-engagement id, or ENOTFOUND.
func (s *RawStore) Reengagement(ctx context.Context, appID int64, id string) (*tapline.Reengagement, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s.reengagement(ctx, appID, id)
}

func (s *RawStore) reengagement(ctx context.Context, appID int64, id string) (*tapline.Reengagement, error) {
	var v []byte
	err := s.query(ctx, s.stmt.reengSelect, true, appID, id).Scan(&v)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, tapline.Errorf(tapline.ENOTFOUND, "Re-engagement %q not found.", id)
	} else if err != nil {
		return nil, fmt.Errorf("get re-engagement: %w", translate(err))
	}
	var r tapline.Reengagement
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode re-engagement %s: %w", id, err)
	}
	return &r, nil
}
