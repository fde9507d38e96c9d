package banlist

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"sshguard-unban/shared/hostreport"
)

// IndexVersion is the format version written to Index.Version.
const IndexVersion = 1

// HostList is the object stored per host.
type HostList struct {
	InstanceID string `json:"instance_id"`
	StoredAt   string `json:"stored_at"` // RFC 3339, set by the writer
	// CommandID is the report command the list came from; with the report
	// time it identifies the report, so storing it again is recognised.
	CommandID string `json:"command_id,omitempty"`
	// CommandTime is when SSM received the command the report answers
	// (its RequestedDateTime, RFC 3339): SSM's clock, not the host's. Lists
	// are ordered by it, and it is the time shown for new bans, so a host
	// whose clock is off by a day neither freezes its list nor dates its
	// bans wrongly. Empty in lists stored before it existed.
	CommandTime string `json:"command_time,omitempty"`
	// NewEntries are the entries this report has that the list it replaced
	// did not (empty for the first list of a host). Kept so that a retried
	// store returns the same new bans instead of none.
	NewEntries []string `json:"new_entries,omitempty"`
	// FirstSeen maps each entry (normalized, EntryString) to the time of
	// the first stored list of this host that held it without a break
	// (RFC 3339): the ban-list page's "first seen". An entry of the host's
	// first list, or of a list stored before this field existed, is dated
	// by that list, so the time is "seen since at least".
	FirstSeen map[string]string `json:"first_seen,omitempty"`
	Report    hostreport.Report `json:"report"`
}

// Time is the list's time: the command's (SSM's clock) when known, else
// the report's (the host's clock).
func (l HostList) Time() string {
	if l.CommandTime != "" {
		return l.CommandTime
	}
	return l.Report.Time
}

// Newer says whether l answers a later command than prev (by command time
// when both have one, else by report time).
func (l HostList) Newer(prev HostList) bool {
	if l.CommandTime != "" && prev.CommandTime != "" {
		return reportTime(l.CommandTime).After(reportTime(prev.CommandTime))
	}
	return reportTime(l.Report.Time).After(reportTime(prev.Report.Time))
}

// Index is the object at PREFIX/index.json.
type Index struct {
	Version   int         `json:"version"`
	UpdatedAt string      `json:"updated_at"`
	Hosts     []IndexHost `json:"hosts"` // sorted by InstanceID
}

// IndexHost is one host in the index. Entries are packed, masked, sorted
// and deduplicated byte strings (base64 in JSON): V4 holds single IPv4
// addresses (4 bytes each), V4Net IPv4 prefixes (4 address bytes + prefix
// length), V6 single IPv6 addresses (16 bytes), V6Net IPv6 prefixes (16 +
// 1). Single addresses, by far the most common entries, are found by binary
// search; prefixes are scanned.
type IndexHost struct {
	InstanceID string `json:"instance_id"`
	Host       string `json:"host"`
	Time       string `json:"time"`      // the list's time (HostList.Time), RFC 3339
	StoredAt   string `json:"stored_at"` // when it was stored, RFC 3339
	CommandID  string `json:"command_id,omitempty"`
	Entries    int    `json:"entries"`
	// Unparsed counts report entries that were not addresses or prefixes
	// (they cannot be matched; the host script should never print them).
	Unparsed int    `json:"unparsed,omitempty"`
	V4       []byte `json:"v4,omitempty"`
	V4Net    []byte `json:"v4net,omitempty"`
	V6       []byte `json:"v6,omitempty"`
	V6Net    []byte `json:"v6net,omitempty"`
	// Own are the host's own addresses (hostreport.Report.Addresses).
	Own []string `json:"own,omitempty"`
}

