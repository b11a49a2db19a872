package funnels

import (
	"cmp"
	"slices"
	"time"

	"tapline"
)

// MaxBreakdownValues bounds the breakdown values Results lists; the rest
// are summed into one row named OtherValues.
const (
	MaxBreakdownValues = 50
	OtherValues        = "(other)"
)

// Results turns a version's fact rows into what the dashboard shows: step
// totals with conversion, drop-off and times between steps, the
// breakdown by value (largest first) and the days. days lists every day of
// the range, so days without entries show as zeros.
func Results(f *tapline.Funnel, rows []tapline.FunnelRow, days []string) *tapline.FunnelResults {
	n := len(f.Steps)
	res := &tapline.FunnelResults{Funnel: f, Steps: make([]tapline.FunnelStepResult, n)}
	hist := make([][]int64, n)
	bsums := make([][]int64, n) // seconds per step and bucket
	sums := make([]int64, n)
	byValue := map[string][]int64{}
	byDay := map[string][]int64{}
	for i := range n {
		res.Steps[i] = tapline.FunnelStepResult{Step: i + 1, Title: f.Steps[i].Title()}
		hist[i] = make([]int64, len(tapline.FunnelBuckets))
		bsums[i] = make([]int64, len(tapline.FunnelBuckets))
	}
	for _, r := range rows {
		s := r.Step - 1
		if s < 0 || s >= n || r.Bucket < 0 || r.Bucket >= len(tapline.FunnelBuckets) {
			continue
		}
		res.Steps[s].Count += r.Count
		hist[s][r.Bucket] += r.Count
		bsums[s][r.Bucket] += r.Sum
		sums[s] += r.Sum
		if byValue[r.Breakdown] == nil {
			byValue[r.Breakdown] = make([]int64, n)
		}
		byValue[r.Breakdown][s] += r.Count
		if byDay[r.Day] == nil {
			byDay[r.Day] = make([]int64, n)
		}
		byDay[r.Day][s] += r.Count
	}
	for i := range res.Steps {
		st := &res.Steps[i]
		if first := res.Steps[0].Count; first > 0 {
			st.TotalConversion = float64(st.Count) / float64(first)
		}
		if i == 0 {
			if st.Count > 0 {
				st.Conversion = 1
			}
			continue
		}
		prev := res.Steps[i-1].Count
		st.DropOff = prev - st.Count
		if prev > 0 {
			st.Conversion = float64(st.Count) / float64(prev)
		}
		st.Histogram = hist[i]
		if st.Count > 0 {
			med, p90 := Quantile(hist[i], bsums[i], 0.5), Quantile(hist[i], bsums[i], 0.9)
			mean := float64(sums[i]) / float64(st.Count)
			st.MedianSeconds, st.P90Seconds, st.MeanSeconds = &med, &p90, &mean
		}
	}
	if f.Breakdown.Kind != tapline.BreakdownNone {
		res.Breakdown = breakdownRows(byValue, n)
	}
	for _, d := range days {
		steps := byDay[d]
		if steps == nil {
			steps = make([]int64, n)
		}
		res.Days = append(res.Days, tapline.FunnelDay{Day: d, Steps: steps})
	}
	return res
}

func breakdownRows(byValue map[string][]int64, n int) []tapline.FunnelBreakdownRow {
	rows := make([]tapline.FunnelBreakdownRow, 0, len(byValue))
	for v, steps := range byValue {
		rows = append(rows, tapline.FunnelBreakdownRow{Value: v, Steps: steps})
	}
	slices.SortFunc(rows, func(a, b tapline.FunnelBreakdownRow) int {
		return cmp.Or(cmp.Compare(b.Steps[0], a.Steps[0]), cmp.Compare(a.Value, b.Value))
	})
	if len(rows) > MaxBreakdownValues {
		other := tapline.FunnelBreakdownRow{Value: OtherValues, Steps: make([]int64, n)}
		for _, r := range rows[MaxBreakdownValues-1:] {
			for i, c := range r.Steps {
				other.Steps[i] += c
			}
		}
		rows = append(rows[:MaxBreakdownValues-1], other)
	}
	for i := range rows {
		if first := rows[i].Steps[0]; first > 0 {
			rows[i].Conversion = float64(rows[i].Steps[n-1]) / float64(first)
		}
	}
	return rows
}

// Quantile estimates the q-quantile (0 < q ≤ 1) of times from their bucket
// histogram and the sum of the times in each bucket: within the bucket
// holding it, the times are taken to rise linearly from the bucket's lower
// bound to its mean at its middle rank and on to its upper bound (the
// last bucket, which has none, stops at its mean). A bucket of one time
// thus answers that time for its median. 0 without counts.
func Quantile(hist, sums []int64, q float64) float64 {
	var total int64
	for _, c := range hist {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, c := range hist {
		if c == 0 || float64(seen+c) < rank {
			seen += c
			continue
		}
		lo := float64(tapline.FunnelBuckets[i])
		mean := max(float64(sums[i])/float64(c), lo)
		hi := mean // the last bucket
		if i+1 < len(tapline.FunnelBuckets) {
			hi = float64(tapline.FunnelBuckets[i+1])
			mean = min(mean, hi)
		}
		f := (rank - float64(seen)) / float64(c) // 0 to 1 within the bucket
		if f <= 0.5 {
			return lo + (mean-lo)*2*f
		}
		return mean + (hi-mean)*(2*f-1)
	}
	return float64(tapline.FunnelBuckets[len(tapline.FunnelBuckets)-1])
}

// Days returns the YYYY-MM-DD days from the midnight of from up to the
// midnight at or after to, in loc, and those midnights; at most maxDays.
func Days(from, to time.Time, loc *time.Location, maxDays int) ([]string, time.Time, time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	midnight := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	lo, hi := midnight(from), midnight(to)
	if hi.Before(to) {
		hi = hi.AddDate(0, 0, 1)
	}
	if !hi.After(lo) {
		return nil, lo, hi, tapline.Errorf(tapline.EINVALID, "to: must be after from")
	}
	var days []string
	for d := lo; d.Before(hi); d = d.AddDate(0, 0, 1) {
		if len(days) == maxDays {
			return nil, lo, hi, tapline.Errorf(tapline.EINVALID, "to: at most %d days", maxDays)
		}
		days = append(days, d.Format(time.DateOnly))
	}
	return days, lo, hi, nil
}
