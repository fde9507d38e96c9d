// Package simhost is a SIMULATED sshguard host for the local mode on
// machines that cannot run the real one (not root, or sshguard not
// installed). It keeps its blocks in memory and answers the unban and report
// documents with the same JSON as host/sshguard-unban.sh and
// host/sshguard-report.sh. Everything it prints is labelled "simulated", and
// no test of the host scripts uses it: those run a real sshguard.
package simhost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"sshguard-unban/shared/hostreport"
)

// Backend is what the simulated host reports as its firewall backend.
const Backend = "simulated"

// Host is one simulated host.
type Host struct {
	Name string
	// Documents maps SSM document names to "unban" or "report".
	Documents map[string]string

	mu     sync.Mutex
	blocks []netip.Prefix
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

// Run implements the ssmfake Runner: it answers the two documents.
func (h *Host) Run(_ context.Context, document string, params map[string][]string) ([]byte, []byte, int, error) {
	switch h.Documents[document] {
	case "unban":
		return h.unban(params["addresses"])
	case "report":
		return h.report()
	}
	return nil, []byte("simhost: unknown document " + document), 1, nil
}

func (h *Host) unban(args []string) ([]byte, []byte, int, error) {
	out := hostreport.Unban{Host: h.Name, Backend: Backend, Results: []hostreport.AddressResult{}}
	var addrs []netip.Addr
	for _, a := range args {
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" || addr.Unmap().String() != a {
			out.Error, out.Code = fmt.Sprintf("not a plain IP address: %q", a), "bad_address"
			return marshal(out), nil, 2, nil
		}
		addrs = append(addrs, addr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range addrs {
		r := hostreport.AddressResult{Address: a.String(), Removed: []string{}}
		h.blocks = slices.DeleteFunc(h.blocks, func(p netip.Prefix) bool {
			if p.Contains(a) {
				r.WasBlocked = true
				r.Removed = append(r.Removed, entryString(p))
				return true
			}
			return false
		})
		out.Results = append(out.Results, r)
	}
	return marshal(out), nil, 0, nil
}

func (h *Host) report() ([]byte, []byte, int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := hostreport.Report{Host: h.Name, Time: time.Now().UTC().Format(time.RFC3339), Backend: Backend, Entries: []hostreport.Entry{}}
	for _, p := range h.blocks {
		fam := 4
		if p.Addr().Is6() {
			fam = 6
		}
		out.Entries = append(out.Entries, hostreport.Entry{Entry: entryString(p), Family: fam})
	}
	return marshal(out), nil, 0, nil
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
