package soak

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Sample is what the soak measured at one moment.
type Sample struct {
	At      time.Time `json:"at"`
	Elapsed float64   `json:"elapsed_s"` // seconds since the load began

	RSSKB int64 `json:"rss_kb"` // VmRSS of /proc/PID/status
	// RSSAnonKB and RSSFileKB are VmRSS's anonymous and file-backed
	// parts (RssAnon, RssFile of /proc/PID/status).
	RSSAnonKB  int64 `json:"rss_anon_kb"`
	RSSFileKB  int64 `json:"rss_file_kb"`
	Goroutines int   `json:"goroutines"` // go_goroutines of /metrics
	OpenFiles  int   `json:"open_files"` // entries of /proc/PID/fd
	// TableFiles counts the entries of /proc/PID/fd that are pebble table
	// files (*.sst) and Sockets those that are sockets; both are among
	// OpenFiles.
	TableFiles int `json:"table_files"`
	Sockets    int `json:"sockets"`

	// HeapInuse is go_memstats_heap_inuse_bytes (the Go heap's spans in
	// use: live objects, garbage not yet swept and fragmentation), GoSys
	// go_memstats_sys_bytes (all the memory the Go runtime got from the
	// system, heap released back to it included).
	HeapInuse int64 `json:"heap_inuse_bytes"`
	GoSys     int64 `json:"go_sys_bytes"`
	// CacheBytes and MemTableBytes are what pebble reports its block
	// caches and memtables hold, summed over the bus and the raw store
	// (tapline_pebble_block_cache_bytes, tapline_pebble_memtable_bytes);
	// CacheCapacity and MemTableSize their configured sizes, summed
	// likewise (a database keeps up to two memtables of MemTableSize).
	// With cgo pebble allocates both outside the Go heap.
	CacheBytes    int64 `json:"cache_bytes"`
	CacheCapacity int64 `json:"cache_capacity_bytes"`
	MemTableBytes int64 `json:"memtable_bytes"`
	MemTableSize  int64 `json:"memtable_size_bytes"`

	BusBytes int64 `json:"bus_bytes"` // disk blocks under <data-dir>/bus
	RawBytes int64 `json:"raw_bytes"` // disk blocks under <data-dir>/raw
	// FactBytes sums pg_total_relation_size of the fact_* tables,
	// ConversionBytes that of conversions.
	FactBytes       int64 `json:"fact_bytes"`
	ConversionBytes int64 `json:"conversion_bytes"`

	// Published is what the collector put on the bus (hits published and
	// events accepted), Consumed what the matcher processed; LagMessages
	// is the matcher's lag in messages: the
	// tapline_matcher_consumer_lag_messages gauge when the process has
	// it (LagSource "gauge"), else Published - Consumed ("counters").
	// LagSeconds is tapline_matcher_lag_seconds (the age of the last
	// message processed).
	Published   float64 `json:"published"`
	Consumed    float64 `json:"consumed"`
	LagMessages float64 `json:"lag_messages"`
	LagSource   string  `json:"lag_source"`
	LagSeconds  float64 `json:"lag_seconds"`

	// Sent and Failed count the load's HTTP requests so far (SDK
	// retries and taps' client-hint retries included; failed: no response
	// or a 5xx); Scheduled is how many actions the steady rate had due by
	// now. Sent well below Scheduled means the
	// machine could not carry the rate.
	Sent      int64 `json:"sent"`
	Failed    int64 `json:"failed"`
	Scheduled int64 `json:"scheduled"`

	// PastRetention is how many records had been published by the last
	// sample at least the app's retention before this one: the records
	// the raw store's expiry should have hidden (a bound, for the plot).
	PastRetention float64 `json:"past_retention"`
	// The expiry probe: installations sent longer ago than the retention
	// plus one expiry pass (old) and lately (young), looked up through the
	// SDK's timeline API; Visible counts those whose raw events it still
	// returned.
	OldProbed  int `json:"old_probed"`
	OldVisible int `json:"old_visible"`
	NewProbed  int `json:"new_probed"`
	NewVisible int `json:"new_visible"`
}

