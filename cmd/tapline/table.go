package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// table writes aligned columns: text on the left, numbers (columns named
// in right) on the right, two spaces apart.
type table struct {
	head  []string
	right map[int]bool
	rows  [][]string
}

func newTable(head ...string) *table { return &table{head: head, right: map[int]bool{}} }

// alignRight right-aligns the columns at these indexes.
func (t *table) alignRight(cols ...int) *table {
	for _, c := range cols {
		t.right[c] = true
	}
	return t
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], utf8.RuneCountInString(c))
			}
		}
	}
	for _, r := range append([][]string{t.head}, t.rows...) {
		var b strings.Builder
		for i := range width {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if t.right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string { return english.Sprintf("%d", n) }

// english formats numbers the way the tables print them.
var english = message.NewPrinter(language.English)

// percent writes a ratio 0..1 as a percentage with one decimal.
func percent(r float64) string { return strconv.FormatFloat(100*r, 'f', 1, 64) + "%" }

// seconds writes a time between steps briefly: 45s, 12.5m, 3.2h, 2.1d.
func seconds(p *float64) string {
	if p == nil {
		return "-"
	}
	s := *p
	switch {
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	case s < 3600:
		return fmt.Sprintf("%.1fm", s/60)
	case s < 86400:
		return fmt.Sprintf("%.1fh", s/3600)
	}
	return fmt.Sprintf("%.1fd", s/86400)
}

// eta writes a remaining time rounded to the second ("35s", "2m10s").
func eta(secs float64) string {
	if math.IsInf(secs, 0) || math.IsNaN(secs) || secs < 0 {
		return "unknown"
	}
	return (time.Duration(secs) * time.Second).Round(time.Second).String()
}
