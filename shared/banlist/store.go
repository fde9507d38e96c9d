package banlist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/pause"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/taskerr"
)

// ObjectGetter is the S3 read the lists need.
type ObjectGetter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// S3API is what Store calls; *s3.Client implements it.
type S3API interface {
	ObjectGetter
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = s3obj.ErrNotFound

// ErrConflict is returned (wrapped in a TransientError) when a conditional
// write lost the race MaxAttempts times in a row.
var ErrConflict = errors.New("banlist: concurrent writers kept conflicting")

// CorruptError says a stored object could not be decoded.
type CorruptError struct {
	Key string
	Err error
}

func (e *CorruptError) Error() string { return fmt.Sprintf("banlist: %s: %v", e.Key, e.Err) }
func (e *CorruptError) Unwrap() error { return e.Err }

func getObject(ctx context.Context, c ObjectGetter, bucket, key string) ([]byte, string, error) {
	return s3obj.Get(ctx, c, bucket, key)
}

func isConflict(err error) bool { return s3obj.IsConflict(err) }

// ReadIndex reads and decodes the index. A missing index wraps ErrNotFound;
// an undecodable one returns a *CorruptError together with its ETag.
func ReadIndex(ctx context.Context, c ObjectGetter, loc Location) (*Index, string, error) {
	key := loc.IndexKey()
	body, etag, err := getObject(ctx, c, loc.Bucket, key)
	if err != nil {
		return nil, "", err
	}
	var ix Index
	if err := json.Unmarshal(body, &ix); err != nil {
		return nil, etag, &CorruptError{Key: key, Err: err}
	}
	if ix.Version != IndexVersion {
		return nil, etag, &CorruptError{Key: key, Err: fmt.Errorf("unsupported index version %d", ix.Version)}
	}
	return &ix, etag, nil
}

// ReadHost reads one host's list. A missing list wraps ErrNotFound; an
// undecodable one returns a *CorruptError together with its ETag.
func ReadHost(ctx context.Context, c ObjectGetter, loc Location, instanceID string) (*HostList, string, error) {
	if !ValidInstanceID(instanceID) {
		return nil, "", fmt.Errorf("banlist: invalid instance id %q", instanceID)
	}
	key := loc.HostKey(instanceID)
	body, etag, err := getObject(ctx, c, loc.Bucket, key)
	if err != nil {
		return nil, "", err
	}
	var l HostList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, etag, &CorruptError{Key: key, Err: err}
	}
	return &l, etag, nil
}