// csvHeader names the CSV columns, in record's order.
var csvHeader = []string{"at", "elapsed_s", "rss_kb", "goroutines", "open_files", "bus_bytes", "raw_bytes",
	"fact_bytes", "conversion_bytes", "published", "consumed", "lag_messages", "lag_source", "lag_seconds",
	"sent", "failed", "scheduled", "past_retention", "old_probed", "old_visible", "new_probed", "new_visible",
	"table_files", "sockets", "heap_inuse_bytes", "go_sys_bytes", "cache_bytes", "cache_capacity_bytes",
	"memtable_bytes", "memtable_size_bytes", "rss_anon_kb", "rss_file_kb"}

// oldColumns is how many of csvHeader's columns the soak's first CSV
// files had (before the memory and descriptor split); ReadCSV reads a
// file of at least those (an earlier soak's) with its missing columns
// zero.
const oldColumns = 22

func (s Sample) record() []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	return []string{s.At.UTC().Format(time.RFC3339), f(s.Elapsed), i(s.RSSKB), i(int64(s.Goroutines)), i(int64(s.OpenFiles)),
		i(s.BusBytes), i(s.RawBytes), i(s.FactBytes), i(s.ConversionBytes), f(s.Published), f(s.Consumed),
		f(s.LagMessages), s.LagSource, f(s.LagSeconds), i(s.Sent), i(s.Failed), i(s.Scheduled), f(s.PastRetention),
		i(int64(s.OldProbed)), i(int64(s.OldVisible)), i(int64(s.NewProbed)), i(int64(s.NewVisible)),
		i(int64(s.TableFiles)), i(int64(s.Sockets)), i(s.HeapInuse), i(s.GoSys), i(s.CacheBytes), i(s.CacheCapacity),
		i(s.MemTableBytes), i(s.MemTableSize), i(s.RSSAnonKB), i(s.RSSFileKB)}
}

// CSVWriter writes samples as CSV rows, flushing each.
type CSVWriter struct {
	w *csv.Writer
}

// NewCSVWriter writes the header to w and returns a writer of samples.
func NewCSVWriter(w io.Writer) (*CSVWriter, error) {
	c := &CSVWriter{w: csv.NewWriter(w)}
	if err := c.w.Write(csvHeader); err != nil {
		return nil, fmt.Errorf("write csv header: %w", err)
	}
	c.w.Flush()
	return c, c.w.Error()
}

// Write writes one sample and flushes it.
func (c *CSVWriter) Write(s Sample) error {
	if err := c.w.Write(s.record()); err != nil {
		return fmt.Errorf("write sample: %w", err)
	}
	c.w.Flush()
	return c.w.Error()
}

