package soak

import (
	"fmt"
	"io"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// panel is one small plot of the figure: one or more series over time.
type panel struct {
	title, unit string
	lines       []line
}

type line struct {
	name string
	y    func(Sample) float64
}

func panels() []panel {
	mib := func(f func(Sample) int64) func(Sample) float64 {
		return func(s Sample) float64 { return float64(f(s)) / (1 << 20) }
	}
	return []panel{
		{"memory", "MiB", []line{
			{"VmRSS", func(s Sample) float64 { return float64(s.RSSKB) / 1024 }},
			{"Go sys", mib(func(s Sample) int64 { return s.GoSys })},
			{"Go heap in use", mib(func(s Sample) int64 { return s.HeapInuse })},
			{"pebble caches", mib(func(s Sample) int64 { return s.CacheBytes })},
			{"pebble memtables", mib(func(s Sample) int64 { return s.MemTableBytes })},
			{"outside Go and pebble", mib(func(s Sample) int64 { return s.RSSKB<<10 - s.GoSys - s.CacheBytes - s.MemTableBytes })}}},
		{"goroutines", "count", []line{{"go_goroutines", func(s Sample) float64 { return float64(s.Goroutines) }}}},
		{"open files", "count", []line{
			{"all", func(s Sample) float64 { return float64(s.OpenFiles) }},
			{"pebble tables", func(s Sample) float64 { return float64(s.TableFiles) }},
			{"sockets", func(s Sample) float64 { return float64(s.Sockets) }}}},
		{"pebble on disk", "MiB", []line{
			{"bus", mib(func(s Sample) int64 { return s.BusBytes })},
			{"raw store", mib(func(s Sample) int64 { return s.RawBytes })}}},
		{"PostgreSQL tables", "MiB", []line{
			{"fact_*", mib(func(s Sample) int64 { return s.FactBytes })},
			{"conversions", mib(func(s Sample) int64 { return s.ConversionBytes })}}},
		{"matcher lag", "messages", []line{{"behind the bus", func(s Sample) float64 { return s.LagMessages }}}},
		{"records", "millions", []line{
			{"published", func(s Sample) float64 { return s.Published / 1e6 }},
			{"past retention", func(s Sample) float64 { return s.PastRetention / 1e6 }}}},
		{"expiry probe", "installs with raw rows", []line{
			{"old (want 0)", func(s Sample) float64 { return float64(s.OldVisible) }},
			{"old probed", func(s Sample) float64 { return float64(s.OldProbed) }},
			{"young", func(s Sample) float64 { return float64(s.NewVisible) }}}},
	}
}

// Plot renders the samples as small multiples, one panel a quantity with
// minutes since the start on x, two panels a row, as a PNG to w.
func Plot(w io.Writer, samples []Sample, title string) error {
	ps := panels()
	const cols = 2
	rows := (len(ps) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range ps {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "minutes"
		p.Y.Label.Text = pn.unit
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		var args []any
		for _, ln := range pn.lines {
			xy := make(plotter.XYs, len(samples))
			for j, s := range samples {
				xy[j].X, xy[j].Y = s.Elapsed/60, ln.y(s)
			}
			args = append(args, ln.name, xy)
		}
		if err := plotutil.AddLines(p, args...); err != nil {
			return fmt.Errorf("plot %s: %w", pn.title, err)
		}
		if len(pn.lines) > 1 {
			p.Legend.Top, p.Legend.Left = true, true
		}
		grid[i/cols][i%cols] = p
	}
	const width, rowHeight = 24 * vg.Centimeter, 6 * vg.Centimeter
	img := vgimg.New(width, rowHeight*vg.Length(rows)+vg.Centimeter)
	dc := draw.New(img)
	head := plot.New()
	head.Title.Text = title
	head.HideAxes()
	head.Draw(draw.Crop(dc, 0, 0, vg.Length(rows)*rowHeight, 0))
	body := draw.Crop(dc, 0, 0, 0, -vg.Centimeter)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(grid, tiles, body)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}

// Summary returns a table of each plotted quantity's value at the first
// and the last sample and its peak, in the plot's units.
func Summary(samples []Sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-52s %12s %12s %12s\n", "quantity", "start", "end", "peak")
	if len(samples) == 0 {
		return b.String()
	}
	for _, pn := range panels() {
		for _, ln := range pn.lines {
			first, last := ln.y(samples[0]), ln.y(samples[len(samples)-1])
			peak := first
			for _, s := range samples {
				peak = max(peak, ln.y(s))
			}
			fmt.Fprintf(&b, "%-52s %12.4g %12.4g %12.4g\n", pn.title+": "+ln.name+" ("+pn.unit+")", first, last, peak)
		}
	}
	return b.String()
}
