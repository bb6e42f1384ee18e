package lan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// StoreFile is the name of the remembered-addresses file in the data directory.
const StoreFile = "lan-addresses.json"

// ErrCorrupt is wrapped by Store.Load when the file exists but cannot be used.
var ErrCorrupt = errors.New("corrupt address file")

// Remembered is the last good LAN address of one terminal.
type Remembered struct {
	// Address is host:port with a literal IP address.
	Address string    `json:"address"`
	SeenAt  time.Time `json:"seen_at"`
}

// storeVersion is the format of the file; another version is ErrCorrupt.
const storeVersion = 1

type storeFile struct {
	Version   int                   `json:"version"`
	Terminals map[string]Remembered `json:"terminals"`
}

// Store keeps the last good LAN address per terminal serial in one small
// JSON file, so that a restarted daemon can reach its terminals before
// discovery answers. Writes are atomic (temporary file, fsync, rename, fsync
// of the directory): a crash leaves the old file or the new one, never a mix.
//
// A Store is safe for concurrent use by one process only when its callers
// serialize Save (the Browser does); two processes must not share the file.
type Store struct {
	path string
}

// NewStore returns a Store for the file StoreFile in dir. It does no I/O.
func NewStore(dir string) *Store {
	return &Store{path: filepath.Join(dir, StoreFile)}
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Load returns the remembered addresses by serial. A missing file is an
// empty map and no error. A file that cannot be read, is not the expected
// JSON, or holds an address that is not an IP host:port, gives an empty map
// and an error wrapping ErrCorrupt (or the read error): the caller logs it
// and carries on with discovery; nothing is half-loaded.
func (s *Store) Load() (map[string]Remembered, error) {
	empty := map[string]Remembered{}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return empty, fmt.Errorf("lan: load addresses: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return empty, fmt.Errorf("lan: load addresses from %s: %w: %v", s.path, ErrCorrupt, err)
	}
	if f.Version != storeVersion {
		return empty, fmt.Errorf("lan: load addresses from %s: %w: version %d, want %d", s.path, ErrCorrupt, f.Version, storeVersion)
	}
	for serial, r := range f.Terminals {
		if serial == "" {
			return empty, fmt.Errorf("lan: load addresses from %s: %w: empty serial", s.path, ErrCorrupt)
		}
		if _, err := netip.ParseAddrPort(r.Address); err != nil {
			return empty, fmt.Errorf("lan: load addresses from %s: %w: serial %q: %v", s.path, ErrCorrupt, serial, err)
		}
	}
	if f.Terminals == nil {
		return empty, nil
	}
	return f.Terminals, nil
}

// Save replaces the file with m, atomically and durably: it returns nil only
// once the new file and its directory entry are on disk. On error the old
// file is intact and the temporary file is removed.
func (s *Store) Save(m map[string]Remembered) error {
	if m == nil {
		m = map[string]Remembered{}
	}
	b, err := json.MarshalIndent(storeFile{Version: storeVersion, Terminals: m}, "", "  ")
	if err != nil {
		return fmt.Errorf("lan: save addresses: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+StoreFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("lan: save addresses: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("lan: save addresses: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("lan: save addresses: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lan: save addresses: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("lan: save addresses: %w", err)
	}
	done = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("lan: save addresses: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("lan: save addresses: sync dir: %w", err)
	}
	return nil
}
