package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// fileMode is the journal file's permission: it holds payment data.
const fileMode = 0o600

// Open opens the journal at path for reading and writing, creating it (and
// its directory, mode 0700) when it does not exist. It does not start any
// goroutine; Close releases the file.
//
// It fails fast, leaving the file untouched:
//   - wrapping ErrInUse, with the message "journal <path> is in use by another
//     posbridge process", when another process holds the file's lock for
//     longer than opts.LockTimeout;
//   - wrapping ErrCorrupt when the file is empty, truncated, not a bbolt file,
//     has two bad meta pages, is a bbolt file without the journal's buckets,
//     or has an in-flight or recent record that does not decode;
//   - wrapping ErrSchema when its schema version is not the one this code
//     writes;
//   - with the underlying error when the directory cannot be created or
//     written or the file cannot be opened.
func Open(path string, opts Options) (*Journal, error) {
	opts = opts.withDefaults()
	switch st, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		if err := create(path, opts); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("journal %s: not a regular file", path)
	}
	j, err := open(path, opts, false)
	if err != nil {
		return nil, err
	}
	j.write = opts.write
	j.db.MaxBatchDelay = opts.MaxBatchDelay
	j.db.MaxBatchSize = opts.MaxBatchSize
	return j, nil
}

// OpenReadOnly opens an existing journal for inspection (posbridge journal
// ls/show/export/check) without writing to it; Update fails on it. It takes a
// shared lock: while a daemon has the journal open it fails after
// DefaultLockTimeout wrapping ErrInUse, and while it is open a daemon's Open
// fails the same way, so the CLI should close it promptly.
//
// It refuses what cannot be read safely or correctly (ErrCorrupt for an
// empty, truncated or non-bbolt file or one without the meta bucket,
// ErrSchema for another schema version) and wraps fs.ErrNotExist when there is
// no file. Unlike Open it does not decode records first, so that Check can
// report on a journal Open refuses.
func OpenReadOnly(path string) (*Journal, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return open(path, Options{}.withDefaults(), true)
}

// open checks and opens an existing journal file.
func open(path string, opts Options, readOnly bool) (*Journal, error) {
	if err := precheck(path, opts.LockTimeout); err != nil {
		return nil, err
	}
	db, err := boltOpen(path, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: readOnly})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, inUse(path, opts.LockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, errPanic):
		return nil, corrupt(path, err.Error())
	case err != nil:
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	if err := quickCheck(db, !readOnly); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrSchema) {
			return nil, fmt.Errorf("journal %s: %w", path, err)
		}
		return nil, corrupt(path, err.Error())
	}
	return &Journal{path: path, db: db}, nil
}

func inUse(path string, waited time.Duration) error {
	return fmt.Errorf("journal %s is in use by another posbridge process (lock still held after %s): %w", path, waited, ErrInUse)
}

func corrupt(path, detail string) error {
	detail = strings.ReplaceAll(detail, ErrCorrupt.Error()+": ", "") // said once, outside
	return fmt.Errorf("journal %s: %w (%s); the file was not modified: run \"posbridge journal check\", restore a backup or move the file aside",
		path, ErrCorrupt, detail)
}

// errPanic marks a panic or memory fault raised by bbolt while reading a
// damaged file.
var errPanic = errors.New("panic while reading the file")

// guard runs fn, turning a panic, or a fault on a page of the memory map
// beyond the end of a truncated file, into an error wrapping errPanic. Faults
// only become panics in the goroutine that runs fn; bbolt reads the map in
// the calling goroutine during Open and in transactions.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	return fn()
}

// boltOpen is bolt.Open under guard. If bbolt panics half way through Open
// (a damaged freelist page, say), it unlocks and closes the file bbolt
// opened; only bbolt's read-only memory map of the file is left behind. (The
// map keeps the open file description alive, so closing alone would keep the
// lock.)
func boltOpen(path string, o *bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	err = guard(func() (err error) {
		db, err = bolt.Open(path, fileMode, o)
		return err
	})
	if errors.Is(err, errPanic) && file != nil {
		_ = syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
		_ = file.Close()
	}
	return db, err
}

