// Package simhost is a SIMULATED sshguard host for the local mode on
// machines that cannot run the real one (not root, or sshguard not
// installed), and for the state machine tests. It keeps its blocks in memory
// and answers the unban and report documents with the same JSON as
// host/sshguard-unban.sh and host/sshguard-report.sh, with the same
// semantics: exactly the asked address is freed, a containing prefix stays
// blocked and the address gets an exception from it (ExceptionTime), and
// the unban prints the post-unban report. Everything it prints is labelled
// "simulated"; the host scripts' own tests run a real sshguard.
package simhost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmcmd"
)

// Backend is what the simulated host reports as its firewall backend.
const Backend = "simulated"

// Host is one simulated host.
type Host struct {
	Name string
	// Documents maps SSM document names to "unban" or "report".
	Documents map[string]string
	// Addresses are the host's own, as its report gives them.
	Addresses []string

	mu         sync.Mutex
	blocks     []netip.Prefix
	exceptions map[netip.Addr]time.Time // address → expiry
}

// ExceptionTime is how long an exception from a containing prefix lasts
// (the scripts' default with Debian's BLOCK_TIME of 120 s: 30 × 120 s).
const ExceptionTime = time.Hour

// Blocks reports whether the host's firewall drops packets from addr: a
// block contains it and no live exception exempts it.
func (h *Host) Blocks(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if exp, ok := h.exceptions[a]; ok && time.Now().Before(exp) {
		return false
	}
	for _, p := range h.blocks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Block adds a block, as sshguard would after an attack.
func (h *Host) Block(entry string) error {
	p, err := parseEntry(entry)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.blocks, p) {
		h.blocks = append(h.blocks, p)
	}
	return nil
}

// Blocked lists the current blocks.
func (h *Host) Blocked() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.blocks))
	for _, p := range h.blocks {
		out = append(out, entryString(p))
	}
	return out
}

// Run implements the ssmfake Runner: it answers the two documents, with
// the digest of stdout on stderr as the real scripts print it.
func (h *Host) Run(_ context.Context, document string, params map[string][]string) ([]byte, []byte, int, error) {
	var out []byte
	var code int
	switch h.Documents[document] {
	case "unban":
		out, code = h.unban(params["addresses"])
	case "report":
		out, code = h.report()
	default:
		return nil, []byte("simhost: unknown document " + document), 1, nil
	}
	return out, []byte(ssmcmd.DigestLine(out)), code, nil
}

func (h *Host) unban(args []string) ([]byte, int) {
	out := hostreport.Unban{Host: h.Name, Backend: Backend, Results: []hostreport.AddressResult{}}
	var addrs []netip.Addr
	for _, a := range args {
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" || addr.Unmap().String() != a {
			out.Error, out.Code = fmt.Sprintf("not a plain IP address: %q", a), "bad_address"
			return marshal(out), 2
		}
		addrs = append(addrs, addr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for _, a := range addrs {
		r := hostreport.AddressResult{Address: a.String(), BlockedBy: []string{}, Removed: []string{}}
		var containing []string
		h.blocks = slices.DeleteFunc(h.blocks, func(p netip.Prefix) bool {
			if !p.Contains(a) {
				return false
			}
			r.BlockedBy = append(r.BlockedBy, entryString(p))
			if p.IsSingleIP() {
				r.Removed = append(r.Removed, entryString(p))
				return true
			}
			containing = append(containing, entryString(p))
			return false
		})
		if exp, ok := h.exceptions[a]; ok && now.Before(exp) {
			containing = nil // already exempt: nothing blocks it
		}
		r.WasBlocked = len(r.Removed) > 0 || len(containing) > 0
		if len(containing) > 0 {
			if h.exceptions == nil {
				h.exceptions = map[netip.Addr]time.Time{}
			}
			exp := now.Add(ExceptionTime)
			h.exceptions[a] = exp
			r.Exception = &hostreport.Exception{Address: a.String(), Entries: containing, Expires: exp.UTC().Format(time.RFC3339)}
		}
		out.Results = append(out.Results, r)
	}
	rep := h.reportLocked()
	out.Report = &rep
	return marshal(out), 0
}

func (h *Host) report() ([]byte, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return marshal(h.reportLocked()), 0
}

// reportLocked is the host's report; live exceptions are listed, ended ones
// dropped, as the scripts do.
func (h *Host) reportLocked() hostreport.Report {
	out := hostreport.Report{Host: h.Name, Time: time.Now().UTC().Format(time.RFC3339), Backend: Backend, Entries: []hostreport.Entry{}, Addresses: h.Addresses,
		Settings: &hostreport.Settings{BlockTime: 120, DetectionTime: 1800, Threshold: 30, IPv4Subnet: 32, IPv6Subnet: 128, ExceptionSeconds: int(ExceptionTime / time.Second)}}
	for _, p := range h.blocks {
		fam := 4
		if p.Addr().Is6() {
			fam = 6
		}
		out.Entries = append(out.Entries, hostreport.Entry{Entry: entryString(p), Family: fam})
	}
	now := time.Now()
	for a, exp := range h.exceptions {
		var in []string
		for _, p := range h.blocks {
			if !p.IsSingleIP() && p.Contains(a) {
				in = append(in, entryString(p))
			}
		}
		if !now.Before(exp) || len(in) == 0 {
			delete(h.exceptions, a) // ended, or its prefix was released
			continue
		}
		out.Exceptions = append(out.Exceptions, hostreport.Exception{Address: a.String(), Entries: in, Expires: exp.UTC().Format(time.RFC3339)})
	}
	slices.SortFunc(out.Exceptions, func(x, y hostreport.Exception) int { return strings.Compare(x.Address, y.Address) })
	return out
}

func parseEntry(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// entryString prints host prefixes as plain addresses, like the scripts.
func entryString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v)
	return append(b, '\n')
}
