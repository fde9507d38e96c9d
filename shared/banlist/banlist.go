// Package banlist stores the per-host sshguard ban lists in S3 and answers
// "is this address blocked, and where" quickly.
//
// # S3 layout
//
// Under one bucket and a key prefix PREFIX (may be empty):
//
//	PREFIX/hosts/INSTANCE_ID.json   one object per host: HostList
//	                                {"instance_id", "stored_at" (RFC 3339),
//	                                 "command_id", "new_entries", "first_seen",
//	                                 "report": hostreport.Report}
//	PREFIX/index.json               Index: every host's report time and
//	                                entries, packed, in one object
//
// The host objects are the source of truth and stay human-readable; the
// index exists so that one lookup costs one GET, one JSON decode of a few
// thousand values and a binary search per host: entries are packed into
// byte strings (base64 in the JSON), single addresses and prefixes apart.
// With 1,000 hosts × 1,000 IPv4 entries the index is about 5.4 MB and a
// lookup (GET from gofakes3 + decode + match) takes about 40 ms and 6,600
// allocations, where a plain JSON array of entry strings (about 15 MB)
// takes about 430 ms and a million allocations just to decode and compare.
//
// # Concurrent writers
//
// The scheduled refresh and a post-unban refresh may store at the same time.
// Both kinds of object are written with optimistic concurrency: read the
// object and its ETag, compute the new content, PutObject with If-Match: ETAG
// (or If-None-Match: * when it did not exist) and start over on 412
// PreconditionFailed / 409 ConditionalRequestConflict. S3 has supported
// conditional writes since 2024 and gofakes3 checks them atomically, so the
// tests exercise the real race. Merges keep, per host, the list with the
// newest report time, so an older report that loses the race never replaces
// a newer one, and new-ban detection for a host is always computed against
// the list it actually replaces (no double announcements). If the index
// write keeps conflicting (MaxAttempts), the error is a TransientError and
// the state machine retries the task; rewriting the same reports is
// idempotent.
//
// Reading a missing key needs s3:ListBucket on the bucket: without it S3
// answers 403 instead of 404 and a never-refreshed deployment would fail
// instead of taking the stale path.
package banlist

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Location is where the lists live.
type Location struct {
	Bucket string
	Prefix string // without leading/trailing "/"; may be empty
}

func (l Location) key(rest string) string {
	if p := strings.Trim(l.Prefix, "/"); p != "" {
		return p + "/" + rest
	}
	return rest
}

// HostKey is the key of one host's list.
func (l Location) HostKey(instanceID string) string {
	return l.key("hosts/" + instanceID + ".json")
}

// IndexKey is the key of the index object.
func (l Location) IndexKey() string { return l.key("index.json") }

var instanceIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

// ValidInstanceID reports whether id is safe to use as an SSM target and in
// an S3 key ("i-0123…", "mi-…"; letters, digits and dashes).
func ValidInstanceID(id string) bool { return instanceIDRE.MatchString(id) }

// ParseEntry parses a firewall entry as sshguard reports it: an address
// ("192.0.2.12", "2001:db8::1") or a prefix ("192.0.2.0/24"). The result is
// masked, and IPv4-mapped IPv6 forms become IPv4.
func ParseEntry(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a := p.Addr()
		if a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("banlist: mapped prefix %q shorter than /96", s)
			}
			return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("banlist: zoned address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// EntryString is the normalized text of an entry: the bare address for a
// single-address prefix, CIDR notation otherwise.
func EntryString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ErrNotNormalized says an address was valid but not in canonical form.
var ErrNotNormalized = errors.New("address is not in normalized form")

// ParseAddress parses an address that must already be in normalized form:
// exactly what netip.Addr.String() prints (lowercase, IPv6 compressed),
// IPv4 not written as IPv4-mapped IPv6, no zone, not unspecified and not
// multicast. Lookup and unban both insist on it so that what is looked up,
// what is sent to the hosts (through the SSM document's allowedPattern) and
// what the reply shows are the same string.
func ParseAddress(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	switch {
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%q: zoned addresses are not accepted", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("%q: %w (write %s)", s, ErrNotNormalized, a.Unmap())
	case a.String() != s:
		return netip.Addr{}, fmt.Errorf("%q: %w (write %s)", s, ErrNotNormalized, a)
	case a.IsUnspecified() || a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("%q: not a host address", s)
	}
	return a, nil
}
