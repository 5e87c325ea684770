package journal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file journal is written whole, never over another, read back as it
// was, and removed.
func TestFileStore(t *testing.T) {
	ctx := context.Background()
	s := FileStore{Path: DirectPath(t.TempDir(), "10.0.0.1:28015")}
	if filepath.Base(s.Path) != "restore-journal-10.0.0.1_28015.json" {
		t.Fatal(s.Path)
	}
	if r, err := s.Load(ctx); r != nil || err != nil {
		t.Fatalf("%v %v", r, err)
	}
	rec := &Record{Kind: KindMetadata, Started: time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC), Backup: "/b/b.tar", BackupSHA256: "abc",
		Tables: []Table{{DB: "dtr2", Name: "events", Existed: true}}, Safety: "/b/s.tar", SafetySHA256: "def"}
	if err := s.Save(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, rec); err == nil {
		t.Fatal("a second journal was written over the first")
	}
	got, err := s.Load(ctx)
	if err != nil || got.Backup != "/b/b.tar" || !got.Started.Equal(rec.Started) || len(got.Tables) != 1 || !got.Tables[0].Existed {
		t.Fatalf("%+v %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(s.Path))
	if len(entries) != 1 {
		t.Fatalf("left beside the journal: %v", entries)
	}
	if err := s.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Load(ctx); r != nil || err != nil {
		t.Fatalf("%v %v", r, err)
	}
	if err := s.Remove(ctx); err != nil {
		t.Fatal("removing no journal:", err)
	}
}

func TestCanUndo(t *testing.T) {
	for _, c := range []struct {
		r    Record
		want bool
	}{
		{Record{Kind: KindMetadata, Safety: "/s.tar"}, true},
		{Record{Kind: KindMetadata, Tables: []Table{{Name: "a"}}}, true},
		{Record{Kind: KindMetadata, Tables: []Table{{Name: "a", Existed: true}}}, false},
		{Record{Kind: KindImages, VolumeEmpty: true}, true},
		{Record{Kind: KindImages}, false},
	} {
		if got := c.r.CanUndo(); got != c.want {
			t.Errorf("%+v: %v", c.r, got)
		}
	}
	if _, err := Unmarshal(`{"kind":"other"}`); err == nil {
		t.Error("an unknown kind was read")
	}
}
