package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"tapline/export"
)

// exportStateEvery is how often a download to a file records how far it
// got, for a rerun to resume from.
const exportStateEvery = 2 * time.Second

// export downloads an app's conversions, events or hits from the
// dashboard's export API into a file, resuming after the last complete
// row when the connection drops. The rows go to FILE.part, and what of it
// is complete, with the cursor after it, to FILE.part.json every few
// seconds; FILE appears, renamed, once the export is complete. Rerun
// after a crash, the same command resumes from FILE.part.json.
func (m *Main) export(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tapline export", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	app := fs.Int64("app", 0, "id of the app (required)")
	kind := fs.String("kind", "", "what to export: conversions, events or hits (required)")
	from := fs.String("from", "", "first time or day (RFC 3339, or YYYY-MM-DD in UTC); default: hits and events from the start of the app's retention, conversions from the first")
	to := fs.String("to", "", "end: an RFC 3339 time (excluded) or a YYYY-MM-DD day (included); default: everything")
	format := fs.String("format", "", "csv or ndjson (default: ndjson for a FILE ending in .ndjson or .jsonl, else csv)")
	out := fs.String("o", "", "file to write (required); - writes to standard output")
	base := fs.String("url", envOr("TAPLINE_DASHBOARD_URL", "http://127.0.0.1:8081"), "the dashboard's base URL (env TAPLINE_DASHBOARD_URL)")
	token := fs.String("token", os.Getenv("TAPLINE_API_TOKEN"), "an API token of the app's account, tl_… (env TAPLINE_API_TOKEN)")
	retries := fs.Int("retries", export.DefaultMaxRetries, "attempts in a row that may fail without a row before giving up")
	wait := fs.Duration("retry-wait", export.DefaultMinBackoff, "the first wait before a retry; it doubles up to 30s")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *app <= 0:
		return errors.New("-app: required")
	case *kind != export.KindConversions && *kind != export.KindEvents && *kind != export.KindHits:
		return fmt.Errorf("-kind: want conversions, events or hits, not %q", *kind)
	case *out == "":
		return errors.New("-o: required (- for standard output)")
	case *token == "":
		return errors.New("-token: required (or set TAPLINE_API_TOKEN): an API token from the account page")
	}
	if *format == "" {
		*format = export.FormatCSV
		if ext := strings.ToLower(filepath.Ext(*out)); ext == ".ndjson" || ext == ".jsonl" {
			*format = export.FormatNDJSON
		}
	}
	if *format != export.FormatCSV && *format != export.FormatNDJSON {
		return fmt.Errorf("-format: want csv or ndjson, not %q", *format)
	}
	req := export.Request{AppID: *app, Kind: *kind, Format: *format, From: *from, To: *to}

	var dst *exportFile
	var err error
	if *out == "-" {
		dst = &exportFile{w: bufio.NewWriterSize(m.Stdout, 64<<10)}
	} else if dst, err = openExportFile(*out, exportKey(*base, req)); err != nil {
		return err
	}
	if dst.state.Rows > 0 {
		fmt.Fprintf(m.Stderr, "export: resuming %s after %s rows\n", *out, thousands(dst.state.Rows))
	}
	req.Cursor = dst.state.Cursor
	dst.progress = newExportProgress(m, *kind, dst.state.Rows)
	// Connections of its own: a retry never reuses one of another run.
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	c := &export.Client{BaseURL: *base, Token: *token, HTTP: hc, MaxRetries: *retries, MinBackoff: *wait,
		OnRetry: func(err error, wait time.Duration) {
			dst.progress.note(fmt.Sprintf("export: %v; resuming after %s rows in %s", err, thousands(dst.state.Rows), wait.Round(10*time.Millisecond)))
		}}
	_, err = c.Download(ctx, req, dst)
	dst.progress.finish()
	if err != nil {
		if serr := dst.save(); serr == nil && dst.part != "" {
			return fmt.Errorf("export stopped after %s rows (rerun the same command to resume): %w", thousands(dst.state.Rows), err)
		}
		return fmt.Errorf("export stopped after %s rows: %w", thousands(dst.state.Rows), err)
	}
	if err := dst.finish(); err != nil {
		return err
	}
	where := *out
	if *out == "-" {
		where = "standard output"
	}
	fmt.Fprintf(m.Stderr, "export: %s %s rows to %s\n", thousands(dst.state.Rows), *kind, where)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// exportKey names an export for its state file: a rerun resumes only the
// same export.
func exportKey(base string, req export.Request) string {
	return fmt.Sprintf("%s app=%d kind=%s format=%s from=%s to=%s", strings.TrimRight(base, "/"), req.AppID, req.Kind, req.Format, req.From, req.To)
}

