package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Blocked reads the host's firewall directly (not through the host scripts,
// so tests can check the scripts against it) and returns sshguard's blocked
// entries, normalized as the scripts print them: an address ("192.0.2.1",
// "2001:db8::1"), a prefix ("192.0.2.0/24") or, for nft ranges nobody but an
// admin makes, "first-last". Sorted.
func (h *Host) Blocked(ctx context.Context) ([]string, error) {
	var raw []string
	for _, fam := range []int{4, 6} {
		var (
			entries []string
			err     error
		)
		switch h.Backend {
		case "nft-sets":
			entries, err = h.nftEntries(ctx, fam)
		case "iptables":
			entries, err = h.iptablesEntries(ctx, fam)
		case "ipset":
			entries, err = h.ipsetEntries(ctx, fam)
		default:
			err = fmt.Errorf("unknown backend %q", h.Backend)
		}
		if err != nil {
			return nil, fmt.Errorf("lab: read firewall: %w", err)
		}
		raw = append(raw, entries...)
	}
	out := make([]string, 0, len(raw))
	for _, e := range raw {
		n, err := Normalize(e)
		if err != nil {
			return nil, fmt.Errorf("lab: read firewall: %w", err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// nftEntries reads "nft -j list set": elements are strings, {"prefix":
// {"addr","len"}}, {"range":[a,b]}, or any of these wrapped in {"elem":
// {"val":…}} when they carry timeouts or counters.
func (h *Host) nftEntries(ctx context.Context, fam int) ([]string, error) {
	out, err := h.Command(ctx, "nft", "-j", "list", "set", nftFamily(fam), "sshguard", "attackers")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft -j: %w", err)
	}
	var entries []string
	for _, item := range doc.Nftables {
		if item.Set == nil {
			continue
		}
		for _, raw := range item.Set.Elem {
			e, err := nftElem(raw)
			if err != nil {
				return nil, err
			}
			entries = append(entries, e)
		}
	}
	return entries, nil
}

func nftElem(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var v struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
		Elem  *struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("nft element %s: %w", raw, err)
	}
	switch {
	case v.Prefix != nil:
		return fmt.Sprintf("%s/%d", v.Prefix.Addr, v.Prefix.Len), nil
	case len(v.Range) == 2:
		return v.Range[0] + "-" + v.Range[1], nil
	case v.Elem != nil:
		return nftElem(v.Elem.Val)
	}
	return "", fmt.Errorf("nft element %s: unknown form", raw)
}

// iptablesEntries reads the rules sshguard inserts: -A sshguard -s X -j DROP.
func (h *Host) iptablesEntries(ctx context.Context, fam int) ([]string, error) {
	out, err := h.Command(ctx, iptablesCmd(fam), "-w", "-S", "sshguard")
	if err != nil {
		return nil, err
	}
	var entries []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 6 && f[0] == "-A" && f[1] == "sshguard" && f[2] == "-s" && f[4] == "-j" && f[5] == "DROP" {
			entries = append(entries, f[3])
		}
	}
	return entries, sc.Err()
}

func (h *Host) ipsetEntries(ctx context.Context, fam int) ([]string, error) {
	set := fmt.Sprintf("sshguard%d", fam)
	out, err := h.Command(ctx, "ipset", "save", set)
	if err != nil {
		return nil, err
	}
	var entries []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// A nomatch element is an exception (sshguard-unban's), not a block.
		if len(f) >= 3 && f[0] == "add" && f[1] == set && !slices.Contains(f[3:], "nomatch") {
			entries = append(entries, f[2])
		}
	}
	return entries, sc.Err()
}

