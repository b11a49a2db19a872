package main

import "strings"

// stepsFlag collects a repeated flag.
type stepsFlag []string

func (s *stepsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stepsFlag) Set(v string) error { *s = append(*s, v); return nil }
