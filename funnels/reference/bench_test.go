package reference

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"tapline"
)

// benchData makes n events in n/10 installations: about ten events each
// over a few days, most installs attributed to a hit.
func benchData(n int) *Data {
	r := rand.New(rand.NewPCG(1, 2))
	d := &Data{AppID: app}
	names := []string{"open", "view", "add_to_cart", "purchase", "level_up"}
	installs := max(n/10, 1)
	for i := range installs {
		inst := fmt.Sprintf("inst-%07d", i)
		t0 := base.Add(time.Duration(r.Int64N(int64(60 * 24 * time.Hour))))
		install := &tapline.Event{
			ID: inst + "-0", AppID: app, Name: "install", Kind: tapline.KindInstall, Time: t0,
			InstallID: inst, Device: tapline.Device{Platform: tapline.PlatformAndroid},
			Source: fmt.Sprintf("events/%d/%d", i%8, i),
		}
		d.Events = append(d.Events, install)
		c := &tapline.Conversion{ID: "cv-" + install.ID, AppID: app, EventID: install.ID,
			InstallID: inst, InstallTime: t0, Platform: tapline.PlatformAndroid}
		a := tapline.Attribution{Method: tapline.MethodOrganic}
		if r.IntN(10) < 7 {
			h := &tapline.Hit{ID: "hit-" + inst, AppID: app, LinkID: int64(1 + r.IntN(20)),
				Time:   t0.Add(-time.Duration(r.Int64N(int64(time.Hour)))),
				Params: map[string]string{"utm_campaign": "c" + strconv.Itoa(r.IntN(5))}}
			d.Hits = append(d.Hits, h)
			a = tapline.Attribution{HitID: h.ID, LinkID: h.LinkID, Method: tapline.MethodFingerprint, HitTime: h.Time}
		}
		c.Attribution = a
		c.History = []tapline.AttributionChange{{By: install.Source, To: a}}
		d.Conversions = append(d.Conversions, c)
		t := t0
		for j := 1; j < 10; j++ {
			t = t.Add(time.Duration(r.Int64N(int64(12 * time.Hour))))
			e := &tapline.Event{
				ID: fmt.Sprintf("%s-%d", inst, j), AppID: app, Name: names[r.IntN(len(names))],
				Kind: tapline.KindCustom, Time: t, InstallID: inst,
				Device: tapline.Device{Platform: tapline.PlatformAndroid},
				Params: map[string]string{"n": strconv.Itoa(r.IntN(10))},
				Source: fmt.Sprintf("events/%d/%d", i%8, installs+i*10+j),
			}
			if e.Name == "purchase" {
				e.Revenue = &tapline.Revenue{Micros: r.Int64N(20_000_000), Currency: "EUR"}
			}
			d.Events = append(d.Events, e)
		}
	}
	return d
}

// BenchmarkRun runs funnels over TAPLINE_REFERENCE_EVENTS events (default
// 100,000) in each order.
func BenchmarkRun(b *testing.B) {
	n := 100_000
	if s := os.Getenv("TAPLINE_REFERENCE_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	d := benchData(n)
	db := mustOpen(b)
	for _, order := range []tapline.FunnelOrder{tapline.OrderOrdered, tapline.OrderStrict, tapline.OrderAny} {
		def := funnel(order, tap(nil), install(), event("view"),
			event("purchase", filter("revenue", tapline.OpGt, "5")))
		def.Exclusions = []tapline.FunnelExclusion{exclude(event("level_up", filter("n", tapline.OpGte, "8")), 2, 4)}
		def.Breakdown = tapline.FunnelBreakdown{Kind: tapline.BreakdownLinkParam, Param: "utm_campaign"}
		b.Run(string(order), func(b *testing.B) {
			for b.Loop() {
				res, err := Run(context.Background(), db, d, def, Handoff{"events/0": int64(n / 2)})
				if err != nil {
					b.Fatal(err)
				}
				if len(res) == 0 {
					b.Fatal("no results")
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
