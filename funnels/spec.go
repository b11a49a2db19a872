package funnels

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapline"
)

// The step syntax of "tapline funnels create" and "edit" (docs/funnels.md,
// "CLI"): one -step (or -exclude) flag per step, parts separated by colons.
//
//	tap[:links=ID,ID…][:FILTER…]     the attributed tap; filters read its link's query
//	install[:FILTER…]                the install; filters read the event's parameters
//	event:NAME[:FILTER…]             an SDK event by name
//
//	FILTER  param=value  param!=value  param>N  param>=N  param<N  param<=N
//	        param in v1|v2|…
//
// An -exclude takes an install or event step and two more parts, after=N
// and before=N (default: 1 and the last step): a path is disqualified by
// that event after it reached step N and before it reached step M.
// Spaces around operators are ignored; a backslash takes the next
// character literally ("utm_content=a\:b", "x in a\|b|c").

// specOps maps the operators of the step syntax to filter operators; the
// two-character ones come first so that ">=" is not read as ">".
var specOps = []struct {
	tok string
	op  tapline.FilterOp
}{
	{"!=", tapline.OpNe}, {">=", tapline.OpGte}, {"<=", tapline.OpLte},
	{"=", tapline.OpEq}, {">", tapline.OpGt}, {"<", tapline.OpLt},
}

// specError names the flag at fault: `-step 2 "tap:x": …`.
func specError(flag string, n int, spec, format string, args ...any) error {
	return tapline.Errorf(tapline.EINVALID, "-%s %d %q: %s", flag, n, spec, fmt.Sprintf(format, args...))
}

// splitUnescaped splits s at each sep not preceded by a backslash, keeping
// the escapes in the parts.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescape drops the backslashes that escape the next character.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findOp returns the position and operator of the first unescaped operator
// in a part: one of specOps, or " in " (an "in" between spaces).
func findOp(part string) (at int, tok string, op tapline.FilterOp, ok bool) {
	for i := 0; i < len(part); i++ {
		c := part[i]
		if c == '\\' {
			i++
			continue
		}
		if c == ' ' && strings.HasPrefix(part[i:], " in ") && strings.TrimSpace(part[:i]) != "" {
			return i, " in ", tapline.OpIn, true
		}
		if strings.IndexByte("=!<>", c) < 0 {
			continue
		}
		for _, o := range specOps {
			if strings.HasPrefix(part[i:], o.tok) {
				return i, o.tok, o.op, true
			}
		}
		return i, "!", "", false // a lone "!"
	}
	return 0, "", "", false
}

// parseFilter reads "param OP value" or "param in v1|v2".
func parseFilter(part string) (tapline.FunnelFilter, error) {
	at, tok, op, ok := findOp(part)
	if !ok {
		if tok == "!" {
			return tapline.FunnelFilter{}, fmt.Errorf("%q: \"!\" must be \"!=\"", part)
		}
		return tapline.FunnelFilter{}, fmt.Errorf("%q is not a filter: want param=value, param!=value, param>N, param>=N, param<N, param<=N or \"param in a|b\"", part)
	}
	f := tapline.FunnelFilter{Param: strings.TrimSpace(unescape(part[:at])), Op: op}
	if f.Param == "" {
		return f, fmt.Errorf("%q: the filter needs a parameter name before %q", part, strings.TrimSpace(tok))
	}
	rest := part[at+len(tok):]
	if op != tapline.OpIn {
		f.Value = strings.TrimSpace(unescape(rest))
		return f, nil
	}
	for _, v := range splitUnescaped(rest, '|') {
		v = strings.TrimSpace(unescape(v))
		if v == "" {
			return f, fmt.Errorf("%q: an empty value in the list of in (values are separated by |)", part)
		}
		f.Values = append(f.Values, v)
	}
	return f, nil
}