// create makes a new, empty journal at path without ever leaving a partial
// file under that name: it builds it in a temporary file in the same
// directory, links it into place (failing harmlessly if another process got
// there first) and fsyncs the directory, which bbolt's own initialisation
// does not do (research/anchors-reliability.md §3.1).
func create(path string, opts Options) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal: create directory: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("journal: directory %s is not writable: %w", dir, err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // after the link this only drops the temporary name
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal: create %s: %w", tmp, err)
	}
	db, err := bolt.Open(tmp, fileMode, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		return fmt.Errorf("journal: create %s: %w", tmp, err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		for _, name := range bucketNames() {
			if _, err := btx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		meta := btx.Bucket([]byte(bucketMeta))
		if err := meta.Put([]byte(metaSchema), []byte(strconv.Itoa(schemaVersion))); err != nil {
			return err
		}
		return meta.Put([]byte(metaCount), encodeCount(0))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: create %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("journal: create %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("journal: create %s: sync directory: %w", path, err)
	}
	// Best effort: the directory itself may be new too (MkdirAll above).
	_ = syncDir(filepath.Dir(dir))
	return nil
}

// syncDir fsyncs a directory so that a new name in it survives a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// bbolt's on-disk meta page (go.etcd.io/bbolt internal/common/meta.go and
// page.go, file format version 2): a 16-byte page header, then magic,
// version, page size and flags (uint32 each), the root bucket (pgid and
// sequence), the freelist pgid, the high-water pgid, the txid, and an FNV-64a
// checksum of the 56 bytes before it, all in the machine's byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumOffset  = 56
)

// boltMeta is what precheck needs from a meta page.
type boltMeta struct {
	pageSize uint32
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
}

// readMeta reads and validates the meta page at off.
func readMeta(f *os.File, off int64) (boltMeta, bool) {
	var buf [pageHeaderSize + metaSumOffset + 8]byte
	if _, err := f.ReadAt(buf[:], off); err != nil {
		return boltMeta{}, false
	}
	m := buf[pageHeaderSize:]
	e := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumOffset])
	if e.Uint32(m[0:]) != boltMagic || e.Uint32(m[4:]) != boltVersion || e.Uint64(m[metaSumOffset:]) != h.Sum64() {
		return boltMeta{}, false
	}
	ps := e.Uint32(m[8:])
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: ps, pgid: e.Uint64(m[40:]), txid: e.Uint64(m[48:])}, true
}

// precheck looks at an existing file, under a shared lock so that it never
// reads a file a daemon is writing, before bbolt maps it. It reports what
// bbolt would not: an empty file (which bbolt would silently initialise) and
// a file shorter than its last commit (whose pages bbolt would fault on).
// Other damage is left to bbolt and quickCheck.
func precheck(path string, timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", path, err)
	}
	defer f.Close()
	if err := lockShared(f, timeout); err != nil {
		if errors.Is(err, ErrInUse) {
			return inUse(path, timeout)
		}
		return fmt.Errorf("journal: lock %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return corrupt(path, "the file is empty")
	}
	m0, ok0 := readMeta(f, 0)
	second := int64(os.Getpagesize())
	if ok0 {
		second = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, second)
	var m boltMeta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		return corrupt(path, "no valid bbolt meta page: not a bbolt file, or both meta pages are damaged")
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return corrupt(path, fmt.Sprintf("truncated: %d bytes, but its last commit (txid %d) needs %d", size, m.txid, need))
	}
	return nil
}

// lockShared takes a shared flock on f, retrying until timeout. It fails
// wrapping ErrInUse when another process holds an exclusive lock. The lock
// goes with f's descriptor: closing f releases it.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if !time.Now().Before(deadline) {
			return ErrInUse
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recentChecked is how many of the newest records quickCheck decodes.
const recentChecked = 64

// quickCheck is what Open verifies before handing the journal out: the meta
// bucket exists and the schema version is ours, and, when records is set,
// the other buckets exist, the record count is readable, and every in-flight
// record and the newest recentChecked records decode. Its cost does not grow
// with the journal. Check does the full job. OpenReadOnly skips the record
// checks so that Check and Each can still look at a damaged journal.
func quickCheck(db *bolt.DB, records bool) error {
	return guard(func() error {
		return db.View(func(btx *bolt.Tx) error {
			meta := btx.Bucket([]byte(bucketMeta))
			if meta == nil {
				return errors.New("no meta bucket: a bbolt file, but not a posbridge journal")
			}
			if err := checkSchema(meta.Get([]byte(metaSchema))); err != nil {
				return err
			}
			if !records {
				return nil
			}
			b, err := openBuckets(btx)
			if err != nil {
				return err
			}
			if _, ok := decodeCount(b.meta.Get([]byte(metaCount))); !ok {
				return errors.New("meta record count is missing or malformed")
			}
			err = b.inFlight.ForEach(func(k, _ []byte) error {
				r, err := b.get(string(k))
				if err != nil {
					return fmt.Errorf("in-flight record: %w", err)
				}
				if r.Status.Final() {
					return fmt.Errorf("in-flight record %q has final status %q", r.ID, r.Status)
				}
				return nil
			})
			if err != nil {
				return err
			}
			c := b.byTime.Cursor()
			n := 0
			for k, _ := c.Last(); k != nil && n < recentChecked; k, _ = c.Prev() {
				_, id, ok := splitTimeKey(k)
				if !ok {
					return fmt.Errorf("malformed by_time key %x", k)
				}
				if _, err := b.get(id); err != nil {
					return fmt.Errorf("recent record: %w", err)
				}
				n++
			}
			return nil
		})
	})
}

// checkSchema accepts only schemaVersion.
func checkSchema(v []byte) error {
	if v == nil {
		return errors.New("no schema version in the meta bucket")
	}
	n, err := strconv.Atoi(string(v))
	switch {
	case err != nil || n < 1:
		return fmt.Errorf("%w %q (this posbridge writes version %d)", ErrSchema, v, schemaVersion)
	case n > schemaVersion:
		return fmt.Errorf("%w %d: written by a newer posbridge (this one reads version %d); upgrade posbridge", ErrSchema, n, schemaVersion)
	case n != schemaVersion:
		return fmt.Errorf("%w %d (this posbridge reads version %d)", ErrSchema, n, schemaVersion)
	}
	return nil
}
