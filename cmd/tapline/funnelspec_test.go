package main

import "testing"

func TestShellQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"install":                    "install",
		"tap:links=3,4:utm_x=a":      "tap:links=3,4:utm_x=a",
		"event:purchase:revenue>0":   "'event:purchase:revenue>0'",
		"Spring buyers":              "'Spring buyers'",
		"it's":                       `'it'\''s'`,
		"install:country in DE|FR":   "'install:country in DE|FR'",
		"event:level:custom-level=5": "event:level:custom-level=5",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
