package export

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"tapline"
)

// Trailer is the last line of an NDJSON export that ended cleanly. A line
// with a next_cursor member is the trailer; every other line is a row.
type Trailer struct {
	// NextCursor is the cursor after the last row written: the request's
	// cursor when it wrote none.
	NextCursor string `json:"next_cursor"`
	// Complete is true when the export has no rows past NextCursor, false
	// when limit stopped it.
	Complete bool `json:"complete"`
	// Rows counts the rows of this response.
	Rows int64 `json:"rows"`
}

// The HTTP trailers of an export that ended cleanly, in either format.
const (
	TrailerNextCursor = "X-Next-Cursor"
	TrailerComplete   = "X-Export-Complete"
	TrailerRows       = "X-Export-Rows"
)

// flushEvery is how long rows wait in the stream's buffer at most.
const flushEvery = time.Second

// bufferSize is the stream's buffer: rows leave in writes of this size.
const bufferSize = 32 << 10

// Why a stream stopped before its source ended.
var (
	errLimit   = errors.New("export: limit reached")
	errClosing = tapline.Errorf(tapline.EUNAVAILABLE, "The server is shutting down: retry the export in a few seconds.")
)

// stream writes one export's rows to its response.
type stream struct {
	a      *API
	w      http.ResponseWriter
	rc     *http.ResponseController
	q      query
	out    *bufio.Writer
	csv    *csv.Writer
	json   *json.Encoder
	rec    []string
	rows   int64
	last   tapline.RowPos // the last row written
	start  atomic.Bool    // a byte went to the response: its status is sent
	flushd time.Time
}

// Write passes the buffer's bytes on to the response, each write within
// the stall timeout.
func (st *stream) Write(p []byte) (int, error) {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.a.StallTimeout))
	select {
	case <-st.a.closing:
		// Nothing more after Close, whose deadline (now) may have come
		// before this one.
		return 0, errClosing
	default:
	}
	st.start.Store(true)
	return st.w.Write(p)
}

// stream answers q's rows of app. It returns the error that stopped it
// when nothing was sent yet, its headers taken back, for the caller to
// answer; nil when it ended cleanly, when the client went away before
// the first byte, or after cutting the response short.
func (a *API) stream(w http.ResponseWriter, r *http.Request, app *tapline.App, q query) error {
	ctx := r.Context()
	st := &stream{a: a, w: w, rc: http.NewResponseController(w), q: q, flushd: time.Now()}
	// An export outlasts the server's write timeout: each write gets a
	// deadline of its own, StallTimeout away.
	_ = st.rc.SetWriteDeadline(time.Now().Add(a.StallTimeout))
	st.out = bufio.NewWriterSize(st, bufferSize)
	a.mu.Lock()
	a.streams[st] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.streams, st)
		a.mu.Unlock()
	}()

	h := w.Header()
	name := q.name
	if name == "" {
		name = fmt.Sprintf("app-%d-%s", app.ID, q.kind)
	}
	name += "." + q.format
	if q.format == FormatCSV {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		st.csv = csv.NewWriter(st.out)
	} else {
		h.Set("Content-Type", "application/x-ndjson")
		st.json = json.NewEncoder(st.out)
		st.json.SetEscapeHTML(false)
	}
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Trailer", TrailerNextCursor+", "+TrailerComplete+", "+TrailerRows)

	var err error
	switch q.kind {
	case KindConversions:
		err = st.conversions(ctx, app)
	case KindHits:
		st.header(header(hitColumns))
		err = a.Raw.ScanHitRows(ctx, app.ID, q.from, q.to, q.after, st.hit)
	case KindEvents:
		st.header(header(eventColumns))
		err = a.Raw.ScanEventRows(ctx, app.ID, q.from, q.to, q.after, st.event)
	}
	complete := err == nil
	if errors.Is(err, errLimit) {
		err = nil
	}
	if err == nil {
		err = st.end(complete)
	}
	if err == nil {
		return nil
	}
	if !st.start.Load() {
		if ctx.Err() != nil {
			return nil // the client is gone
		}
		// Nothing was sent: the caller answers the error instead.
		for _, k := range []string{"Content-Type", "Content-Disposition", "Trailer"} {
			h.Del(k)
		}
		return err
	}
	if ctx.Err() == nil && !errors.Is(err, errClosing) {
		a.Logger.ErrorContext(ctx, "export cut short", "app", app.ID, "kind", q.kind, "rows", st.rows, "err", err)
	}
	// Send the complete rows buffered, then cut the response short, with
	// neither its trailer nor the end of its chunked body: the client
	// sees a dropped connection and resumes after its last complete row.
	if st.out.Flush() == nil {
		_ = st.rc.Flush()
	}
	panic(http.ErrAbortHandler)
}

