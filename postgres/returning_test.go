package postgres_test

import (
	"context"
	"testing"
	"time"

	"tapline"
	"tapline/postgres"
)

// TestReengagementSettings stores a re-engagement link and an app's
// re-engagement and reinstall rules, and checks their defaults and
// validation.
func TestReengagementSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newService(t)
	acct := newAccount(t, s, "acme")
	app := newApp(t, s, acct.ID, "Acme")
	if app.ReengagementWindow != tapline.DefaultReengagementWindow || app.ReinstallWindow != tapline.DefaultReinstallWindow || app.ReattributeReinstalls {
		t.Fatalf("new app %+v, want the default rules", app)
	}
	app.ReengagementWindow, app.ReinstallWindow, app.ReattributeReinstalls = 3*24*time.Hour, 30*24*time.Hour, true
	if err := s.UpdateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	got, err := s.App(ctx, app.ID)
	if err != nil || got.ReengagementWindow != 3*24*time.Hour || got.ReinstallWindow != 30*24*time.Hour || !got.ReattributeReinstalls {
		t.Fatalf("stored %+v (%v)", got, err)
	}
	bad := *got
	bad.ReinstallWindow = time.Millisecond
	wantCode(t, "a reinstall window under a second", s.UpdateApp(ctx, &bad), tapline.EINVALID)

	l := &tapline.Link{AppID: app.ID, Slug: "winback", Reengagement: true}
	if err := s.CreateLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LinkBySlug(ctx, "winback"); err != nil || !got.Reengagement {
		t.Fatalf("stored link %+v (%v), want a re-engagement link", got, err)
	}
	l.Reengagement = false
	if err := s.UpdateLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Link(ctx, l.ID); err != nil || got.Reengagement {
		t.Fatalf("updated link %+v (%v), want an ordinary link", got, err)
	}
}

// TestReturning sums re-engagements and reinstalls in the filter's days,
// by link and campaign, and refuses a filter on the event.
func TestReturning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := newService(t)
	acct := newAccount(t, s, "acme")
	app := newApp(t, s, acct.ID, "Acme")
	fs := postgres.NewFactStore(db)
	reports := postgres.NewReports(db)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	k := func(table tapline.FactTable, at time.Time, link int64, source string) tapline.FactKey {
		return tapline.FactKey{Table: table, Hour: tapline.HourOf(at), AppID: app.ID, LinkID: link, Platform: tapline.PlatformAndroid,
			Method: tapline.MethodAdID, Source: source}
	}
	deltas := map[tapline.FactKey]tapline.FactValue{
		k(tapline.FactReengagements, day.Add(3*time.Hour), 7, "push"):  {Count: 5},
		k(tapline.FactReengagements, day.Add(23*time.Hour), 8, "mail"): {Count: 1},
		k(tapline.FactReengagements, day.Add(25*time.Hour), 7, "push"): {Count: 100}, // the next day
		k(tapline.FactReinstalls, day.Add(time.Hour), 7, "push"):       {Count: 2},
		k(tapline.FactReinstalls, day.Add(time.Hour), 0, ""):           {Count: 9},
		k(tapline.FactInstalls, day.Add(time.Hour), 7, "push"):         {Count: 50},
	}
	if err := fs.ApplyFacts(ctx, "t", deltas, nil, tapline.FlushRows{}); err != nil {
		t.Fatal(err)
	}
	f := tapline.StatsFilter{AppID: app.ID, From: day, To: day.AddDate(0, 0, 1), Location: time.UTC}
	for _, tt := range []struct {
		name  string
		link  int64
		where []tapline.DimFilter
		want  tapline.Returning
	}{
		{"the day", 0, nil, tapline.Returning{Reengagements: 6, Reinstalls: 11}},
		{"one link", 7, nil, tapline.Returning{Reengagements: 5, Reinstalls: 2}},
		{"one source", 0, []tapline.DimFilter{{Dim: "source", Value: "mail"}}, tapline.Returning{Reengagements: 1}},
		{"organic", 0, []tapline.DimFilter{{Dim: "link", Value: "0"}}, tapline.Returning{Reinstalls: 9}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := f
			g.LinkID, g.Where = tt.link, tt.where
			got, err := reports.Returning(ctx, g)
			if err != nil || got != tt.want {
				t.Fatalf("Returning = %+v (%v), want %+v", got, err, tt.want)
			}
		})
	}
	g := f
	g.Where = []tapline.DimFilter{{Dim: "event", Value: "purchase"}}
	_, err := reports.Returning(ctx, g)
	wantCode(t, "filter by event", err, tapline.EINVALID)
}

// TestReinstallConversionStored checks that the conversions table keeps a
// reinstall's Reinstall.
func TestReinstallConversionStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db := newService(t)
	app := newApp(t, s, newAccount(t, s, "acme").ID, "Acme")
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	a := tapline.Attribution{Method: tapline.MethodOrganic}
	c := &tapline.Conversion{ID: "cv-e2", AppID: app.ID, EventID: "e2", InstallID: "i2", InstallTime: at, Platform: tapline.PlatformIOS,
		Attribution: a, History: []tapline.AttributionChange{{By: "events/0/2", To: a, At: at}}, UpdatedAt: at,
		Decision:  &tapline.Decision{Rule: tapline.RuleReinstall, Reason: "r"},
		Reinstall: &tapline.Reinstall{Of: "cv-e1", By: tapline.ReinstallByVendorID}}
	plain := &tapline.Conversion{ID: "cv-e3", AppID: app.ID, EventID: "e3", InstallID: "i3", InstallTime: at, Platform: tapline.PlatformIOS,
		Attribution: a, History: []tapline.AttributionChange{{By: "events/0/3", To: a, At: at}}, UpdatedAt: at}
	if err := postgres.NewFactStore(db).ApplyFacts(ctx, "t", nil, nil, tapline.FlushRows{Conversions: []*tapline.Conversion{c, plain}}); err != nil {
		t.Fatal(err)
	}
	reports := postgres.NewReports(db)
	got, err := reports.Conversion(ctx, app.ID, "cv-e2")
	if err != nil || got.Reinstall == nil || *got.Reinstall != *c.Reinstall {
		t.Fatalf("stored reinstall %+v (%v), want %+v", got, err, c.Reinstall)
	}
	if got, err = reports.Conversion(ctx, app.ID, "cv-e3"); err != nil || got.Reinstall != nil {
		t.Fatalf("a new install's conversion has %+v (%v)", got, err)
	}
}