// Store writes host lists and the index.
type Store struct {
	Client S3API
	Location
	// MaxAttempts bounds the read-modify-conditional-write loop (default 8).
	MaxAttempts int
	// Now is the clock for StoredAt and UpdatedAt (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// NewStore returns a Store with defaults.
func NewStore(client S3API, loc Location, log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{Client: client, Location: loc, MaxAttempts: 8, Now: time.Now, Log: log}
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Store) attempts() int {
	if s.MaxAttempts > 0 {
		return s.MaxAttempts
	}
	return 8
}

// backoff sleeps before conditional-write attempt n (n ≥ 1): 20 ms doubling,
// capped at 1 s, with full jitter.
func backoff(ctx context.Context, n int) error {
	d := 20 * time.Millisecond << min(n-1, 6)
	d = min(d, time.Second)
	return pause.For(ctx, rand.N(d)+time.Millisecond)
}

func (s *Store) put(ctx context.Context, key string, body []byte, etag string) error {
	return s3obj.Put(ctx, s.Client, s.Bucket, key, body, etag)
}

// PutResult says what PutHost did.
type PutResult struct {
	// Stored is the list now in S3 for the host: the one written, the same
	// report stored earlier (a retried store), or a newer one that won.
	Stored HostList
	// Written is false when the same report was already stored or a newer
	// report is stored (Superseded).
	Written    bool
	Superseded bool
	// First is true when the host had no list before this report.
	First bool
	// New are the entries of this report that the replaced list did not
	// have: empty for a host's first list (so a first deploy announces
	// nothing) and for a superseded report; for a re-store of the same report
	// the entries recorded when it was first written.
	New []string
}

// PutHost stores a host's list with If-Match on the previous version,
// computing the new entries against the list it replaces.
func (s *Store) PutHost(ctx context.Context, l HostList) (PutResult, error) {
	if !ValidInstanceID(l.InstanceID) {
		return PutResult{}, fmt.Errorf("banlist: invalid instance id %q", l.InstanceID)
	}
	key := s.HostKey(l.InstanceID)
	for attempt := 1; ; attempt++ {
		prev, etag, err := ReadHost(ctx, s.Client, s.Location, l.InstanceID)
		var corrupt *CorruptError
		switch {
		case errors.Is(err, ErrNotFound):
			prev, etag = nil, ""
		case errors.As(err, &corrupt):
			// An undecodable list is replaced (still conditionally, on its
			// ETag); with no usable previous list nothing is announced.
			s.Log.Warn("replacing undecodable host list", "key", key, "error", err)
			prev = nil
		case err != nil:
			return PutResult{}, err
		}
		if prev != nil {
			if prev.CommandID == l.CommandID && prev.Report.Time == l.Report.Time {
				return PutResult{Stored: *prev, New: slices.Clone(prev.NewEntries)}, nil
			}
			if prev.Newer(l) {
				return PutResult{Stored: *prev, Superseded: true}, nil
			}
		}
		w := l
		w.StoredAt = s.now().Format(time.RFC3339)
		w.NewEntries = nil
		if prev != nil {
			w.NewEntries = newEntries(prev.Report.Entries, l.Report.Entries)
		}
		w.FirstSeen = firstSeen(prev, l)
		body, err := json.Marshal(w)
		if err != nil {
			return PutResult{}, err
		}
		err = s.put(ctx, key, body, etag)
		if err == nil {
			return PutResult{Stored: w, Written: true, First: prev == nil, New: w.NewEntries}, nil
		}
		if !isConflict(err) {
			return PutResult{}, awserr.Classify(fmt.Errorf("put s3://%s/%s: %w", s.Bucket, key, err))
		}
		if attempt >= s.attempts() {
			return PutResult{}, taskerr.Transient(fmt.Errorf("%s: %w", key, ErrConflict))
		}
		s.Log.Debug("host list changed concurrently; retrying", "key", key, "attempt", attempt)
		if err := backoff(ctx, attempt); err != nil {
			return PutResult{}, err
		}
	}
}

// firstSeen dates each entry of l: by prev's date for it when prev held it
// too (carried from list to list), else by l's own time.
func firstSeen(prev *HostList, l HostList) map[string]string {
	if len(l.Report.Entries) == 0 {
		return nil
	}
	out := make(map[string]string, len(l.Report.Entries))
	var before map[string]string
	if prev != nil {
		before = prev.FirstSeen
		if before == nil {
			// A list from before FirstSeen: its entries date from it.
			before = map[string]string{}
			for _, e := range prev.Report.Entries {
				if p, err := ParseEntry(e.Entry); err == nil {
					before[EntryString(p)] = prev.Time()
				}
			}
		}
	}
	for _, e := range l.Report.Entries {
		p, err := ParseEntry(e.Entry)
		if err != nil {
			continue
		}
		k := EntryString(p)
		if t, ok := before[k]; ok && t != "" {
			out[k] = t
		} else {
			out[k] = l.Time()
		}
	}
	return out
}

// newEntries returns the normalized entries of cur that prev lacks, sorted.
func newEntries(prev, cur []hostreport.Entry) []string {
	old := make(map[netip.Prefix]bool, len(prev))
	for _, e := range prev {
		if p, err := ParseEntry(e.Entry); err == nil {
			old[p] = true
		}
	}
	seen := map[netip.Prefix]bool{}
	var out []string
	for _, e := range cur {
		p, err := ParseEntry(e.Entry)
		if err != nil || old[p] || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, EntryString(p))
	}
	slices.Sort(out)
	return out
}

// UpdateIndex merges host entries into the index with a conditional write,
// re-reading and re-merging on conflict. forgetBefore (if non-zero) drops
// hosts whose list is older than that and that are not being updated.
func (s *Store) UpdateIndex(ctx context.Context, hosts []IndexHost, forgetBefore time.Time) error {
	key := s.IndexKey()
	for attempt := 1; ; attempt++ {
		ix, etag, err := ReadIndex(ctx, s.Client, s.Location)
		var corrupt *CorruptError
		switch {
		case errors.Is(err, ErrNotFound):
			ix, etag = &Index{Version: IndexVersion}, ""
		case errors.As(err, &corrupt):
			// Rebuilt from what is being stored now; the other hosts come
			// back with their next refresh (they look stale until then,
			// which only makes lookups take the safe path).
			s.Log.Warn("replacing undecodable index", "key", key, "error", err)
			ix = &Index{Version: IndexVersion}
		case err != nil:
			return err
		}
		if !ix.Merge(hosts, forgetBefore) && corrupt == nil && etag != "" {
			return nil // nothing new (e.g. a retried store)
		}
		ix.Version = IndexVersion
		ix.UpdatedAt = s.now().Format(time.RFC3339)
		body, err := json.Marshal(ix)
		if err != nil {
			return err
		}
		err = s.put(ctx, key, body, etag)
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return awserr.Classify(fmt.Errorf("put s3://%s/%s: %w", s.Bucket, key, err))
		}
		if attempt >= s.attempts() {
			return taskerr.Transient(fmt.Errorf("%s: %w", key, ErrConflict))
		}
		s.Log.Debug("index changed concurrently; retrying", "key", key, "attempt", attempt)
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}
