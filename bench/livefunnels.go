package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"tapline"
	"tapline/funnels"
	"tapline/pebble"
	"tapline/postgres"
)

// liveFunnels are n funnels over what the drain workload produces (taps,
// installs, opens, purchases with revenue): ordered, strict and any
// order, with windows, exclusions and each kind of breakdown.
func liveFunnels(n int) []tapline.FunnelDefinition {
	tap := tapline.FunnelStep{Kind: tapline.StepTap}
	install := tapline.FunnelStep{Kind: tapline.StepInstall}
	ev := func(name string, fs ...tapline.FunnelFilter) tapline.FunnelStep {
		return tapline.FunnelStep{Kind: tapline.StepEvent, Event: name, Filters: fs}
	}
	revenue := func(op tapline.FilterOp, v string) tapline.FunnelFilter {
		return tapline.FunnelFilter{Param: tapline.ParamRevenue, Op: op, Value: v}
	}
	usd := tapline.FunnelFilter{Param: tapline.ParamCurrency, Op: tapline.OpEq, Value: "USD"}
	excl := func(s tapline.FunnelStep, after, before int) []tapline.FunnelExclusion {
		return []tapline.FunnelExclusion{{FunnelStep: s, After: after, Before: before}}
	}
	bd := func(k tapline.BreakdownKind, p string) tapline.FunnelBreakdown {
		return tapline.FunnelBreakdown{Kind: k, Param: p}
	}
	all := []tapline.FunnelDefinition{
		{Steps: []tapline.FunnelStep{tap, install, ev("open"), ev("purchase")}, Breakdown: bd(tapline.BreakdownLink, "")},
		{Steps: []tapline.FunnelStep{install, ev("open"), ev("open")}, Order: tapline.OrderStrict, Breakdown: bd(tapline.BreakdownPlatform, "")},
		{Steps: []tapline.FunnelStep{ev("open"), ev("purchase", revenue(tapline.OpGt, "1")), install}, Order: tapline.OrderAny, Breakdown: bd(tapline.BreakdownMethod, "")},
		{Steps: []tapline.FunnelStep{install, ev("purchase", usd)}, Exclusions: excl(ev("purchase", revenue(tapline.OpLt, "1")), 1, 2),
			Breakdown: bd(tapline.BreakdownEntryParam, tapline.ParamCurrency)},
		{Steps: []tapline.FunnelStep{tap, ev("purchase", revenue(tapline.OpGte, "5"))}, WindowSeconds: 86400, Breakdown: bd(tapline.BreakdownLinkParam, "utm_source")},
		{Steps: []tapline.FunnelStep{tap, install}, Order: tapline.OrderStrict, Breakdown: bd(tapline.BreakdownMethod, "")},
		{Steps: []tapline.FunnelStep{ev("purchase"), ev("open")}, Order: tapline.OrderAny, WindowSeconds: 3 * 86400},
		{Steps: []tapline.FunnelStep{ev("open"), ev("purchase"), ev("purchase")}, WindowSeconds: 3600, Breakdown: bd(tapline.BreakdownPlatform, "")},
		{Steps: []tapline.FunnelStep{install, ev("open"), ev("purchase", revenue(tapline.OpGt, "0"))}, Exclusions: excl(ev("purchase", tapline.FunnelFilter{Param: tapline.ParamCurrency, Op: tapline.OpEq, Value: "EUR"}), 2, 3),
			Breakdown: bd(tapline.BreakdownPlatform, "")},
		{Steps: []tapline.FunnelStep{tap, install, ev("purchase")}, Order: tapline.OrderAny, Breakdown: bd(tapline.BreakdownLink, "")},
	}
	var out []tapline.FunnelDefinition
	for i := range n {
		d := all[i%len(all)]
		d.Name = fmt.Sprintf("live %d", i+1)
		out = append(out, d)
	}
	return out
}

// makeLiveFunnels creates n funnels of the app, fixes their handoff at the
// start of every partition of a bus with parts partitions per topic, and
// backfills them over the empty raw store of dataDir, so that they are
// live before the matcher starts: it counts every record for them.
func makeLiveFunnels(ctx context.Context, s *seeded, app *tapline.App, dataDir string, parts, n int) ([]int64, error) {
	store := postgres.NewFunnelStore(s.db)
	facts := postgres.NewFactStore(s.db)
	var versions []int64
	for _, def := range liveFunnels(n) {
		f, err := store.CreateFunnel(ctx, app.ID, def)
		if err != nil {
			return nil, fmt.Errorf("create live funnel: %w", err)
		}
		var hs []tapline.FunnelHandoff
		for _, topic := range []string{tapline.TopicHits, tapline.TopicEvents} {
			for p := range parts {
				hs = append(hs, tapline.FunnelHandoff{VersionID: f.VersionID, Partition: tapline.Partition{Topic: topic, Partition: p}, Offset: 0, Of: 2 * parts})
			}
		}
		if err := facts.ApplyFacts(ctx, "matcher", nil, nil, tapline.FlushRows{Handoffs: hs}); err != nil {
			return nil, fmt.Errorf("store live funnel handoff: %w", err)
		}
		versions = append(versions, f.VersionID)
	}
	raw := pebble.NewRawStore(filepath.Join(dataDir, "raw"))
	raw.Logger = slog.New(slog.DiscardHandler)
	if err := raw.Open(); err != nil {
		return nil, err
	}
	defer raw.Close()
	for _, v := range versions {
		b := funnels.Backfill{Raw: raw, Store: store, Workers: 2, Logger: slog.New(slog.DiscardHandler)}
		if _, err := b.Run(ctx, v); err != nil {
			return nil, fmt.Errorf("backfill live funnel: %w", err)
		}
		f, err := store.FunnelVersion(ctx, v)
		if err != nil {
			return nil, err
		}
		if f.Status != tapline.FunnelLive {
			return nil, fmt.Errorf("live funnel %d is %s after its backfill", v, f.Status)
		}
	}
	return versions, nil
}

// countedInFunnels sums the installations the versions counted at step 1.
func countedInFunnels(ctx context.Context, pool *pgxpool.Pool, versions []int64) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, "SELECT coalesce(sum(count), 0)::bigint FROM fact_funnel_steps WHERE funnel_version = ANY($1) AND step = 1", versions).Scan(&n)
	return n, err
}
