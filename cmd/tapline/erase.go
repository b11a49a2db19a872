package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tapline"
	"tapline/dashboard"
	"tapline/postgres"
)

// erase records a request to erase one device's personal data, which the
// running matcher performs, and prints it; with -wait it waits for it to
// be done. With -status it prints a request's status instead.
func (m *Main) erase(ctx context.Context, args []string) error {
	fs, cfg := m.flags("erase")
	app := fs.Int64("app", 0, "id of the app (or name it with -account and -app-name)")
	account := fs.String("account", "", "account of the app, with -app-name")
	appName := fs.String("app-name", "", "name of the app, with -account")
	adID := fs.String("ad-id", "", "the device's advertising id (IDFA or GAID)")
	installID := fs.String("install-id", "", "the device's install id")
	by := fs.String("requested-by", "cli", "who asked, for the record")
	status := fs.Int64("status", 0, "print the status of this erasure request instead")
	wait := fs.Duration("wait", 0, "wait this long for the matcher to perform the request (0: do not wait)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	req := &tapline.ErasureRequest{RequestedBy: *by}
	if *status == 0 {
		switch {
		case *adID != "" && *installID != "":
			return errors.New("give -ad-id or -install-id, not both")
		case *adID != "":
			req.Kind, req.Key = tapline.ErasureAdID, *adID
		case *installID != "":
			req.Kind, req.Key = tapline.ErasureInstallID, *installID
		default:
			return errors.New("give -ad-id or -install-id (or -status)")
		}
	}
	db, err := m.openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if *app == 0 && *account != "" {
		if *app, err = appID(ctx, postgres.NewAccountService(db), *account, *appName); err != nil {
			return describe(err)
		}
	}
	if *app <= 0 {
		return errors.New("-app: required (or -account and -app-name)")
	}
	if _, err := postgres.NewAccountService(db).App(ctx, *app); err != nil {
		return describe(err)
	}
	es := postgres.NewErasureStore(db)
	if *status != 0 {
		r, err := es.Erasure(ctx, *app, *status)
		if err != nil {
			return describe(err)
		}
		return m.printJSON(dashboard.NewErasureView(r))
	}
	req.AppID = *app
	if err := es.RequestErasure(ctx, req); err != nil {
		return describe(err)
	}
	if *wait > 0 {
		if req, err = waitErasure(ctx, es, req, *wait); err != nil {
			return err
		}
	}
	return m.printJSON(dashboard.NewErasureView(req))
}

// waitErasure polls r until it is done or d has passed; it returns r as
// last read, done or not.
func waitErasure(ctx context.Context, es *postgres.ErasureStore, r *tapline.ErasureRequest, d time.Duration) (*tapline.ErasureRequest, error) {
	deadline := time.Now().Add(d)
	for !r.Done() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		next, err := es.Erasure(ctx, r.AppID, r.ID)
		if err != nil {
			return nil, describe(err)
		}
		r = next
	}
	return r, nil
}
