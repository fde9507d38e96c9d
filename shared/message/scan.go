package message

import (
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// item is one distinct thing found in the text: an address to act on
// (reason == "") or a refusal.
type item struct {
	text   string // as typed, after NFKC
	addr   string // normalized address, for an accepted item
	reason string
}

// collector gathers what scan finds, each distinct thing once: the first
// MaxAddresses addresses, then, in order of appearance, up to MaxListed
// refusals (later addresses are refused with ReasonOverLimit), and a count
// of the refusals past those. Its size is bounded whatever the text; only
// seen grows, by one key per distinct thing, to count each once.
type collector struct {
	addrs    []string
	refused  []Refusal
	nRefused int // distinct refusals, listed or not
	seen     map[string]bool
}

func (c *collector) add(key string, it item) {
	if c.seen == nil {
		c.seen = make(map[string]bool)
	}
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	if it.reason == "" {
		if len(c.addrs) < MaxAddresses {
			c.addrs = append(c.addrs, it.addr)
			return
		}
		it.reason = ReasonOverLimit
	}
	c.nRefused++
	if len(c.refused) < MaxListed {
		c.refused = append(c.refused, Refusal{Text: it.text, Reason: it.reason})
	}
}

// isAddrChar is a byte that can be part of a textual address.
func isAddrChar(c byte) bool { return isHex(c) || c == ':' || c == '.' }

// scan finds the addresses in s. It cuts s into maximal runs of hex digits,
// colons and dots, then reads an address out of each run; a run is looked
// at a bounded number of times, so scan is linear.
func (c *collector) scan(s string) {
	i := 0
	for i < len(s) {
		if !isAddrChar(s[i]) {
			i++
			continue
		}
		j := i
		sep := false
		for j < len(s) && isAddrChar(s[j]) {
			sep = sep || s[j] == ':' || s[j] == '.'
			j++
		}
		if !sep {
			// Bare numbers and hex words: account ids, message ids,
			// Unix times, instance ids. Never addresses.
			i = j
			continue
		}
		i = c.run(s, i, j)
	}
}

// run reads at most one address from the run s[a:b] and returns where
// scanning goes on (past b when a zone or prefix length followed).
//
// The run is what the character classes gave, so it may carry neighbours
// that are not part of the address: sentence dots ("192.0.2.33."), a label
// colon ("アドレス:192.0.2.12", "IPv6:2001:db8::1"), a port
// ("192.0.2.1:22"). A few cuts are tried, longest first.
func (c *collector) run(s string, a, b int) int {
	x, y := a, b
	for x < y && s[x] == '.' {
		x++
	}
	for y > x && s[y-1] == '.' {
		y--
	}
	if x == y {
		return b
	}

	starts := [3]int{x, -1, -1}
	if s[x] == ':' && x+1 < y && s[x+1] != ':' {
		// ":192.0.2.1" after a label; "::1" keeps its colons.
		starts[1] = x + 1
	}
	if x == a && a > 0 && isLetter(s[a-1]) {
		// "IPv6:2001:db8::1" gives the run "6:2001:db8::1": drop the
		// tail of the word.
		if k := strings.IndexByte(s[x:y], ':'); k > 0 && x+k+1 < y {
			starts[2] = x + k + 1
		}
	}
	for _, st := range starts {
		if st < 0 {
			continue
		}
		ends := [3]int{y, -1, -1}
		if s[y-1] == ':' && y-1 > st && s[y-2] != ':' {
			// "192.0.2.1:" before more text; "2001:db8::" keeps its colons.
			ends[1] = y - 1
		}
		if k := strings.IndexByte(s[st:y], ':'); k > 0 && strings.IndexByte(s[st:st+k], '.') >= 0 {
			// "192.0.2.1:22": IPv4 and a port.
			ends[2] = st + k
		}
		for _, en := range ends {
			if en <= st {
				continue
			}
			if next, ok := c.candidate(s, st, en, b); ok {
				return next
			}
		}
	}
	return b
}

// candidate tries s[x:y] as an address. b is the end of its run.
func (c *collector) candidate(s string, x, y, b int) (next int, ok bool) {
	if !boundedLeft(s, x) || !boundedRight(s, y) {
		return 0, false
	}
	sub := s[x:y]
	addr, err := netip.ParseAddr(sub)
	ambiguous := false
	if err != nil {
		if !leadingZeroQuad(sub) {
			return 0, false
		}
		ambiguous = true
	} else if addr.Is6() {
		// Words made of hex letters and colons ("face::", "dead::beef")
		// parse as IPv6; real client addresses have a decimal digit in
		// their normal form. "::" is kept so that it can be refused.
		if n := addr.Unmap().String(); n != "::" && !strings.ContainsAny(n, "0123456789") {
			return 0, false
		}
	}

	end := y
	if !ambiguous && addr.Is6() && end < len(s) && s[end] == '%' {
		z := end + 1
		for z < len(s) && (isWord(s[z]) || s[z] == '-') && z-end <= maxZone {
			z++
		}
		if z > end+1 && (z == len(s) || !isWord(s[z]) && s[z] != '-') {
			// The zone names an interface on the user's machine; it
			// never matters to the firewall.
			end = z
		}
	}
	hostBits := 32
	if !ambiguous {
		hostBits = addr.BitLen()
	}
	pbits := -1
	if end < len(s) && s[end] == '/' {
		if n, pe, ok := prefixLen(s, end+1, hostBits); ok {
			pbits, end = n, pe
		}
	}
	next = max(b, end)
	text := s[x:end]

	if pbits >= 0 && pbits < hostBits {
		key := text
		if !ambiguous {
			if p, err := addr.WithZone("").Prefix(pbits); err == nil {
				key = p.String()
			}
		}
		c.add("cidr\x00"+key, item{text: text, reason: ReasonCIDR})
		return next, true
	}
	// No prefix, or /32 or /128 as sshguard writes a single host
	// (Blocking "192.0.2.12/32").
	if ambiguous {
		c.add("ambiguous\x00"+text, item{text: text, reason: ReasonAmbiguous})
		return next, true
	}
	addr = addr.WithZone("").Unmap()
	if r := special(addr); r != "" {
		c.add(r+"\x00"+addr.String(), item{text: text, reason: r})
		return next, true
	}
	n := addr.String()
	c.add("addr\x00"+n, item{text: text, addr: n})
	return next, true
}

// maxZone bounds the zone after "%" (interface names have at most 15
// bytes on Linux), so that the text of a refusal stays short: a longer one
// is left out of the address.
const maxZone = 32

// boundedLeft reports whether an address may start at s[x]: what precedes
// it (past any dots) is not part of a word, except that "IP192.0.2.1" is
// read as a label and an address.
func boundedLeft(s string, x int) bool {
	p := x
	for p > 0 && s[p-1] == '.' {
		p--
	}
	if p == 0 || !isWord(s[p-1]) {
		return true
	}
	return p == x && p >= 2 && strings.EqualFold(s[p-2:p], "ip") && (p == 2 || !isWord(s[p-3]))
}

// boundedRight reports whether an address may end at s[y]: what follows
// (past any dots: "192.0.2.1.jp" is a name) is not part of a word.
func boundedRight(s string, y int) bool {
	q := y
	for q < len(s) && s[q] == '.' {
		q++
	}
	return q == len(s) || !isWord(s[q])
}

// prefixLen reads a prefix length at s[i:], after "/": decimal ("/24") or,
// for IPv4, a dotted netmask ("/255.255.255.0"). Anything else means the
// slash was just punctuation ("192.0.2.1/192.0.2.2", a URL path).
func prefixLen(s string, i, hostBits int) (n, end int, ok bool) {
	d := i
	for d < len(s) && isDigit(s[d]) && d-i < 4 {
		d++
	}
	if d == i {
		return 0, 0, false
	}
	dotted := d+1 < len(s) && s[d] == '.' && isDigit(s[d+1])
	if d-i <= 3 && !dotted && !(d < len(s) && isWord(s[d])) {
		n, err := strconv.Atoi(s[i:d])
		if err != nil || n > hostBits {
			return 0, 0, false
		}
		return n, d, true
	}
	if hostBits != 32 {
		return 0, 0, false
	}
	e := i
	for e < len(s) && (isDigit(s[e]) || s[e] == '.') && e-i < len("255.255.255.255")+1 {
		e++
	}
	for e > i && s[e-1] == '.' {
		e--
	}
	if !boundedRight(s, e) {
		return 0, 0, false
	}
	m, err := netip.ParseAddr(s[i:e])
	if err != nil || !m.Is4() {
		return 0, 0, false
	}
	b4 := m.As4()
	inv := ^(uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3]))
	if inv&(inv+1) != 0 {
		return 0, 0, false // not a netmask: ones then zeros
	}
	return 32 - bits.OnesCount32(inv), e, true
}

// leadingZeroQuad reports a dotted quad that is an IPv4 address but for a
// leading zero in some octet ("192.168.001.010"), which netip rejects.
func leadingZeroQuad(s string) bool {
	parts := 0
	zero := false
	for len(s) > 0 {
		k := 0
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k == 0 || k > 3 {
			return false
		}
		if v, _ := strconv.Atoi(s[:k]); v > 255 {
			return false
		}
		zero = zero || k > 1 && s[0] == '0'
		if parts++; parts > 4 {
			return false
		}
		s = s[k:]
		if len(s) > 0 {
			if s[0] != '.' {
				return false
			}
			s = s[1:]
			if len(s) == 0 {
				return false
			}
		}
	}
	return parts == 4 && zero
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// special says why an unmapped, zone-less address is not one remote host,
// or "" when it is. Private, ULA and documentation addresses are fine:
// offices reach the servers over VPNs.
func special(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return ReasonUnspecified
	case a.IsLoopback():
		return ReasonLoopback
	case a.IsMulticast():
		return ReasonMulticast
	case a.IsLinkLocalUnicast():
		return ReasonLinkLocal
	case a == broadcast:
		return ReasonBroadcast
	}
	return ""
}
