package host_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
)

// TestBlacklistedIsNotSelfService: an address on sshguard's blacklist, or
// inside a blocked prefix that holds a blacklisted address, is reported and
// nothing at all changes: firewall, blacklist file, exceptions; it still
// cannot connect, and the report's garbage collection leaves it alone too.
func TestBlacklistedIsNotSelfService(t *testing.T) {
	labtest.Require(t)
	cases := []struct {
		name     string
		subnet   int
		asked    string
		blockers []string // entries containing it
	}{
		{"the address itself", 0, "198.51.100.7", []string{"198.51.100.7"}},
		{"inside a blacklisted /24", 24, "198.51.100.5", []string{"198.51.100.0/24"}},
	}
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					h := labtest.Start(t, lab.Options{Backend: backend, Network: true, IPv4Subnet: c.subnet,
						Blacklist: true, Blacklisted: []string{"198.51.100.7"}})
					before := blocked(t, h)
					bl, inode := readFile(t, h.BlacklistFile)
					st, err := os.Stat(h.BlacklistFile)
					if err != nil {
						t.Fatal(err)
					}
					u := mustUnban(t, h, c.asked)
					r := u.Results[0]
					if !r.Blacklisted || !r.WasBlocked || !r.StillBlocked || r.BlacklistRemoved || r.Exception != nil ||
						len(r.Removed) != 0 || !slices.Equal(r.BlockedBy, c.blockers) {
						t.Errorf("result %+v", r)
					}
					report(t, h)
					if after := blocked(t, h); !slices.Equal(after, before) {
						t.Errorf("firewall %q, was %q", after, before)
					}
					if x := exceptions(t, h); len(x) != 0 {
						t.Errorf("exceptions %q", x)
					}
					bl2, inode2 := readFile(t, h.BlacklistFile)
					st2, err := os.Stat(h.BlacklistFile)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(bl, bl2) || inode != inode2 || !st.ModTime().Equal(st2.ModTime()) {
						t.Errorf("blacklist touched: %q -> %q", bl, bl2)
					}
					connects(t, h, "after the unban", map[string]bool{c.asked: false, "198.51.100.7": false})
				})
			}
		})
	}
}

// TestBlacklistOverride: an SRE removes blacklisted addresses on purpose
// (--remove-blacklisted, the document's removeBlacklisted). The firewall
// entry and the blacklist line go, the file is rewritten in place, the
// blocker runs again and no helper process is left; and what sshguard does
// next is what the result says: an address it blacklisted while running
// stays in its memory (its failed logins are ignored until a restart), one
// blacklisted before it started is counted again.
func TestBlacklistOverride(t *testing.T) {
	labtest.Require(t)
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// Every block blacklists (threshold: one attack).
			h := labtest.Start(t, lab.Options{Backend: backend, Network: true, Blacklist: true, BlacklistThreshold: 10,
				Blacklisted: []string{"198.51.100.7"}})
			attack(t, h, "192.0.2.9", "192.0.2.10")
			_, inode := readFile(t, h.BlacklistFile)
			connects(t, h, "before", map[string]bool{"192.0.2.9": false, "198.51.100.7": false})

			u := mustUnban(t, h, "--remove-blacklisted", "192.0.2.9", "198.51.100.7")
			for _, r := range u.Results {
				runtime := r.Address == "192.0.2.9"
				if !r.Blacklisted || !r.BlacklistRemoved || r.StillBlocked || !slices.Equal(r.Removed, []string{r.Address}) ||
					r.IgnoredUntilRestart != runtime {
					t.Errorf("result %+v", r)
				}
			}
			content, inode2 := readFile(t, h.BlacklistFile)
			if got := blacklistAddrs(t, content); !slices.Equal(got, []string{"192.0.2.10"}) {
				t.Errorf("blacklist keeps %q", got)
			}
			if inode2 != inode {
				t.Error("blacklist replaced, not rewritten in place")
			}
			connects(t, h, "after", map[string]bool{"192.0.2.9": true, "198.51.100.7": true, "192.0.2.10": false})
			if left := helpers(t, h); len(left) != 0 {
				t.Errorf("processes left in the namespace: %q", left)
			}

			// What sshguard does next (measured on 2.4.2).
			for _, a := range []string{"192.0.2.9", "198.51.100.7"} {
				if err := h.LogFailure(netip.MustParseAddr(a)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 5*time.Second, "blocker did not resume", func() bool {
				return strings.Contains(h.DebugText(), "192.0.2.9 has already been blocked.") &&
					strings.Contains(h.DebugText(), `Blocking "198.51.100.7/32" forever`)
			})
			// sshguard logs the block just before its backend adds it.
			waitFor(t, 5*time.Second, "198.51.100.7 not blocked after its failed login", func() bool {
				got, err := h.CanConnectAll(context.Background(), netip.MustParseAddr("198.51.100.7"))
				return err == nil && !got[netip.MustParseAddr("198.51.100.7")]
			})
			connects(t, h, "after failed logins", map[string]bool{"192.0.2.9": true, "198.51.100.7": false})
		})
	}
}

