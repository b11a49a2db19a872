package export_test

import (
	"testing"
	"time"

	"tapline"
	"tapline/export"
)

// FuzzParseCursor checks the export cursor: a cursor Cursor made reads back
// as the same time and id; an accepted cursor has an id and a UTC time and
// re-encodes to a cursor of the same position; a refusal is EINVALID.
func FuzzParseCursor(f *testing.F) {
	f.Add(export.Cursor(time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC), "0cj2bqf4s5o3k9o7e5u1hfl0l8"), int64(1714564800123456789), "h|1")
	f.Add(export.RowCursor("2024-05-01T14:00:00+02:00", "e-1"), int64(0), "e")
	f.Add("MjAyNC0wNS0wMVQxMjowMDowMFp8", int64(-1), "")
	f.Add("not a cursor!", int64(253402300799000000), "x")
	f.Fuzz(func(t *testing.T, s string, nanos int64, id string) {
		if pos, err := export.ParseCursor(s); err != nil {
			if tapline.ErrorCode(err) != tapline.EINVALID {
				t.Fatalf("ParseCursor(%q) = %v, want EINVALID", s, err)
			}
		} else {
			if pos.ID == "" || pos.Time.Location() != time.UTC {
				t.Fatalf("ParseCursor(%q) = %+v", s, pos)
			}
			again, err := export.ParseCursor(export.Cursor(pos.Time, pos.ID))
			if err != nil || !again.Time.Equal(pos.Time) || again.ID != pos.ID {
				t.Fatalf("cursor %q = %+v re-encodes to %+v, %v", s, pos, again, err)
			}
		}
		if id == "" {
			return
		}
		want := time.Unix(0, nanos).UTC()
		pos, err := export.ParseCursor(export.Cursor(want, id))
		if err != nil || !pos.Time.Equal(want) || pos.ID != id {
			t.Fatalf("cursor of %v %q reads back as %+v, %v", want, id, pos, err)
		}
	})
}