// AddEntries puts addresses or prefixes straight into sshguard's firewall
// objects, in one bulk command per family (nft -f, ipset restore,
// iptables-restore --noflush): a fast way to make a host that holds thousands
// of blocks, which sshguard itself does not know about.
func (h *Host) AddEntries(ctx context.Context, entries []string) error {
	byFam := map[int][]string{}
	for _, e := range entries {
		n, err := Normalize(e)
		if err != nil || strings.Contains(n, "-") {
			return fmt.Errorf("lab: add entries: %q is not an address or prefix", e)
		}
		p, _ := entryRange(n)
		fam := 4
		if p.lo.Is6() {
			fam = 6
		}
		byFam[fam] = append(byFam[fam], n)
	}
	for _, fam := range []int{4, 6} {
		list := byFam[fam]
		if len(list) == 0 {
			continue
		}
		var b strings.Builder
		var err error
		switch h.Backend {
		case "nft-sets":
			fmt.Fprintf(&b, "add element %s sshguard attackers { %s }\n", nftFamily(fam), strings.Join(list, ", "))
			_, err = h.CommandInput(ctx, []byte(b.String()), "nft", "-f", "-")
		case "ipset":
			for _, e := range list {
				fmt.Fprintf(&b, "add sshguard%d %s\n", fam, e)
			}
			_, err = h.CommandInput(ctx, []byte(b.String()), "ipset", "restore", "-exist")
		case "iptables":
			b.WriteString("*filter\n")
			for _, e := range list {
				if !strings.Contains(e, "/") {
					e += map[int]string{4: "/32", 6: "/128"}[fam]
				}
				fmt.Fprintf(&b, "-A sshguard -s %s -j DROP\n", e)
			}
			b.WriteString("COMMIT\n")
			_, err = h.CommandInput(ctx, []byte(b.String()), iptablesCmd(fam)+"-restore", "-w", "--noflush")
		}
		if err != nil {
			return fmt.Errorf("lab: add entries: %w", err)
		}
	}
	return nil
}

func nftFamily(fam int) string {
	if fam == 6 {
		return "ip6"
	}
	return "ip"
}

func iptablesCmd(fam int) string {
	if fam == 6 {
		return "ip6tables"
	}
	return "iptables"
}

// Normalize returns the canonical text of a firewall entry: an address as
// net/netip prints it (a /32 or /128 prefix becomes the address), a prefix
// with its host bits cleared, a range as "first-last".
func Normalize(entry string) (string, error) {
	if first, last, ok := strings.Cut(entry, "-"); ok {
		lo, err1 := netip.ParseAddr(first)
		hi, err2 := netip.ParseAddr(last)
		if err1 != nil || err2 != nil || lo.Is4() != hi.Is4() || hi.Less(lo) {
			return "", fmt.Errorf("bad range %q", entry)
		}
		return lo.String() + "-" + hi.String(), nil
	}
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return "", err
		}
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String(), nil
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(entry)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

type addrRange struct{ lo, hi netip.Addr }

// entryRange is the first and last address of a normalized entry.
func entryRange(entry string) (addrRange, bool) {
	if first, last, ok := strings.Cut(entry, "-"); ok {
		lo, err1 := netip.ParseAddr(first)
		hi, err2 := netip.ParseAddr(last)
		return addrRange{lo, hi}, err1 == nil && err2 == nil
	}
	if !strings.Contains(entry, "/") {
		a, err := netip.ParseAddr(entry)
		return addrRange{a, a}, err == nil
	}
	p, err := netip.ParsePrefix(entry)
	if err != nil {
		return addrRange{}, false
	}
	p = p.Masked()
	lo := p.Addr()
	hi := lo.As16()
	for i := p.Bits(); i < lo.BitLen(); i++ {
		bit := i
		if lo.Is4() {
			bit += 96 // As16 holds an IPv4 address in its last 4 bytes
		}
		hi[bit/8] |= 0x80 >> (bit % 8)
	}
	h := netip.AddrFrom16(hi)
	if lo.Is4() {
		h = h.Unmap()
	}
	return addrRange{lo, h}, true
}