// ParseStep reads one -step or -exclude (flag says which, n counts from
// 1). For an exclusion it also reads after=N and before=N; absent, they
// are 0 (see FillExclusions).
func ParseStep(flag string, n int, spec string) (tapline.FunnelExclusion, error) {
	var x tapline.FunnelExclusion
	bad := func(format string, args ...any) (tapline.FunnelExclusion, error) {
		return tapline.FunnelExclusion{}, specError(flag, n, spec, format, args...)
	}
	parts := splitUnescaped(spec, ':')
	kind := strings.ToLower(strings.TrimSpace(parts[0]))
	parts = parts[1:]
	switch tapline.StepKind(kind) {
	case tapline.StepTap, tapline.StepInstall:
		x.Kind = tapline.StepKind(kind)
	case tapline.StepEvent:
		x.Kind = tapline.StepEvent
		if len(parts) == 0 || strings.TrimSpace(parts[0]) == "" {
			return bad("an event step needs a name: event:NAME")
		}
		if _, _, _, ok := findOp(parts[0]); ok {
			return bad("%q is a filter, not an event name: write event:NAME:%s", parts[0], parts[0])
		}
		x.Event = strings.TrimSpace(unescape(parts[0]))
		parts = parts[1:]
	case "":
		return bad("empty: want tap, install or event:NAME, then :filters")
	default:
		return bad("%q is not a step kind: want tap, install or event:NAME", parts0(spec))
	}
	for _, p := range parts {
		if strings.TrimSpace(p) == "" {
			return bad("an empty part (two colons in a row, or one at the end)")
		}
		key, val, _ := strings.Cut(p, "=")
		key = strings.TrimSpace(key)
		switch {
		case x.Kind == tapline.StepTap && key == "links":
			for s := range strings.SplitSeq(val, ",") {
				id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
				if err != nil || id <= 0 {
					return bad("links: %q is not a link id (links=ID,ID,…)", strings.TrimSpace(s))
				}
				x.Links = append(x.Links, id)
			}
			continue
		case flag == "exclude" && (key == "after" || key == "before"):
			v, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || v < 1 {
				return bad("%s: %q is not a step number", key, strings.TrimSpace(val))
			}
			if key == "after" {
				x.After = v
			} else {
				x.Before = v
			}
			continue
		}
		f, err := parseFilter(p)
		if err != nil {
			return bad("%v", err)
		}
		x.Filters = append(x.Filters, f)
	}
	return x, nil
}

// parts0 returns the first part of a spec, for error messages.
func parts0(spec string) string { return unescape(splitUnescaped(spec, ':')[0]) }

// ParseSteps reads the -step flags.
func ParseSteps(specs []string) ([]tapline.FunnelStep, error) {
	steps := make([]tapline.FunnelStep, 0, len(specs))
	for i, s := range specs {
		x, err := ParseStep("step", i+1, s)
		if err != nil {
			return nil, err
		}
		steps = append(steps, x.FunnelStep)
	}
	return steps, nil
}

// ParseExclusions reads the -exclude flags; "none" alone means no
// exclusions (to drop them in an edit).
func ParseExclusions(specs []string) ([]tapline.FunnelExclusion, error) {
	if len(specs) == 1 && strings.TrimSpace(specs[0]) == "none" {
		return nil, nil
	}
	xs := make([]tapline.FunnelExclusion, 0, len(specs))
	for i, s := range specs {
		x, err := ParseStep("exclude", i+1, s)
		if err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	return xs, nil
}

// FillExclusions gives exclusions without after or before the widest span:
// after step 1, before the last step.
func FillExclusions(d *tapline.FunnelDefinition) {
	for i := range d.Exclusions {
		x := &d.Exclusions[i]
		if x.After == 0 {
			x.After = 1
		}
		if x.Before == 0 {
			x.Before = len(d.Steps)
		}
	}
}

// ParseWindow reads a window such as 14d, 36h, 1d12h or 90m.
func ParseWindow(spec string) (int64, error) {
	bad := tapline.Errorf(tapline.EINVALID, "-window %q: want a duration such as 14d, 36h, 1d12h or 90m", spec)
	s := strings.TrimSpace(spec)
	var d time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.Atoi(s[:i])
		if err != nil || days < 0 || days > 10000 {
			return 0, bad
		}
		d = time.Duration(days) * 24 * time.Hour
		s = s[i+1:]
	}
	if s != "" {
		rest, err := time.ParseDuration(s)
		if err != nil {
			return 0, bad
		}
		d += rest
	}
	if d <= 0 || d%time.Second != 0 {
		return 0, tapline.Errorf(tapline.EINVALID, "-window %q: want a positive whole number of seconds", spec)
	}
	return int64(d / time.Second), nil
}

