// Package coalesce lets the requests for the same addresses share SSM
// commands: when a whole office behind one address asks at once, its
// executions reuse one unban command instead of sending one each, so SSM is
// not flooded and each host's firewall changes once.
//
// Sharing must never make an answer stale. A command may serve a request
// only if it was sent after the request's execution started (so after the
// message was written, whatever Chatwork's clock says): its hosts then read
// their firewall after the employee was blocked. A request that finds only
// an older command waits for it to finish and then sends (or joins) the next
// one: at most one command per address set is in flight, which is all a host
// can use anyway (the unban script takes a per-host lock). In a burst that
// makes about one command per command round trip, whatever the number of
// askers.
//
// The state is one small JSON object per address set in the data bucket,
// changed only with S3's conditional writes (shared/s3obj): a request claims
// the right to send (If-Match on the version it read), sends, and records
// the command; the others wait and read. A claim or an in-flight command
// that nobody finishes (a crashed function) expires, so nothing waits for
// ever; past MaxWait a request sends its own command.
package coalesce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/pause"
	"sshguard-unban/shared/s3obj"
)

// Record is what the object holds.
type Record struct {
	Addresses []string `json:"addresses"`
	// The latest command for these addresses.
	CommandID string    `json:"command_id,omitempty"`
	SentAt    time.Time `json:"sent_at,omitzero"` // just before SendCommand
	Deadline  time.Time `json:"deadline,omitzero"`
	SentBy    string    `json:"sent_by,omitempty"` // execution name
	// DoneAt is set once every host has answered or is known silent
	// (Done): the next request may send at once.
	DoneAt time.Time `json:"done_at,omitzero"`
	// Claim is a request about to send the next command.
	Claim *Claim `json:"claim,omitempty"`
}

// Claim marks the request that is sending the next command.
type Claim struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// Defaults.
const (
	DefaultClaimTTL    = 15 * time.Second // longer than one SendCommand with its retries
	DefaultInflightTTL = 15 * time.Second // longer than any reply bound
	DefaultMaxWait     = 20 * time.Second
	DefaultPoll        = 100 * time.Millisecond
)

// Store keeps the records under Prefix in Bucket.
type Store struct {
	S3     s3obj.API
	Bucket string
	Prefix string // e.g. "commands/coalesce/"
	Log    *slog.Logger
	// ClaimTTL, InflightTTL, MaxWait and Poll default to the constants.
	ClaimTTL, InflightTTL, MaxWait, Poll time.Duration
	Now                                  func() time.Time
}

// Key is the record key of an address set (order and duplicates do not
// matter; the addresses must already be canonical).
func (s *Store) Key(addrs []string) string {
	a := slices.Clone(addrs)
	slices.Sort(a)
	a = slices.Compact(a)
	sum := sha256.Sum256([]byte(strings.Join(a, ",")))
	return s.Prefix + hex.EncodeToString(sum[:16]) + ".json"
}

// SendFunc sends the unban command and returns its id and delivery deadline.
type SendFunc func(ctx context.Context) (commandID string, deadline time.Time, err error)