// exportState is how far a download got: the first Offset bytes of
// FILE.part hold its header and Rows complete rows, the last of which
// Cursor continues after.
type exportState struct {
	Export string `json:"export"`
	Offset int64  `json:"offset"`
	Rows   int64  `json:"rows"`
	Cursor string `json:"cursor,omitempty"`
	Header bool   `json:"header,omitempty"`
}

// exportFile is the sink of a download: FILE.part and its state, or
// standard output (part "").
type exportFile struct {
	path, part string
	f          *os.File
	w          *bufio.Writer
	state      exportState
	saved      time.Time
	progress   *exportProgress
}

// openExportFile opens path's FILE.part for the export key, resuming what
// its state file records of the same export, or starting it afresh.
func openExportFile(path, key string) (*exportFile, error) {
	d := &exportFile{path: path, part: path + ".part", state: exportState{Export: key}, saved: time.Now()}
	var st exportState
	if b, err := os.ReadFile(d.part + ".json"); err == nil && json.Unmarshal(b, &st) == nil && st.Export == key {
		if fi, err := os.Stat(d.part); err == nil && fi.Size() >= st.Offset {
			d.state = st
		}
	}
	f, err := os.OpenFile(d.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.part, err)
	}
	// Whatever follows the recorded rows was written after the state was:
	// those rows come again.
	if err := f.Truncate(d.state.Offset); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate %s: %w", d.part, err)
	}
	if _, err := f.Seek(d.state.Offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s: %w", d.part, err)
	}
	d.f, d.w = f, bufio.NewWriterSize(f, 256<<10)
	return d, nil
}

// Header writes a CSV header line once.
func (d *exportFile) Header(line []byte) error {
	if d.state.Header {
		return nil
	}
	d.state.Header = true
	return d.write(line)
}

// Row writes one complete row and remembers the cursor after it.
func (d *exportFile) Row(line []byte, cursor string) error {
	if err := d.write(line); err != nil {
		return err
	}
	d.state.Rows++
	d.state.Cursor = cursor
	d.progress.rows(d.state.Rows)
	if d.part != "" && time.Since(d.saved) >= exportStateEvery {
		return d.save()
	}
	return nil
}

func (d *exportFile) write(line []byte) error {
	n, err := d.w.Write(line)
	d.state.Offset += int64(n)
	if err != nil {
		return fmt.Errorf("write %s: %w", d.part, err)
	}
	return nil
}

// save makes the rows so far durable, then records them in the state file
// (written whole and renamed into place).
func (d *exportFile) save() error {
	d.saved = time.Now()
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", d.part, err)
	}
	if d.part == "" {
		return nil
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.part, err)
	}
	b, _ := json.Marshal(d.state)
	tmp := d.part + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	if err := os.Rename(tmp, d.part+".json"); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return nil
}

// finish makes FILE the complete export and drops the state.
func (d *exportFile) finish() error {
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if d.part == "" {
		return nil
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", d.part, err)
	}
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", d.part, err)
	}
	if err := os.Rename(d.part, d.path); err != nil {
		return fmt.Errorf("rename %s: %w", d.part, err)
	}
	_ = os.Remove(d.part + ".json")
	return nil
}

// exportProgress shows a download's rows: a spinner with the count and
// the rate on a terminal, else a line every ProgressEvery.
type exportProgress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	kind  string
	every time.Duration
	start time.Time
	first int64 // rows before this run
	n     int64
	last  time.Time
}

func newExportProgress(m *Main, kind string, rows int64) *exportProgress {
	p := &exportProgress{w: m.Stderr, kind: kind, every: m.ProgressEvery, start: time.Now(), first: rows, n: rows, last: time.Now()}
	if p.every == 0 {
		p.every = 5 * time.Second
	}
	if f, ok := m.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(m.Stderr),
			progressbar.OptionSetDescription(fmt.Sprintf("export %s: %s rows", kind, thousands(rows))),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionUseANSICodes(true),
		)
		_ = p.bar.Set64(rows)
	}
	return p
}

// rows shows n rows written.
func (p *exportProgress) rows(n int64) {
	p.n = n
	if p.bar != nil {
		if n%1000 == 0 {
			p.bar.Describe(fmt.Sprintf("export %s: %s rows", p.kind, thousands(n)))
			_ = p.bar.Set64(n)
		}
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		fmt.Fprintf(p.w, "export %s: %s rows, %s rows/s\n", p.kind, thousands(n), thousands(int64(p.rate())))
	}
}

func (p *exportProgress) rate() float64 {
	if s := time.Since(p.start).Seconds(); s > 0 {
		return float64(p.n-p.first) / s
	}
	return 0
}

// note shows a line, above the bar.
func (p *exportProgress) note(line string) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	fmt.Fprintln(p.w, line)
}

// finish ends the display.
func (p *exportProgress) finish() {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("export %s: %s rows", p.kind, thousands(p.n)))
		_ = p.bar.Set64(p.n)
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