// header writes a CSV export's header line.
func (st *stream) header(names []string) {
	if st.csv != nil {
		_ = st.csv.Write(names)
	}
}

// next is called before each row: it stops the stream at its limit or at
// Close, and flushes rows that waited long enough.
func (st *stream) next() error {
	if st.q.limit > 0 && st.rows == st.q.limit {
		return errLimit
	}
	select {
	case <-st.a.closing:
		return errClosing
	default:
	}
	if time.Since(st.flushd) >= flushEvery {
		st.flushd = time.Now()
		if err := st.flush(); err != nil {
			return err
		}
	}
	return nil
}

// wrote counts a row written at pos.
func (st *stream) wrote(pos tapline.RowPos) error {
	st.rows++
	st.last = pos
	if st.csv != nil {
		// csv.Writer buffers in st.out, which writes through when full.
		return st.csv.Error()
	}
	return nil
}

// flush sends the buffered rows now.
func (st *stream) flush() error {
	if st.csv != nil {
		st.csv.Flush()
		if err := st.csv.Error(); err != nil {
			return err
		}
	}
	if err := st.out.Flush(); err != nil {
		return err
	}
	if err := st.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (st *stream) hit(h *tapline.Hit) error {
	if err := st.next(); err != nil {
		return err
	}
	exportHit(h)
	if st.csv != nil {
		st.rec = record(hitColumns, &hitRow{Hit: h, campaign: tapline.FactKey{}.WithCampaign(h.Params)}, st.rec)
		_ = st.csv.Write(st.rec)
	} else if err := st.json.Encode(h); err != nil {
		return err
	}
	return st.wrote(tapline.RowPos{Time: h.Time, ID: h.ID})
}

func (st *stream) event(e *tapline.Event) error {
	if err := st.next(); err != nil {
		return err
	}
	exportEvent(e)
	if st.csv != nil {
		st.rec = record(eventColumns, e, st.rec)
		_ = st.csv.Write(st.rec)
	} else if err := st.json.Encode(e); err != nil {
		return err
	}
	return st.wrote(tapline.RowPos{Time: e.Time, ID: e.ID})
}

// conversions writes the app's conversions of the range from the
// conversions table, a page at a time, newest install first.
func (st *stream) conversions(ctx context.Context, app *tapline.App) error {
	var names map[int64]string
	if st.csv != nil {
		links, err := st.a.Accounts.LinksByApp(ctx, app.ID)
		if err != nil {
			return err
		}
		names = make(map[int64]string, len(links))
		for _, l := range links {
			names[l.ID] = l.Name
		}
		st.header(header(conversionColumns))
	}
	q := tapline.ConversionQuery{AppID: app.ID, From: st.q.from, To: st.q.to, Limit: tapline.MaxConversionPage}
	if !st.q.after.IsZero() {
		q.After = tapline.ConversionCursor(st.q.after.Time, st.q.after.ID)
	}
	for {
		page, err := st.a.Conversions.Conversions(ctx, q)
		if err != nil {
			return err
		}
		for _, c := range page.Conversions {
			if err := st.next(); err != nil {
				return err
			}
			c.InstallTime = c.InstallTime.UTC()
			if st.csv != nil {
				row := convRow{Conversion: c, linkName: names[c.LinkID], campaign: tapline.FactKey{}.WithCampaign(c.HitParams)}
				if c.LinkID != 0 && row.linkName == "" {
					row.linkName = "link " + strconv.FormatInt(c.LinkID, 10)
				}
				st.rec = record(conversionColumns, &row, st.rec)
				_ = st.csv.Write(st.rec)
			} else if err := st.json.Encode(c); err != nil {
				return err
			}
			if err := st.wrote(tapline.RowPos{Time: c.InstallTime, ID: c.ID}); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.After = page.Next
	}
}

// end finishes a stream that wrote every row it was to: the NDJSON
// trailer line, the buffered rows, then the HTTP trailers.
func (st *stream) end(complete bool) error {
	next := st.q.cursor
	if st.rows > 0 {
		next = Cursor(st.last.Time, st.last.ID)
	}
	if st.json != nil {
		if err := st.json.Encode(Trailer{NextCursor: next, Complete: complete, Rows: st.rows}); err != nil {
			return err
		}
	}
	if err := st.flush(); err != nil {
		return err
	}
	h := st.w.Header()
	h.Set(TrailerNextCursor, next)
	h.Set(TrailerComplete, strconv.FormatBool(complete))
	h.Set(TrailerRows, strconv.FormatInt(st.rows, 10))
	return nil
}

var _ io.Writer = (*stream)(nil)