// NewIndexHost packs a host list for the index.
func NewIndexHost(l HostList) IndexHost {
	h := IndexHost{
		InstanceID: l.InstanceID,
		Host:       l.Report.Host,
		Time:       l.Time(),
		StoredAt:   l.StoredAt,
		CommandID:  l.CommandID,
		Own:        l.Report.Addresses,
	}
	var v4, v4net, v6, v6net []netip.Prefix
	for _, e := range l.Report.Entries {
		p, err := ParseEntry(e.Entry)
		if err != nil {
			h.Unparsed++
			continue
		}
		switch {
		case p.Addr().Is4() && p.IsSingleIP():
			v4 = append(v4, p)
		case p.Addr().Is4():
			v4net = append(v4net, p)
		case p.IsSingleIP():
			v6 = append(v6, p)
		default:
			v6net = append(v6net, p)
		}
	}
	h.V4 = pack(v4, 4, false)
	h.V4Net = pack(v4net, 5, true)
	h.V6 = pack(v6, 16, false)
	h.V6Net = pack(v6net, 17, true)
	h.Entries = len(h.V4)/4 + len(h.V4Net)/5 + len(h.V6)/16 + len(h.V6Net)/17
	return h
}

// pack writes records of rec bytes (the address, then the prefix length if
// withBits), sorted and deduplicated.
func pack(ps []netip.Prefix, rec int, withBits bool) []byte {
	if len(ps) == 0 {
		return nil
	}
	recs := make([][]byte, 0, len(ps))
	for _, p := range ps {
		r := p.Addr().AsSlice()
		if withBits {
			r = append(r, byte(p.Bits()))
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, bytes.Compare)
	recs = slices.CompactFunc(recs, bytes.Equal)
	out := make([]byte, 0, len(recs)*rec)
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

// Prefixes unpacks the host's entries (for tests and tools; lookups use
// AppendMatches, which does not allocate per entry).
func (h *IndexHost) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for i := 0; i+4 <= len(h.V4); i += 4 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(h.V4[i:i+4])), 32))
	}
	for i := 0; i+5 <= len(h.V4Net); i += 5 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(h.V4Net[i:i+4])), int(h.V4Net[i+4])))
	}
	for i := 0; i+16 <= len(h.V6); i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte(h.V6[i:i+16])), 128))
	}
	for i := 0; i+17 <= len(h.V6Net); i += 17 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte(h.V6Net[i:i+16])), int(h.V6Net[i+16])))
	}
	return out
}

