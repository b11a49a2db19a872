package matcher

import (
	"context"

	"tapline"
	"tapline/postbacks"
)

// deliveries returns the deliveries of the app's postbacks and webhooks
// that follow t, for the flush to put in the outbox; none without a
// PostbackService, whose postbacks the app cache loads.
// Rendered again for a replayed record, they carry the same keys, which the
// outbox keeps once.
func (m *Matcher) deliveries(ctx context.Context, appID int64, t *postbacks.Trigger) ([]*tapline.Delivery, error) {
	e, err := m.apps.entry(ctx, appID) // (cached: the app was just loaded)
	if err != nil {
		return nil, err
	}
	if len(e.postbacks) == 0 {
		return nil, nil
	}
	t.LinkSlug = e.slugs[t.Attribution.LinkID]
	return postbacks.Render(e.postbacks, t, m.Now().UTC()), nil
}

// changeDeliveries returns the deliveries a late tap's change ch of c
// makes: the install's, for the tap it now counts under, and those of the
// events the change moved to it (MovedEvent: by name and kind; an event a
// postback was sent for before keeps its key and is not sent again).
func (m *Matcher) changeDeliveries(ctx context.Context, appID int64, c *tapline.Conversion, install *tapline.Event, ch *tapline.AttributionChange, pos string) ([]*tapline.Delivery, error) {
	re := reattributes(ch.From)
	ds, err := m.deliveries(ctx, appID, &postbacks.Trigger{Event: install, Conversion: c, Attribution: ch.To, Change: pos, Reattributed: re})
	if err != nil || len(ds) == 0 && len(ch.Moved) == 0 {
		return ds, err
	}
	for _, mv := range ch.Moved {
		if mv.ID == c.EventID {
			continue // the install, announced above
		}
		e := &tapline.Event{ID: mv.ID, AppID: appID, Name: mv.Name, Kind: mv.Kind, Time: mv.Time, Revenue: mv.Revenue,
			InstallID: c.InstallID, Device: install.Device, IP: install.IP}
		more, err := m.deliveries(ctx, appID, &postbacks.Trigger{Event: e, Conversion: c, Attribution: ch.To, Reattributed: re})
		if err != nil {
			return nil, err
		}
		ds = append(ds, more...)
	}
	return ds, nil
}

// reattributes reports whether a change from prev takes an install from
// another tap: a network was told of the install before. A late tap on an
// organic install is its first attribution, announced as any install's.
func reattributes(prev *tapline.Attribution) bool {
	return prev != nil && prev.Method != tapline.MethodOrganic && prev.HitID != ""
}