// Obtain returns the command that answers a request for addrs whose
// execution started at started: a command sent since (shared is true when
// another execution sent it), or one this call sends with send. A retried
// call of the same execution gets back the command it already sent.
func (s *Store) Obtain(ctx context.Context, addrs []string, started time.Time, execution string, send SendFunc) (rec Record, shared bool, err error) {
	key := s.Key(addrs)
	giveUp := s.now().Add(or(s.MaxWait, DefaultMaxWait))
	for attempt := 1; ; attempt++ {
		cur, etag, err := s.read(ctx, key)
		if err != nil {
			return Record{}, false, err
		}
		now := s.now()
		switch {
		case cur.CommandID != "" && !cur.SentAt.Before(started):
			return cur, cur.SentBy != execution, nil
		case now.After(giveUp):
			// Something keeps the others from finishing: do not make the
			// employee wait longer; a duplicate command is harmless.
			s.log().Warn("coalesce: waited too long for a shared command; sending one", "key", key)
			return s.sendAndRecord(ctx, key, addrs, execution, send)
		case cur.Claim != nil && cur.Claim.By != execution && now.Sub(cur.Claim.At) < or(s.ClaimTTL, DefaultClaimTTL):
			// Another request is sending the next command: it will do.
		case cur.CommandID != "" && cur.DoneAt.IsZero() && now.Sub(cur.SentAt) < or(s.InflightTTL, DefaultInflightTTL):
			// The previous command is still with the hosts; the next one
			// goes out when it is done.
		default:
			claimed := cur
			claimed.Addresses = addrs
			claimed.Claim = &Claim{By: execution, At: now}
			body, _ := json.Marshal(claimed)
			err := s3obj.Put(ctx, s.S3, s.Bucket, key, body, etag)
			if errors.Is(err, s3obj.ErrConflict) {
				continue // someone else changed it: look again
			}
			if err != nil {
				return Record{}, false, err
			}
			return s.sendAndRecord(ctx, key, addrs, execution, send)
		}
		if err := sleep(ctx, or(s.Poll, DefaultPoll)); err != nil {
			return Record{}, false, err
		}
	}
}

// sendAndRecord sends the command and records it for the requests that
// follow. The claim keeps other writers away meanwhile (Done only writes
// for the command it finished), so the record is written unconditionally.
func (s *Store) sendAndRecord(ctx context.Context, key string, addrs []string, execution string, send SendFunc) (Record, bool, error) {
	sentAt := s.now()
	id, deadline, err := send(ctx)
	if err != nil {
		s.release(ctx, key, execution)
		return Record{}, false, err
	}
	rec := Record{Addresses: addrs, CommandID: id, SentAt: sentAt, Deadline: deadline, SentBy: execution}
	body, _ := json.Marshal(rec)
	if err := s3obj.PutAlways(ctx, s.S3, s.Bucket, key, body); err != nil {
		// The command is out: this request still has its answer; others
		// only lose the chance to share it.
		s.log().Error("coalesce: could not record the command", "key", key, "command_id", id, "error", err)
	}
	return rec, false, nil
}

// release drops this execution's claim after a failed send, so the next
// request need not wait for it to expire. Best effort.
func (s *Store) release(ctx context.Context, key, execution string) {
	cur, etag, err := s.read(ctx, key)
	if err != nil || cur.Claim == nil || cur.Claim.By != execution {
		return
	}
	cur.Claim = nil
	body, _ := json.Marshal(cur)
	_ = s3obj.Put(ctx, s.S3, s.Bucket, key, body, etag)
}

// Done records that commandID (of the record at key) has its answers, so a
// request waiting for a newer command can send it now. It changes nothing if
// the record has moved on to another command.
func (s *Store) Done(ctx context.Context, key, commandID string) error {
	for range 5 {
		cur, etag, err := s.read(ctx, key)
		if err != nil {
			return err
		}
		if cur.CommandID != commandID || !cur.DoneAt.IsZero() {
			return nil
		}
		cur.DoneAt = s.now()
		body, _ := json.Marshal(cur)
		err = s3obj.Put(ctx, s.S3, s.Bucket, key, body, etag)
		if !errors.Is(err, s3obj.ErrConflict) {
			return err
		}
	}
	return nil // others keep writing: they will move on by themselves
}

// read returns the record (empty if none) and its ETag ("" if none).
func (s *Store) read(ctx context.Context, key string) (Record, string, error) {
	body, etag, err := s3obj.Get(ctx, s.S3, s.Bucket, key)
	if errors.Is(err, s3obj.ErrNotFound) {
		return Record{}, "", nil
	}
	if err != nil {
		return Record{}, "", err
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		// Replaced on the next claim (conditionally, on this ETag).
		s.log().Warn("coalesce: undecodable record", "key", key, "error", err)
		return Record{}, etag, nil
	}
	return r, etag, nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// sleep waits d with ±25% jitter, so waiting requests do not read in step.
func sleep(ctx context.Context, d time.Duration) error {
	d = d*3/4 + rand.N(d/2+1)
	if err := pause.For(ctx, d); err != nil {
		return fmt.Errorf("coalesce: %w", err)
	}
	return nil
}