// Contains reports whether one of the entries is a or contains it.
func Contains(entries []string, a netip.Addr) bool {
	a = a.Unmap()
	for _, e := range entries {
		r, ok := entryRange(e)
		if ok && r.lo.Is4() == a.Is4() && !a.Less(r.lo) && !r.hi.Less(a) {
			return true
		}
	}
	return false
}

// Exceptions reads, straight from the firewall, what sshguard-unban.sh adds
// to exempt an address from a containing block, as "ADDRESS" strings
// (sorted): the elements of the nft set unban_exceptions, the iptables
// RETURN rules in chain sshguard, the nomatch elements of the ipset sets.
// Tests use it to see that nothing is left behind.
func (h *Host) Exceptions(ctx context.Context) ([]string, error) {
	var out []string
	for _, fam := range []int{4, 6} {
		switch h.Backend {
		case "nft-sets":
			b, err := h.Command(ctx, "nft", "-j", "list", "table", nftFamily(fam), "sshguard")
			if err != nil {
				return nil, fmt.Errorf("lab: read exceptions: %w", err)
			}
			var doc struct {
				Nftables []struct {
					Set *struct {
						Name string            `json:"name"`
						Elem []json.RawMessage `json:"elem"`
					} `json:"set"`
				} `json:"nftables"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				return nil, fmt.Errorf("lab: read exceptions: %w", err)
			}
			for _, item := range doc.Nftables {
				if item.Set == nil || item.Set.Name != "unban_exceptions" {
					continue
				}
				for _, raw := range item.Set.Elem {
					e, err := nftElem(raw)
					if err != nil {
						return nil, err
					}
					out = append(out, e)
				}
			}
		case "iptables":
			b, err := h.Command(ctx, iptablesCmd(fam), "-w", "-S", "sshguard")
			if err != nil {
				return nil, fmt.Errorf("lab: read exceptions: %w", err)
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) > 4 && f[0] == "-A" && f[2] == "-s" && f[len(f)-1] == "RETURN" {
					out = append(out, f[3])
				}
			}
		case "ipset":
			b, err := h.Command(ctx, "ipset", "save", fmt.Sprintf("sshguard%d", fam))
			if err != nil {
				return nil, fmt.Errorf("lab: read exceptions: %w", err)
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) >= 4 && f[0] == "add" && slices.Contains(f[3:], "nomatch") {
					out = append(out, f[2])
				}
			}
		}
	}
	for i, e := range out {
		n, err := Normalize(e)
		if err != nil {
			return nil, fmt.Errorf("lab: read exceptions: %w", err)
		}
		out[i] = n
	}
	slices.Sort(out)
	return out, nil
}

// Release deletes an entry the way sshguard's backend does when its timer
// ends ("release ADDR FAMILY LEN": sshg-fw-nft-sets deletes the element,
// sshg-fw-iptables the DROP rule, sshg-fw-ipset the element, -exist): for
// tests that need sshguard's release without waiting for it.
func (h *Host) Release(ctx context.Context, entry string) error {
	n, err := Normalize(entry)
	if err != nil || strings.Contains(n, "-") {
		return fmt.Errorf("lab: release: %q is not an address or prefix", entry)
	}
	p, _ := entryRange(n)
	fam := 4
	if p.lo.Is6() {
		fam = 6
	}
	switch h.Backend {
	case "nft-sets":
		_, err = h.Command(ctx, "nft", "delete", "element", nftFamily(fam), "sshguard", "attackers", "{ "+n+" }")
	case "iptables":
		if !strings.Contains(n, "/") {
			n += map[int]string{4: "/32", 6: "/128"}[fam]
		}
		_, err = h.Command(ctx, iptablesCmd(fam), "-w", "-D", "sshguard", "-s", n, "-j", "DROP")
	case "ipset":
		_, err = h.Command(ctx, "ipset", "-quiet", "del", "-exist", fmt.Sprintf("sshguard%d", fam), n)
	}
	if err != nil {
		return fmt.Errorf("lab: release: %w", err)
	}
	return nil
}