// helpers lists processes in the host's namespace that are not sshguard's.
func helpers(t *testing.T, h *lab.Host) []string {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command("ip", "netns", "pids", h.NS).Output()
		if err != nil {
			t.Fatal(err)
		}
		left = nil
		for _, p := range strings.Fields(string(out)) {
			comm, _ := os.ReadFile("/proc/" + p + "/comm")
			c := strings.TrimSpace(string(comm))
			switch c {
			case "sshguard", "sshg-logtail", "sshg-parser", "sshg-blocker", "sshg-fw-nft-set", "sshg-fw-iptable", "sshg-fw-ipset", "tail", "": // comm: 15 bytes
			default:
				left = append(left, c)
			}
		}
		if len(left) == 0 {
			break
		}
	}
	return left
}

// TestBlacklistOverrideKeepsConcurrentAppends: sshguard appends to its
// blacklist every few milliseconds (a stream of attackers, each blacklisted
// at once) while an SRE removes addresses one by one. Not one of sshguard's
// lines is lost and every removed address is gone: the blocker is stopped
// from before the script reads the file to after it wrote it back.
func TestBlacklistOverrideKeepsConcurrentAppends(t *testing.T) {
	labtest.Require(t)
	const removals = 25
	var seeds []string
	for i := 1; i <= removals; i++ {
		seeds = append(seeds, fmt.Sprintf("198.51.100.%d", i))
	}
	h := labtest.Start(t, lab.Options{Blacklist: true, BlacklistThreshold: 10, Blacklisted: seeds})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	fed := 0
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			a := netip.AddrFrom4([4]byte{203, 0, byte(113 + i/250), byte(i%250 + 1)})
			if i%2 == 1 {
				a = netip.MustParseAddr(fmt.Sprintf("2001:db8:a::%x", i))
			}
			if err := h.LogFailure(a); err != nil {
				t.Error(err)
				return
			}
			fed++
			time.Sleep(3 * time.Millisecond)
		}
	}()
	// Let the stream start, then remove the seeds while it runs.
	waitFor(t, 10*time.Second, "sshguard does not blacklist the stream", func() bool {
		return strings.Count(h.DebugText(), "blacklist: added") >= 20
	})
	for _, s := range seeds {
		u := mustUnban(t, h, "--remove-blacklisted", s)
		if !u.Results[0].BlacklistRemoved {
			t.Errorf("%s: %+v", s, u.Results[0])
		}
	}
	stop()
	wg.Wait()
	// sshguard logs "added" before it flushes the line: wait for the file
	// to settle.
	added := func() []string {
		var out []string
		for _, l := range strings.Split(h.DebugText(), "\n") {
			if _, a, ok := strings.Cut(l, "blacklist: added "); ok {
				out = append(out, strings.TrimSpace(a))
			}
		}
		slices.Sort(out)
		return out
	}
	var want, got []string
	prev, still := "", 0
	waitFor(t, 10*time.Second, "blacklist file does not settle", func() bool {
		content, _ := readFile(t, h.BlacklistFile)
		if string(content) == prev {
			still++
		} else {
			prev, still = string(content), 0
		}
		return still >= 5
	})
	want = added()
	got = blacklistAddrs(t, []byte(prev))
	slices.Sort(got)
	for _, a := range want {
		if !slices.Contains(got, a) {
			t.Errorf("lost %s: sshguard appended it, the file does not have it", a)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the file holds %d lines, sshguard appended %d", len(got), len(want))
	}
	t.Logf("%d attacks fed, %d lines appended by sshguard, %d removed by the script meanwhile", fed, len(want), removals)
	if len(want) < 100 {
		t.Errorf("only %d appends: not a concurrent load", len(want))
	}
	for _, s := range seeds {
		if slices.Contains(got, s) {
			t.Errorf("%s still blacklisted", s)
		}
	}
}
