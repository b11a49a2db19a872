package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tapline/internal/httperr"
)

// Defaults of a Client.
const (
	DefaultMaxRetries = 8
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// Client downloads exports over the HTTP API, resuming after the last
// complete row whenever a response is cut short.
type Client struct {
	// BaseURL is the dashboard's, e.g. http://127.0.0.1:8081; Token an
	// API token of the app's account (tl_…).
	BaseURL string
	Token   string
	// HTTP sends the requests; nil means a client of its own, without an
	// overall timeout (an export takes as long as it takes).
	HTTP *http.Client
	// MaxRetries is how many attempts in a row may fail without a single
	// row before Download gives up (DefaultMaxRetries when 0); they wait
	// from MinBackoff, doubling, to MaxBackoff, with jitter, or as long as
	// a 503's Retry-After says.
	MaxRetries             int
	MinBackoff, MaxBackoff time.Duration
	// OnRetry, when set, hears of each failed attempt before its wait.
	OnRetry func(err error, wait time.Duration)
}

// Request names an export.
type Request struct {
	AppID int64
	// Kind is KindConversions, KindEvents or KindHits; Format FormatCSV
	// or FormatNDJSON ("": NDJSON).
	Kind, Format string
	// From and To are as the API takes them: RFC 3339 times or
	// YYYY-MM-DD days; "" for the default.
	From, To string
	// Cursor, when set, starts after the row it names.
	Cursor string
}

// Sink takes a download's rows as they come, each complete, in order.
type Sink interface {
	// Header takes a CSV export's header line, at the start of every
	// response (the same each time); never called for NDJSON.
	Header(line []byte) error
	// Row takes one row as its bytes in the format (an NDJSON line, a CSV
	// record, each ending in a newline) and the cursor after it. Header
	// and Row must not keep line after they return.
	Row(line []byte, cursor string) error
}

// Download streams the export req names into sink until it is complete,
// resuming after the last row sink took when a response is cut short. It
// returns the cursor after that row. A refusal (4xx) ends it at once with
// the server's message, as does an error from sink.
func (c *Client) Download(ctx context.Context, req Request, sink Sink) (cursor string, err error) {
	if req.Format == "" {
		req.Format = FormatNDJSON
	}
	if req.Format != FormatNDJSON && req.Format != FormatCSV {
		return "", fmt.Errorf("format %q is not csv or ndjson", req.Format)
	}
	cursor = req.Cursor
	maxRetries, minWait, maxWait := c.MaxRetries, c.MinBackoff, c.MaxBackoff
	if maxRetries == 0 {
		maxRetries = DefaultMaxRetries
	}
	if minWait <= 0 {
		minWait = DefaultMinBackoff
	}
	if maxWait <= 0 {
		maxWait = DefaultMaxBackoff
	}
	failures := 0
	for {
		a := attempt{req: req, cursor: cursor, sink: sink}
		err := c.attempt(ctx, &a)
		cursor = a.cursor
		switch {
		case err == nil && a.complete:
			return cursor, nil
		case err == nil && a.rows > 0:
			failures = 0
			continue // stopped at a limit: on from the cursor
		case err == nil:
			err = errors.New("the server stopped without a row and without the export's end")
		case ctx.Err() != nil:
			return cursor, ctx.Err()
		case a.permanent:
			return cursor, err
		}
		if a.rows > 0 {
			failures = 0
		}
		if failures++; failures > maxRetries {
			return cursor, fmt.Errorf("giving up after %d failed attempts: %w", failures, err)
		}
		wait := backoff(failures, minWait, maxWait)
		if a.retryAfter > wait {
			wait = min(a.retryAfter, maxWait)
		}
		if c.OnRetry != nil {
			c.OnRetry(err, wait)
		}
		select {
		case <-ctx.Done():
			return cursor, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// backoff returns the wait before retry n (1 on): min doubling up to max,
// less up to a quarter at random.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// attempt is one request of a download and what came of it.
type attempt struct {
	req        Request
	cursor     string // after the last row taken
	sink       Sink
	rows       int64
	complete   bool
	permanent  bool // an error no retry mends
	retryAfter time.Duration
}

// url returns the request's URL from cursor on.
func (c *Client) url(req Request, cursor string) string {
	v := url.Values{"format": {req.Format}}
	if req.From != "" {
		v.Set("from", req.From)
	}
	if req.To != "" {
		v.Set("to", req.To)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	return fmt.Sprintf("%s/api/v1/apps/%d/export/%s?%s", strings.TrimRight(c.BaseURL, "/"), req.AppID, url.PathEscape(req.Kind), v.Encode())
}

func (c *Client) attempt(ctx context.Context, a *attempt) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(a.req, a.cursor), nil)
	if err != nil {
		a.permanent = true
		return err
	}
	hreq.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a.refused(resp)
	}
	if a.req.Format == FormatCSV {
		return a.readCSV(resp)
	}
	return a.readNDJSON(resp.Body)
}

// refused reads an error answer: a 4xx ends the download (but 408 and
// 429), anything else is retried, after its Retry-After.
func (a *attempt) refused(resp *http.Response) error {
	var body httperr.Body
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		a.retryAfter = time.Duration(s) * time.Second
	}
	a.permanent = resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests
	return fmt.Errorf("%s: %s", resp.Status, msg)
}

// take passes a complete row on to the sink.
func (a *attempt) take(line []byte, cursor string) error {
	if err := a.sink.Row(line, cursor); err != nil {
		a.permanent = true
		return err
	}
	a.rows++
	a.cursor = cursor
	return nil
}

// errCut is a response that ended without its end: the connection dropped
// or the server cut it short.
var errCut = errors.New("the export's response was cut short")

// ndjsonRow is what a client reads of an NDJSON line: a row's id and time
// (install_time for a conversion), or the trailer.
type ndjsonRow struct {
	ID          string  `json:"id"`
	Time        string  `json:"time"`
	InstallTime string  `json:"install_time"`
	NextCursor  *string `json:"next_cursor"`
	Complete    bool    `json:"complete"`
}

func (a *attempt) readNDJSON(body io.Reader) error {
	br := bufio.NewReaderSize(body, 64<<10)
	var long []byte // a line longer than br's buffer, gathered
	for {
		chunk, err := br.ReadSlice('\n')
		line := chunk
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			continue
		}
		if long != nil {
			long = append(long, chunk...)
			line, long = long, nil
		}
		if err != nil {
			// A last line without its newline is not complete.
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: it ended without its trailer line", errCut)
			}
			return fmt.Errorf("%w: %w", errCut, err)
		}
		var row ndjsonRow
		if err := json.Unmarshal(line, &row); err != nil {
			a.permanent = true
			return fmt.Errorf("a line of the export is not JSON: %w", err)
		}
		if row.NextCursor != nil {
			if *row.NextCursor != "" {
				a.cursor = *row.NextCursor
			}
			a.complete = row.Complete
			return nil
		}
		t := row.Time
		if a.req.Kind == KindConversions {
			t = row.InstallTime
		}
		if row.ID == "" || t == "" {
			a.permanent = true
			return fmt.Errorf("a row of the export has no id or time: %.200s", line)
		}
		if err := a.take(line, RowCursor(t, row.ID)); err != nil {
			return err
		}
	}
}

