package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"tapline"
)

// snapshotVersion is the format of the snapshot file; a file of another
// version is ignored.
const snapshotVersion = 1

// snapshot is what the collector keeps of its link and app lookups across
// restarts (Config.SnapshotPath), so that it serves redirects and takes
// SDK events of the links and apps it knew while the database is down.
type snapshot struct {
	Version  int                             `json:"version"`
	Written  time.Time                       `json:"written"`
	Links    []cacheRecord[snapLink]         `json:"links"`
	Secrets  []cacheRecord[*tapline.App]     `json:"secrets"` // key: account NUL SDK secret
	Keys     []cacheRecord[*tapline.App]     `json:"keys"`    // key: SDK key
	Accounts []cacheRecord[*tapline.Account] `json:"accounts"`
}

// snapLink is a cached link with its app, as the snapshot keeps it.
type snapLink struct {
	Link *tapline.Link `json:"link"`
	App  *tapline.App  `json:"app"`
}

// snapshotChanges is a count that grows whenever a snapshotted cache
// changes.
func (c *Collector) snapshotChanges() int64 {
	return c.links.changes() + c.secrets.changes() + c.keys.changes() + c.names.changes()
}

// writeSnapshot writes the snapshot atomically: a temporary file in the
// same directory, synced, renamed over the old one, and the directory
// synced. Each cache contributes at most SnapshotMaxEntries values, the
// most recently loaded.
func (c *Collector) writeSnapshot() error {
	path, limit := c.Config.SnapshotPath, c.Config.SnapshotMaxEntries
	links := c.links.export(limit)
	s := snapshot{Version: snapshotVersion, Written: c.now().UTC(),
		Links:    make([]cacheRecord[snapLink], 0, len(links)),
		Secrets:  c.secrets.export(limit),
		Keys:     c.keys.export(limit),
		Accounts: c.names.export(limit)}
	for _, r := range links {
		s.Links = append(s.Links, cacheRecord[snapLink]{Key: r.Key, Value: snapLink{Link: r.Value.link, App: r.Value.app}})
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return fmt.Errorf("encode collector snapshot: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write collector snapshot: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write collector snapshot: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write collector snapshot %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// loadSnapshot seeds the caches from the snapshot file, if any. Its values
// are unverified: each is looked up in the database on first use and
// served from the snapshot only while the database cannot answer.
func (c *Collector) loadSnapshot() error {
	b, err := os.ReadFile(c.Config.SnapshotPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read collector snapshot: %w", err)
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("read collector snapshot %s: %w", c.Config.SnapshotPath, err)
	}
	if s.Version != snapshotVersion {
		return fmt.Errorf("read collector snapshot %s: version %d, want %d", c.Config.SnapshotPath, s.Version, snapshotVersion)
	}
	links := make([]cacheRecord[*linkEntry], 0, len(s.Links))
	for _, r := range s.Links {
		if r.Value.Link != nil && r.Value.App != nil {
			links = append(links, cacheRecord[*linkEntry]{Key: r.Key, Value: &linkEntry{link: r.Value.Link, app: r.Value.App}})
		}
	}
	c.links.seed(links)
	c.secrets.seed(nonNil(s.Secrets))
	c.keys.seed(nonNil(s.Keys))
	c.names.seed(nonNil(s.Accounts))
	c.Logger.Info("collector snapshot loaded", "path", c.Config.SnapshotPath, "written", s.Written,
		"links", len(links), "secrets", len(s.Secrets), "keys", len(s.Keys), "accounts", len(s.Accounts))
	return nil
}

func nonNil[V any](recs []cacheRecord[*V]) []cacheRecord[*V] {
	out := recs[:0]
	for _, r := range recs {
		if r.Value != nil {
			out = append(out, r)
		}
	}
	return out
}

// snapshotAdditions is a count that grows whenever a snapshotted cache
// holds a key it did not.
func (c *Collector) snapshotAdditions() int64 {
	return c.links.additions() + c.secrets.additions() + c.keys.additions() + c.names.additions()
}

// snapshotLoop writes the snapshot every SnapshotInterval when the caches
// changed, and within a second when they hold a link, app or account they
// did not (so that a process killed soon after it first served one finds
// it after a restart while PostgreSQL is down), until Close, which writes
// it once more. last and lastAdded are the caches' counts as the snapshot
// file (loaded, or none) reflects them.
func (c *Collector) snapshotLoop(last, lastAdded int64) {
	defer close(c.snapDone)
	t := time.NewTicker(min(time.Second, c.Config.SnapshotInterval))
	defer t.Stop()
	lastWrite := time.Now()
	write := func(force bool) {
		n, added := c.snapshotChanges(), c.snapshotAdditions()
		if n == last || !force && added == lastAdded && time.Since(lastWrite) < c.Config.SnapshotInterval {
			return
		}
		if err := c.writeSnapshot(); err != nil {
			c.Logger.Warn("collector snapshot not written", "err", err)
			return
		}
		last, lastAdded, lastWrite = n, added, time.Now()
	}
	for {
		select {
		case <-t.C:
			write(false)
		case <-c.stop:
			write(true)
			return
		}
	}
}
