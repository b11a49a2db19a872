package pebble

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"

	pdb "github.com/cockroachdb/pebble/v2"
)

// DefaultMemTableSize is the memtable size of the embedded bus and raw
// store: pebble keeps up to two per database, so each costs up to twice
// this. Smaller ones flush more often and cost compaction CPU: at 8 MiB
// the matcher drains the bench's bus at 0.6 times the rate it does at
// 32 MiB.
const DefaultMemTableSize = 32 << 20

// openDB opens (creating when needed) the pebble database in dir with a
// block cache of cacheSize bytes, memtables of memTableSize bytes (0:
// DefaultMemTableSize), and the options tune sets.
func openDB(dir string, cacheSize, memTableSize int64, logger *slog.Logger, tune ...func(*pdb.Options)) (*pdb.DB, error) {
	if memTableSize <= 0 {
		memTableSize = DefaultMemTableSize
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	opts := &pdb.Options{
		FormatMajorVersion: pdb.FormatNewest,
		Logger:             pebbleLogger{logger},
		CacheSize:          cacheSize,
		MemTableSize:       uint64(memTableSize),
	}
	for _, f := range tune {
		f(opts)
	}
	db, err := pdb.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	return db, nil
}

// pebbleLogger routes pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	// pebble expects Fatalf not to return, as its default logger does.
	p.l.Error(fmt.Sprintf(format, args...), "fatal", true)
	os.Exit(1)
}

// appendInt64 appends v so that byte order equals numeric order.
func appendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}

// readInt64 reads a value written by appendInt64 from the start of b.
func readInt64(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}

// appendString appends s escaped (0x00 becomes 0x00 0xff) and terminated by
// 0x00 0x01, which keeps byte order equal to string order and makes an
// encoded string never a prefix of another.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, c)
		}
	}
	return append(b, 0, 1)
}

// readString decodes a string written by appendString from the start of b
// and returns it with the rest of b.
func readString(b []byte) (string, []byte, error) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			break
		}
		out = append(out, b[:i]...)
		switch b[i+1] {
		case 1:
			return string(out), b[i+2:], nil
		case 0xff:
			out = append(out, 0)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, fmt.Errorf("bad string escape 0x%02x", b[i+1])
		}
	}
	return "", nil, fmt.Errorf("unterminated string in key")
}

// prefixEnd returns the smallest key greater than every key starting with p,
// or nil when there is none.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