func (a *attempt) readCSV(resp *http.Response) error {
	r := csv.NewReader(bufio.NewReaderSize(resp.Body, 64<<10))
	r.ReuseRecord = true
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	encode := func(rec []string) []byte {
		buf.Reset()
		_ = w.Write(rec)
		w.Flush()
		return buf.Bytes()
	}
	idCol, timeCol := "id", "time"
	if a.req.Kind == KindConversions {
		idCol, timeCol = "conversion_id", "install_time"
	}
	id, at := -1, -1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) && !errors.Is(err, io.ErrUnexpectedEOF) {
				a.permanent = true
				return fmt.Errorf("the export is not CSV: %w", err)
			}
			return fmt.Errorf("%w: %w", errCut, err)
		}
		if id < 0 {
			for i, name := range rec {
				switch name {
				case idCol:
					id = i
				case timeCol:
					at = i
				}
			}
			if id < 0 || at < 0 {
				a.permanent = true
				return fmt.Errorf("the export's CSV header has no %s or %s column", idCol, timeCol)
			}
			if err := a.sink.Header(encode(rec)); err != nil {
				a.permanent = true
				return err
			}
			continue
		}
		if err := a.take(encode(rec), RowCursor(rec[at], rec[id])); err != nil {
			return err
		}
	}
	// The body ended cleanly: the server wrote every row up to its end,
	// and its trailers say whether that is the export's end.
	a.complete = resp.Trailer.Get(TrailerComplete) != "false"
	if next := resp.Trailer.Get(TrailerNextCursor); next != "" && !a.complete {
		a.cursor = next
	}
	return nil
}
