package lan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir)
	if got, want := s.Path(), filepath.Join(dir, StoreFile); got != want {
		t.Fatalf("Path: got %q, want %q", got, want)
	}

	m, err := s.Load()
	if err != nil || len(m) != 0 {
		t.Fatalf("Load of a missing file: got %v, %v; want empty map, nil", m, err)
	}

	at := time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC)
	want := map[string]Remembered{
		"P3SN0001": {Address: "192.0.2.10:6868", SeenAt: at},
		"P3SN0002": {Address: "[2001:db8::2]:6869", SeenAt: at.Add(time.Minute)},
	}
	if err := s.Save(want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := NewStore(dir).Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load after Save: got %v, want %v", got, want)
	}

	// A second Save replaces the file and leaves no temporary file behind.
	if err := s.Save(map[string]Remembered{"P3SN0003": {Address: "192.0.2.3:6868", SeenAt: at}}); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	got, err = s.Load()
	if err != nil || len(got) != 1 || got["P3SN0003"].Address != "192.0.2.3:6868" {
		t.Errorf("Load after second Save: got %v, %v; want only P3SN0003", got, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != StoreFile {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, StoreFile)
	}
}

func TestStoreLoadCorrupt(t *testing.T) {
	tests := []struct {
		name, content string
	}{
		{"not JSON", "{\"version\":1,\"terminals\":{"},
		{"empty file", ""},
		{"binary garbage", "\x00\x01\x02\xff"},
		{"wrong version", `{"version":2,"terminals":{}}`},
		{"no version", `{"terminals":{"A":{"address":"192.0.2.1:6868"}}}`},
		{"address without port", `{"version":1,"terminals":{"A":{"address":"192.0.2.1"}}}`},
		{"host name instead of IP", `{"version":1,"terminals":{"A":{"address":"p3.local:6868"}}}`},
		{"empty serial", `{"version":1,"terminals":{"":{"address":"192.0.2.1:6868"}}}`},
		{"wrong types", `{"version":1,"terminals":{"A":{"address":6868}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StoreFile), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := NewStore(dir).Load()
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Load: got error %v, want one wrapping ErrCorrupt", err)
			}
			if m == nil || len(m) != 0 {
				t.Errorf("Load: got %v, want an empty, non-nil map", m)
			}
		})
	}
}

func TestStoreLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be cannot be read as a file.
	if err := os.Mkdir(filepath.Join(dir, StoreFile), 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := NewStore(dir).Load()
	if err == nil || len(m) != 0 {
		t.Errorf("Load: got %v, %v; want empty map and an error", m, err)
	}
}

func TestStoreSaveFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	if err := NewStore(dir).Save(map[string]Remembered{"A": {Address: "192.0.2.1:6868"}}); err == nil {
		t.Fatalf("Save into a missing directory: got nil error, want one")
	}

	// Rename onto a directory fails: the old content (a directory here)
	// stays and no temporary file is left.
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, StoreFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, StoreFile, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(dir).Save(nil); err == nil {
		t.Fatalf("Save over a non-empty directory: got nil error, want one")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after a failed Save, want 1 (no temporary file left)", len(entries))
	}
}