// hasRecord binary-searches sorted fixed-size records for key.
func hasRecord(recs, key []byte) bool {
	n := len(key)
	lo, hi := 0, len(recs)/n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(recs[m*n:m*n+n], key); {
		case c == 0:
			return true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false
}

// AppendMatches appends to dst every entry of the host that blocks addr:
// the address itself or a prefix containing it.
func (h *IndexHost) AppendMatches(dst []netip.Prefix, addr netip.Addr) []netip.Prefix {
	addr = addr.Unmap()
	if addr.Is4() {
		b := addr.As4()
		if hasRecord(h.V4, b[:]) {
			dst = append(dst, netip.PrefixFrom(addr, 32))
		}
		a := binary.BigEndian.Uint32(b[:])
		nets := h.V4Net
		for i := 0; i+5 <= len(nets); i += 5 {
			bits := uint(nets[i+4])
			if bits > 32 {
				continue
			}
			s := binary.BigEndian.Uint32(nets[i : i+4])
			// a shift by 32 yields 0 for uint32, so /0 matches everything
			if (a^s)>>(32-bits) == 0 {
				dst = append(dst, netip.PrefixFrom(netip.AddrFrom4([4]byte(nets[i:i+4])), int(bits)))
			}
		}
		return dst
	}
	b := addr.As16()
	if hasRecord(h.V6, b[:]) {
		dst = append(dst, netip.PrefixFrom(addr.WithZone(""), 128))
	}
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	nets := h.V6Net
	for i := 0; i+17 <= len(nets); i += 17 {
		bits := uint(nets[i+16])
		if bits > 128 {
			continue
		}
		shi := binary.BigEndian.Uint64(nets[i : i+8])
		var ok bool
		if bits <= 64 {
			ok = (hi^shi)>>(64-bits) == 0
		} else {
			slo := binary.BigEndian.Uint64(nets[i+8 : i+16])
			ok = hi == shi && (lo^slo)>>(128-bits) == 0
		}
		if ok {
			dst = append(dst, netip.PrefixFrom(netip.AddrFrom16([16]byte(nets[i:i+16])), int(bits)))
		}
	}
	return dst
}

// ListTime is how old the host's list is taken to be: the earlier of the
// report time (host clock) and the store time (Lambda clock), so neither a
// host clock running ahead nor a slow store makes a list look fresher than
// it is. Zero if neither parses.
func (h *IndexHost) ListTime() time.Time {
	return listTime(h.Time, h.StoredAt)
}

func listTime(reportTime, storedAt string) time.Time {
	r, rerr := time.Parse(time.RFC3339, reportTime)
	s, serr := time.Parse(time.RFC3339, storedAt)
	switch {
	case rerr == nil && serr == nil:
		if r.Before(s) {
			return r
		}
		return s
	case rerr == nil:
		return r
	case serr == nil:
		return s
	}
	return time.Time{}
}

// reportTime parses a report's time (zero if unparsable).
func reportTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Host returns the index entry for an instance, or nil.
func (ix *Index) Host(instanceID string) *IndexHost {
	i, ok := slices.BinarySearchFunc(ix.Hosts, instanceID, func(h IndexHost, id string) int {
		switch {
		case h.InstanceID < id:
			return -1
		case h.InstanceID > id:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return &ix.Hosts[i]
}

// Merge folds updates into the index: a host's entry is replaced unless the
// index already holds a strictly newer report for it. Hosts whose list is
// older than forgetBefore (if non-zero) and that are not being updated are
// dropped. Hosts stay sorted by instance id. It reports whether anything
// changed.
func (ix *Index) Merge(updates []IndexHost, forgetBefore time.Time) bool {
	byID := make(map[string]int, len(ix.Hosts))
	for i, h := range ix.Hosts {
		byID[h.InstanceID] = i
	}
	changed := false
	updated := map[string]bool{}
	for _, u := range updates {
		updated[u.InstanceID] = true
		i, ok := byID[u.InstanceID]
		if !ok {
			ix.Hosts = append(ix.Hosts, u)
			byID[u.InstanceID] = len(ix.Hosts) - 1
			changed = true
			continue
		}
		cur := &ix.Hosts[i]
		if reportTime(cur.Time).After(reportTime(u.Time)) {
			continue // the index already has a newer list for this host
		}
		if !sameIndexHost(cur, &u) {
			*cur = u
			changed = true
		}
	}
	if !forgetBefore.IsZero() {
		kept := ix.Hosts[:0]
		for _, h := range ix.Hosts {
			if updated[h.InstanceID] || !h.ListTime().Before(forgetBefore) {
				kept = append(kept, h)
			} else {
				changed = true
			}
		}
		ix.Hosts = kept
	}
	slices.SortFunc(ix.Hosts, func(a, b IndexHost) int {
		switch {
		case a.InstanceID < b.InstanceID:
			return -1
		case a.InstanceID > b.InstanceID:
			return 1
		}
		return 0
	})
	return changed
}

func sameIndexHost(a, b *IndexHost) bool {
	return a.InstanceID == b.InstanceID && a.Host == b.Host && a.Time == b.Time &&
		a.StoredAt == b.StoredAt && a.CommandID == b.CommandID && a.Unparsed == b.Unparsed &&
		bytes.Equal(a.V4, b.V4) && bytes.Equal(a.V4Net, b.V4Net) &&
		bytes.Equal(a.V6, b.V6) && bytes.Equal(a.V6Net, b.V6Net)
}