// ParseBreakdown reads link, platform, method, link_param:P or
// entry_param:P; "" and "none" mean no breakdown. The store validates the
// kind.
func ParseBreakdown(s string) tapline.FunnelBreakdown {
	s = strings.TrimSpace(s)
	if s == "none" {
		return tapline.FunnelBreakdown{}
	}
	kind, param, _ := strings.Cut(s, ":")
	return tapline.FunnelBreakdown{Kind: tapline.BreakdownKind(strings.TrimSpace(kind)), Param: strings.TrimSpace(param)}
}

// escapeSpec escapes what the step syntax would read as syntax in a name
// or value: backslashes, colons, the characters in extra, and the space
// of a " in " when extra has a space.
func escapeSpec(s string, extra string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			if strings.IndexByte(extra, ' ') >= 0 && strings.HasPrefix(s[i:], " in ") {
				b.WriteByte('\\')
			}
		case c == '\\' || c == ':' || strings.IndexByte(extra, c) >= 0:
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

var opTokens = map[tapline.FilterOp]string{
	tapline.OpEq: "=", tapline.OpNe: "!=", tapline.OpGt: ">", tapline.OpGte: ">=", tapline.OpLt: "<", tapline.OpLte: "<=",
}

// FormatStep writes a step in the step syntax, so that ParseStep reads it
// back (for exclusions with their after and before).
func FormatStep(s *tapline.FunnelStep, x *tapline.FunnelExclusion) string {
	var parts []string
	switch s.Kind {
	case tapline.StepEvent:
		parts = append(parts, "event", escapeSpec(s.Event, "=!<> "))
	default:
		parts = append(parts, string(s.Kind))
	}
	if len(s.Links) > 0 {
		ids := make([]string, len(s.Links))
		for i, id := range s.Links {
			ids[i] = strconv.FormatInt(id, 10)
		}
		parts = append(parts, "links="+strings.Join(ids, ","))
	}
	for _, f := range s.Filters {
		param := escapeSpec(f.Param, "=!<> ")
		if (s.Kind == tapline.StepTap && f.Param == "links") || (x != nil && (f.Param == "after" || f.Param == "before")) {
			param = `\` + param // a filter, not the reserved part
		}
		if f.Op == tapline.OpIn {
			vs := make([]string, len(f.Values))
			for i, v := range f.Values {
				vs[i] = escapeSpec(v, "|")
			}
			parts = append(parts, param+" in "+strings.Join(vs, "|"))
			continue
		}
		parts = append(parts, param+opTokens[f.Op]+escapeSpec(f.Value, ""))
	}
	if x != nil && x.After != 0 {
		parts = append(parts, fmt.Sprintf("after=%d", x.After))
	}
	if x != nil && x.Before != 0 {
		parts = append(parts, fmt.Sprintf("before=%d", x.Before))
	}
	return strings.Join(parts, ":")
}

// FormatWindow writes a window in days and the rest, as ParseWindow reads
// it.
func FormatWindow(secs int64) string {
	d := time.Duration(secs) * time.Second
	days := d / (24 * time.Hour)
	rest := d % (24 * time.Hour)
	switch {
	case days > 0 && rest == 0:
		return fmt.Sprintf("%dd", days)
	case days > 0:
		return fmt.Sprintf("%dd%s", days, rest)
	}
	return rest.String()
}

// FormatBreakdown writes a breakdown as -breakdown takes it.
func FormatBreakdown(b tapline.FunnelBreakdown) string {
	switch {
	case b.Kind == tapline.BreakdownNone:
		return "none"
	case b.Param != "":
		return string(b.Kind) + ":" + b.Param
	}
	return string(b.Kind)
}

// SpecsOf returns the -step and -exclude values that recreate d.
func SpecsOf(d *tapline.FunnelDefinition) (steps, excludes []string) {
	for i := range d.Steps {
		steps = append(steps, FormatStep(&d.Steps[i], nil))
	}
	for i := range d.Exclusions {
		excludes = append(excludes, FormatStep(&d.Exclusions[i].FunnelStep, &d.Exclusions[i]))
	}
	return slices.Clip(steps), excludes
}