// ReadCSV reads the samples a CSVWriter wrote, or an earlier soak's CSV
// file, whose header is the first columns of today's (at least 22); the
// columns it lacks read as zero.
func ReadCSV(r io.Reader) ([]Sample, error) {
	cr := csv.NewReader(r)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("read samples: no header")
	}
	cols := len(rows[0])
	if cols < oldColumns || cols > len(csvHeader) || strings.Join(rows[0], ",") != strings.Join(csvHeader[:cols], ",") {
		return nil, fmt.Errorf("read samples: the first row is not the soak's header")
	}
	var out []Sample
	for n, r := range rows[1:] {
		if len(r) != cols {
			return nil, fmt.Errorf("read samples: row %d has %d fields, want %d", n+2, len(r), cols)
		}
		var s Sample
		var errs []error
		i := func(k int) int64 {
			if k >= cols {
				return 0 // an earlier soak's file
			}
			v, err := strconv.ParseInt(r[k], 10, 64)
			errs = append(errs, err)
			return v
		}
		f := func(k int) float64 {
			v, err := strconv.ParseFloat(r[k], 64)
			errs = append(errs, err)
			return v
		}
		at, err := time.Parse(time.RFC3339, r[0])
		errs = append(errs, err)
		s.At, s.Elapsed, s.RSSKB, s.Goroutines, s.OpenFiles = at, f(1), i(2), int(i(3)), int(i(4))
		s.BusBytes, s.RawBytes, s.FactBytes, s.ConversionBytes = i(5), i(6), i(7), i(8)
		s.Published, s.Consumed, s.LagMessages, s.LagSource, s.LagSeconds = f(9), f(10), f(11), r[12], f(13)
		s.Sent, s.Failed, s.Scheduled, s.PastRetention = i(14), i(15), i(16), f(17)
		s.OldProbed, s.OldVisible, s.NewProbed, s.NewVisible = int(i(18)), int(i(19)), int(i(20)), int(i(21))
		s.TableFiles, s.Sockets, s.HeapInuse, s.GoSys = int(i(22)), int(i(23)), i(24), i(25)
		s.CacheBytes, s.CacheCapacity, s.MemTableBytes, s.MemTableSize = i(26), i(27), i(28), i(29)
		s.RSSAnonKB, s.RSSFileKB = i(30), i(31)
		for _, e := range errs {
			if e != nil {
				return nil, fmt.Errorf("read samples: row %d: %w", n+2, e)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// procRSS returns VmRSS of pid and its anonymous and file-backed parts
// (RssAnon, RssFile), in KiB.
func procRSS(pid int) (rss, anon, file int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS:": &rss, "RssAnon:": &anon, "RssFile:": &file}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), "\t")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("parse %s %q: %w", name, v, err)
		}
		*dst = n
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("read rss: %w", err)
	}
	if found != len(fields) {
		return 0, 0, 0, fmt.Errorf("no VmRSS, RssAnon or RssFile in /proc/%d/status", pid)
	}
	return rss, anon, file, nil
}

// openFiles counts the entries of /proc/PID/fd: all of them, those
// linking to a pebble table file (*.sst) and the sockets.
func openFiles(pid int) (all, tables, sockets int, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	es, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count open files: %w", err)
	}
	for _, e := range es {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			if os.IsNotExist(err) {
				continue // closed between listing and reading
			}
			return 0, 0, 0, fmt.Errorf("count open files: %w", err)
		}
		all++
		switch {
		case strings.HasSuffix(strings.TrimSuffix(target, " (deleted)"), ".sst"):
			tables++
		case strings.HasPrefix(target, "socket:"):
			sockets++
		}
	}
	return all, tables, sockets, nil
}

// diskUsage sums the disk blocks of the files under dir, as du does.
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // pebble removed it between listing and stat
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disk usage of %s: %w", dir, err)
	}
	return total, nil
}

// metrics is one scrape of a Prometheus text exposition: every series'
// value summed by metric name (labels dropped).
type metrics map[string]float64

// scrape reads url's /metrics.
func scrape(ctx context.Context, client *http.Client, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics sums each metric's series of a Prometheus text exposition.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				return nil, fmt.Errorf("parse metrics: unterminated labels in %q", line)
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("parse metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("parse metrics: value of %q: %w", line, err)
		}
		if !math.IsNaN(v) {
			m[name] += v
		}
	}
	return m, sc.Err()
}

// pgSizes returns pg_total_relation_size summed over the fact tables
// (fact_*, their partitions included) and over conversions.
func pgSizes(ctx context.Context, pool *pgxpool.Pool) (facts, conversions int64, err error) {
	err = pool.QueryRow(ctx, `
SELECT coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname LIKE 'fact\_%'), 0)::bigint,
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = 'conversions' OR c.relname LIKE 'conversions\_%'), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = current_schema()`).Scan(&facts, &conversions)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres table sizes: %w", err)
	}
	return facts, conversions, nil
}
