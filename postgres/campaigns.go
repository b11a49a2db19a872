package postgres

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"tapline"
)

// campaignValue is one value of a campaign dimension of an app.
type campaignValue struct {
	app   int64
	dim   string // the dimension's column
	value string
}

func (a campaignValue) compare(b campaignValue) int {
	return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.dim, b.dim), cmp.Compare(a.value, b.value))
}

// maxKnownCampaignValues bounds the FactStore's memory of decisions; past
// it the memory starts afresh (values refused past the cap are unbounded).
const maxKnownCampaignValues = 100_000

// capCampaigns bounds the campaign dimensions of byTable's rows in tx: a
// value an app's facts already keep stays; a new one is kept while the app
// keeps fewer than the cap of that dimension (and recorded in
// campaign_values), else the row counts it as tapline.CampaignOther. Rows
// that become equal are summed. It returns its decisions about values it
// did not know, for remember once tx commits.
//
// New values of one app and dimension are decided under a transaction
// advisory lock on the pair, taken in a fixed order before any fact row is
// written, so two writers neither pass the cap together nor deadlock. A
// value is decided once and for good: once admitted it stays, and a
// dimension at its cap admits nothing more, so a later delta of the same
// value (a retraction) lands in the row the first one did.
func (s *FactStore) capCampaigns(ctx context.Context, tx pgx.Tx, byTable map[tapline.FactTable][]factRow) (map[campaignValue]bool, error) {
	limit := cmp.Or(s.CampaignCap, tapline.CampaignValueCap)
	decided := make(map[campaignValue]bool)
	var unknown []campaignValue
	s.mu.Lock()
	for _, rows := range byTable {
		for _, r := range rows {
			for _, d := range tapline.CampaignDims {
				v := campaignValue{r.key.AppID, d.Column, d.Text(r.key)}
				if _, seen := decided[v]; seen || v.value == "" || v.value == tapline.CampaignOther {
					continue
				}
				ok, known := s.known[v]
				decided[v] = ok
				if !known {
					unknown = append(unknown, v)
				}
			}
		}
	}
	s.mu.Unlock()
	if len(decided) == 0 {
		return nil, nil
	}
	if len(unknown) > 0 {
		slices.SortFunc(unknown, campaignValue.compare)
		if err := decideCampaignValues(ctx, tx, unknown, limit, decided); err != nil {
			return nil, err
		}
	}
	// Rewrite the rows whose values were refused, summing rows that meet.
	for t, rows := range byTable {
		changed := false
		for i := range rows {
			for _, d := range tapline.CampaignDims {
				v := campaignValue{rows[i].key.AppID, d.Column, d.Text(rows[i].key)}
				if ok, in := decided[v]; in && !ok {
					d.Set(&rows[i].key, tapline.CampaignOther)
					changed = true
				}
			}
		}
		if !changed {
			continue
		}
		sums := make(map[tapline.FactKey]tapline.FactValue, len(rows))
		for _, r := range rows {
			cur := sums[r.key]
			cur.Count += r.val.Count
			cur.Sum += r.val.Sum
			sums[r.key] = cur
		}
		rows = rows[:0]
		for k, v := range sums {
			if v != (tapline.FactValue{}) {
				rows = append(rows, factRow{k, v})
			}
		}
		byTable[t] = rows
	}
	unknownSet := make(map[campaignValue]bool, len(unknown))
	for _, v := range unknown {
		unknownSet[v] = decided[v]
	}
	return unknownSet, nil
}

// decideCampaignValues decides values (sorted, none known to the caller)
// in tx, into decided: true when the app's facts keep the value.
func decideCampaignValues(ctx context.Context, tx pgx.Tx, values []campaignValue, limit int, decided map[campaignValue]bool) error {
	// Values kept already need no lock.
	apps, dims, vals := columns(values)
	rows, err := tx.Query(ctx, `
		SELECT v.app_id, v.dim, v.value FROM campaign_values v
		JOIN unnest($1::bigint[], $2::text[], $3::text[]) AS u (app_id, dim, value) USING (app_id, dim, value)`, apps, dims, vals)
	if err != nil {
		return fmt.Errorf("read campaign values: %w", translate(err))
	}
	var v campaignValue
	if _, err := pgx.ForEachRow(rows, []any{&v.app, &v.dim, &v.value}, func() error {
		decided[v] = true
		return nil
	}); err != nil {
		return fmt.Errorf("read campaign values: %w", translate(err))
	}
	// The rest, per app and dimension in order, under its lock.
	byPair := make(map[campaignValue][]string) // value field unused
	for _, v := range values {
		if !decided[v] {
			pair := campaignValue{app: v.app, dim: v.dim}
			byPair[pair] = append(byPair[pair], v.value)
		}
	}
	for _, pair := range slices.SortedFunc(maps.Keys(byPair), campaignValue.compare) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('campaign_values/' || $1::bigint || '/' || $2::text, 0))`, pair.app, pair.dim); err != nil {
			return fmt.Errorf("lock campaign values: %w", translate(err))
		}
		var kept int
		var present []string
		if err := tx.QueryRow(ctx, `
			SELECT count(*)::int, COALESCE(array_agg(value) FILTER (WHERE value = ANY($3::text[])), '{}')
			FROM campaign_values WHERE app_id = $1 AND dim = $2`, pair.app, pair.dim, byPair[pair]).Scan(&kept, &present); err != nil {
			return fmt.Errorf("count campaign values: %w", translate(err))
		}
		var admit []string
		for _, value := range byPair[pair] {
			switch {
			case slices.Contains(present, value): // kept by a writer that committed since
				decided[campaignValue{pair.app, pair.dim, value}] = true
			case kept+len(admit) < limit:
				admit = append(admit, value)
				decided[campaignValue{pair.app, pair.dim, value}] = true
			}
		}
		if len(admit) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO campaign_values (app_id, dim, value) SELECT $1, $2, unnest($3::text[])`, pair.app, pair.dim, admit); err != nil {
			return fmt.Errorf("keep campaign values: %w", translate(err))
		}
	}
	return nil
}

func columns(values []campaignValue) (apps []int64, dims, vals []string) {
	for _, v := range values {
		apps, dims, vals = append(apps, v.app), append(dims, v.dim), append(vals, v.value)
	}
	return apps, dims, vals
}

// remember keeps decisions a committed transaction made.
func (s *FactStore) remember(decided map[campaignValue]bool) {
	if len(decided) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil || len(s.known)+len(decided) > maxKnownCampaignValues {
		s.known = make(map[campaignValue]bool)
	}
	maps.Copy(s.known, decided)
}
