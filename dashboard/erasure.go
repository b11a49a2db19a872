package dashboard

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"tapline"
)

// erasureRequest is the body of DELETE /api/v1/apps/{id}/devices: one of
// the two ids. The id travels in the body, not the URL, to stay out of
// access logs.
type erasureRequest struct {
	AdID      string `json:"ad_id"`
	InstallID string `json:"install_id"`
}

// ErasureView is an erasure request as the API and the CLI show it:
// never its key.
type ErasureView struct {
	ID          int64                 `json:"id"`
	AppID       int64                 `json:"app_id"`
	Kind        tapline.ErasureKind   `json:"kind"`
	Status      string                `json:"status"` // pending or done
	RequestedBy string                `json:"requested_by"`
	RequestedAt time.Time             `json:"requested_at"`
	DoneAt      *time.Time            `json:"done_at,omitempty"`
	Counts      tapline.ErasureCounts `json:"counts"`
	StatusURL   string                `json:"status_url"`
}

// NewErasureView returns r as the API shows it.
func NewErasureView(r *tapline.ErasureRequest) ErasureView { return erasureViewOf(r) }

func erasureViewOf(r *tapline.ErasureRequest) ErasureView {
	v := ErasureView{ID: r.ID, AppID: r.AppID, Kind: r.Kind, Status: "pending", RequestedBy: r.RequestedBy,
		RequestedAt: r.RequestedAt, Counts: r.Counts,
		StatusURL: fmt.Sprintf("/api/v1/apps/%d/erasures/%d", r.AppID, r.ID)}
	if r.Done() {
		t := r.DoneAt
		v.Status, v.DoneAt = "done", &t
	}
	return v
}

// erasures returns the erasure service, or EUNAVAILABLE when the
// dashboard was built without one.
func (d *Dashboard) erasures() (tapline.ErasureService, error) {
	if d.Erasures == nil {
		return nil, tapline.Errorf(tapline.EUNAVAILABLE, "Erasure requests are not available on this server.")
	}
	return d.Erasures, nil
}

// apiEraseDevice records a request to erase one device's personal data
// and answers 202 with the request and its status URL; the matcher
// performs it. Owners (and the admin) only: viewers are refused by
// readOnlyAPIViewers, API tokens by requireAPIAuth.
func (d *Dashboard) apiEraseDevice(w http.ResponseWriter, r *http.Request) {
	es, err := d.erasures()
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	var body erasureRequest
	if !d.decodeJSON(w, r, &body) {
		return
	}
	req := &tapline.ErasureRequest{AppID: app.ID, RequestedBy: requester(principalFrom(r.Context()))}
	switch ad, inst := strings.TrimSpace(body.AdID), strings.TrimSpace(body.InstallID); {
	case ad != "" && inst != "":
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "Give ad_id or install_id, not both."))
		return
	case ad != "":
		req.Kind, req.Key = tapline.ErasureAdID, ad
	case inst != "":
		req.Kind, req.Key = tapline.ErasureInstallID, inst
	default:
		d.writeJSONError(w, r, tapline.Errorf(tapline.EINVALID, "Give ad_id or install_id."))
		return
	}
	if err := es.RequestErasure(r.Context(), req); err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	v := erasureViewOf(req)
	w.Header().Set("Location", v.StatusURL)
	d.writeJSON(w, http.StatusAccepted, v)
}

// apiErasure answers the status of one of the app's erasure requests.
func (d *Dashboard) apiErasure(w http.ResponseWriter, r *http.Request) {
	es, err := d.erasures()
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	app, ok := d.apiApp(w, r)
	if !ok {
		return
	}
	id, err := parseID(chi.URLParam(r, "eid"), "erasure request")
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	req, err := es.Erasure(r.Context(), app.ID, id)
	if err != nil {
		d.writeJSONError(w, r, err)
		return
	}
	d.writeJSON(w, http.StatusOK, erasureViewOf(req))
}

// requester names who asked, for the record: the user's e-mail address,
// or "admin".
func requester(p *principal) string {
	switch {
	case p == nil:
		return "unknown"
	case p.User != nil:
		return p.User.Email
	case p.Admin:
		return "admin"
	}
	return "api"
}
