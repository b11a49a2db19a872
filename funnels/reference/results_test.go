package reference

import (
	"errors"
	"strings"
	"testing"
)

// fakeRows serves rows of (hour, breakdown, step, bucket, count, sum).
type fakeRows struct {
	rows [][]any
	err  error
	i    int
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.rows) }
func (r *fakeRows) Err() error { return r.err }
func (r *fakeRows) Scan(dest ...any) error {
	row := r.rows[r.i-1]
	*dest[0].(*int64) = row[0].(int64)
	*dest[1].(*string) = row[1].(string)
	*dest[2].(*int64) = row[2].(int64)
	*dest[3].(*int64) = row[3].(int64)
	*dest[4].(*int64) = row[4].(int64)
	*dest[5].(*int64) = row[5].(int64)
	return nil
}

func TestReadResultsAndDiff(t *testing.T) {
	rows := &fakeRows{rows: [][]any{
		{int64(3600), "7", int64(1), int64(0), int64(4), int64(0)},
		{int64(3600), "7", int64(2), int64(3), int64(2), int64(90)},
	}}
	got, err := ReadResults(rows)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Key]Value{
		{Hour: 3600, Breakdown: "7", Step: 1, Bucket: 0}: {Count: 4},
		{Hour: 3600, Breakdown: "7", Step: 2, Bucket: 3}: {Count: 2, Sum: 90},
	}
	if d := Diff(got, want); d != "" {
		t.Errorf("read %v, want %v: %s", got, want, d)
	}
	if _, err := ReadResults(&fakeRows{err: errors.New("gone")}); err == nil {
		t.Error("ReadResults ignored the rows' error")
	}

	other := map[Key]Value{
		{Hour: 3600, Breakdown: "7", Step: 1, Bucket: 0}: {Count: 5},
		{Hour: 7200, Breakdown: "x", Step: 1, Bucket: 0}: {Count: 1},
	}
	d := Diff(other, want)
	for _, s := range []string{"3 of 2 rows differ", "got {Count:5 Sum:0}, want {Count:4 Sum:0}", "want none", "got {Count:0 Sum:0}, want {Count:2 Sum:90}"} {
		if !strings.Contains(d, s) {
			t.Errorf("Diff = %q, want it to say %q", d, s)
		}
	}
}
