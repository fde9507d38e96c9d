package host_test

import (
	"context"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
	"sshguard-unban/shared/hostreport"
)

// TestFreesExactlyOneAddress is the user's side, judged by real packets: an
// attacker gets a whole prefix blocked, an employee inside it asks, and
// afterwards the employee connects while the attacker and the other
// neighbours still cannot, on every backend.
func TestFreesExactlyOneAddress(t *testing.T) {
	labtest.Require(t)
	type scenario struct {
		name      string
		opts      lab.Options
		attack    []string // through sshguard
		added     []string // blocks an admin added by hand
		employee  string
		blocked   []string // must stay blocked
		free      []string // never blocked
		wantEntry string   // the entry the employee was in
		removed   bool     // the employee's own entry is deleted
	}
	scenarios := []scenario{{
		name: "IPV4_SUBNET=24", opts: lab.Options{IPv4Subnet: 24},
		attack: []string{"192.0.2.66"}, employee: "192.0.2.5",
		blocked: []string{"192.0.2.66", "192.0.2.7", "192.0.2.255"}, free: []string{"198.51.100.9"},
		wantEntry: "192.0.2.0/24",
	}, {
		name: "IPV6_SUBNET=64", opts: lab.Options{IPv6Subnet: 64},
		attack: []string{"2001:db8:1::66"}, employee: "2001:db8:1::5",
		blocked: []string{"2001:db8:1::66", "2001:db8:1::7", "2001:db8:1:0:ffff::1"}, free: []string{"2001:db8:2::5"},
		wantEntry: "2001:db8:1::/64",
	}, {
		name: "a /16 added by hand", added: []string{"198.51.0.0/16"}, employee: "198.51.100.5",
		blocked: []string{"198.51.100.6", "198.51.7.7"}, free: []string{"192.0.2.1"},
		wantEntry: "198.51.0.0/16",
	}, {
		// Without subnet blocking the employee's own entry goes, and an
		// attacker blocked beside it stays.
		name: "single addresses", attack: []string{"192.0.2.5", "192.0.2.6"}, employee: "192.0.2.5",
		blocked: []string{"192.0.2.6"}, free: []string{"192.0.2.7"},
		wantEntry: "192.0.2.5", removed: true,
	}}
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					opts := sc.opts
					opts.Backend, opts.Network = backend, true
					h := labtest.Start(t, opts)
					attack(t, h, sc.attack...)
					if err := h.AddEntries(context.Background(), sc.added); len(sc.added) > 0 && err != nil {
						t.Fatal(err)
					}
					want := map[string]bool{sc.employee: false}
					for _, a := range sc.blocked {
						want[a] = false
					}
					for _, a := range sc.free {
						want[a] = true
					}
					connects(t, h, "before the unban", want)
					before := blocked(t, h)

					u := mustUnban(t, h, sc.employee)
					r := u.Results[0]
					if !r.WasBlocked || r.StillBlocked || !slices.Equal(r.BlockedBy, []string{sc.wantEntry}) {
						t.Errorf("result %+v", r)
					}
					if sc.removed {
						if !slices.Equal(r.Removed, []string{sc.employee}) || r.Exception != nil {
							t.Errorf("result %+v, want %s removed", r, sc.employee)
						}
					} else if len(r.Removed) != 0 || r.Exception == nil || !slices.Equal(r.Exception.Entries, []string{sc.wantEntry}) {
						t.Errorf("result %+v, want an exception from %s and nothing removed", r, sc.wantEntry)
					}
					want[sc.employee] = true
					connects(t, h, "after the unban", want)
					if sc.removed {
						before = without(before, sc.employee)
					}
					if after := blocked(t, h); !slices.Equal(after, before) {
						t.Errorf("firewall %q, want %q", after, before)
					}
				})
			}
		})
	}
}

// TestNothingLeftBehind: sshguard's own timer (a short BLOCK_TIME) releases
// the prefix the employee was excepted from. No exception outlives it:
// the next report removes it, so when the attacker comes back and the prefix
// is blocked again the employee is blocked too. And if the prefix is blocked
// again before any report ran, the exception still ends by itself at its
// stated expiry (nft: the kernel's timeout; iptables: sshguard inserts the
// new block above it, so it is over at once; ipset: at the first run of a
// script after the expiry, every minute in production).
func TestNothingLeftBehind(t *testing.T) {
	labtest.Require(t)
	const (
		attacker  = "192.0.2.66"
		second    = "192.0.2.67"
		employee  = "192.0.2.5"
		neighbour = "192.0.2.7"
		blockTime = 3
		lifetime  = 10 // seconds, --exception-seconds
	)
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			h := labtest.Start(t, lab.Options{Backend: backend, Network: true, IPv4Subnet: 24, BlockTime: blockTime})
			prefix := netip.MustParseAddr(attacker)
			released := func() {
				t.Helper()
				waitFor(t, 20*time.Second, "sshguard never released 192.0.2.0/24", func() bool {
					return !lab.Contains(blocked(t, h), prefix)
				})
			}

			// Released, then a report, then blocked again.
			attack(t, h, attacker)
			u := mustUnban(t, h, employee)
			if x := u.Results[0].Exception; x == nil {
				t.Fatalf("no exception: %+v", u.Results[0])
			}
			connects(t, h, "excepted", map[string]bool{employee: true, attacker: false, neighbour: false})
			released()
			connects(t, h, "released by sshguard", map[string]bool{employee: true, attacker: true, neighbour: true})
			if r := report(t, h); len(r.Exceptions) != 0 {
				t.Errorf("report after the release keeps %+v", r.Exceptions)
			}
			if x := exceptions(t, h); len(x) != 0 {
				t.Errorf("left in the firewall: %q", x)
			}
			attack(t, h, attacker)
			connects(t, h, "blocked again", map[string]bool{employee: false, attacker: false, neighbour: false})

			// Released and blocked again with no report in between: the stated
			// expiry is the bound. A first offender blocks the prefix (3 s);
			// then the old attacker, on its third block (12 s), blocks it again:
			// still blocked when the exception ends after 10 s.
			released()
			attack(t, h, second)
			start := time.Now()
			u = mustUnban(t, h, "--exception-seconds", strconv.Itoa(lifetime), employee)
			expires := until(t, u.Results[0].Exception)
			if d := expires.Sub(start); d < (lifetime-1)*time.Second || d > (lifetime+1)*time.Second {
				t.Errorf("exception expires %v after the unban, want %d s", d, lifetime)
			}
			released()
			attack(t, h, attacker)
			if backend == "iptables" {
				// The new block is above the exception: it is over.
				connects(t, h, "blocked again, iptables", map[string]bool{employee: false, attacker: false})
			} else {
				connects(t, h, "blocked again within the bound", map[string]bool{employee: true, attacker: false})
			}
			time.Sleep(time.Until(expires.Add(1500 * time.Millisecond)))
			if !lab.Contains(blocked(t, h), prefix) {
				t.Fatal("sshguard released the prefix before the exception ended: the timeline above is wrong")
			}
			if backend == "ipset" {
				// The set cannot expire it: the next script run does.
				connects(t, h, "expired, no script run yet", map[string]bool{employee: true})
				report(t, h)
			}
			connects(t, h, "after the expiry", map[string]bool{employee: false, attacker: false, neighbour: false})
			if r := report(t, h); len(r.Exceptions) != 0 {
				t.Errorf("report after the expiry keeps %+v", r.Exceptions)
			}
			if x := exceptions(t, h); len(x) != 0 {
				t.Errorf("left in the firewall: %q", x)
			}
		})
	}
}

// TestGarbageCollection: the report removes exactly the exceptions that
// ended, on every backend, each case from a state made directly.
func TestGarbageCollection(t *testing.T) {
	labtest.Require(t)
	const employee = "198.51.100.5"
	cases := []struct {
		name     string
		backends []string // nil: all
		// change makes the state after the exception for employee from
		// 198.51.100.0/24 was made.
		change func(t *testing.T, h *lab.Host)
		keep   bool
	}{
		{name: "nothing happened", change: func(*testing.T, *lab.Host) {}, keep: true},
		{name: "entry released", change: func(t *testing.T, h *lab.Host) {
			if err := h.Release(context.Background(), "198.51.100.0/24"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another entry covers the address", backends: []string{"iptables", "ipset"}, // nft: intervals cannot overlap
			change: func(t *testing.T, h *lab.Host) {
				if err := h.AddEntries(context.Background(), []string{"198.51.0.0/16"}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "the address blocked itself", backends: []string{"iptables", "ipset"},
			change: func(t *testing.T, h *lab.Host) {
				if err := h.AddEntries(context.Background(), []string{employee}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "the address blacklisted since", change: func(t *testing.T, h *lab.Host) {
			appendFile(t, h.BlacklistFile, "1700000000|100|4|"+employee+"\n")
		}},
		{name: "an unrelated block", change: func(t *testing.T, h *lab.Host) {
			if err := h.AddEntries(context.Background(), []string{"203.0.113.0/24", "198.51.101.0/24"}); err != nil {
				t.Fatal(err)
			}
		}, keep: true},
	}
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			h := labtest.Start(t, lab.Options{Backend: backend, Blacklist: true})
			for _, c := range cases {
				if c.backends != nil && !slices.Contains(c.backends, backend) {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					ctx := context.Background()
					if err := h.AddEntries(ctx, []string{"198.51.100.0/24"}); err != nil {
						t.Fatal(err)
					}
					u := mustUnban(t, h, employee)
					if u.Results[0].Exception == nil {
						t.Fatalf("no exception: %+v", u.Results[0])
					}
					c.change(t, h)
					r := report(t, h)
					checkReport(t, h, r, blacklistedEntries(r)...)
					if got := len(r.Exceptions) == 1 && r.Exceptions[0].Address == employee; got != c.keep {
						t.Errorf("exceptions %+v, want kept %v", r.Exceptions, c.keep)
					}
					// Reset for the next case.
					for _, e := range blocked(t, h) {
						if err := h.Release(ctx, e); err != nil {
							t.Fatal(err)
						}
					}
					report(t, h)
					if x := exceptions(t, h); len(x) != 0 {
						t.Fatalf("exceptions left after reset: %q", x)
					}
					writeFile(t, h.BlacklistFile, "")
				})
			}
		})
	}
	t.Run("foreign and orphaned exceptions", func(t *testing.T) {
		for _, backend := range lab.Backends {
			t.Run(backend, func(t *testing.T) {
				h := labtest.Start(t, lab.Options{Backend: backend})
				ctx := context.Background()
				if err := h.AddEntries(ctx, []string{"198.51.100.0/24"}); err != nil {
					t.Fatal(err)
				}
				mustUnban(t, h, employee)
				// An exception nobody can account for: one without our
				// comment (nft, iptables) or without its record (ipset).
				switch backend {
				case "nft-sets":
					if _, err := h.Command(ctx, "nft", "add", "element", "ip", "sshguard", "unban_exceptions", "{ 198.51.100.6 timeout 1h }"); err != nil {
						t.Fatal(err)
					}
				case "iptables":
					if _, err := h.Command(ctx, "iptables", "-w", "-I", "sshguard", "1", "-s", "198.51.100.6/32", "-m", "comment", "--comment", "sshguard-unban by hand", "-j", "RETURN"); err != nil {
						t.Fatal(err)
					}
				case "ipset":
					if _, err := h.Command(ctx, "ipset", "add", "sshguard4", "198.51.100.6", "nomatch"); err != nil {
						t.Fatal(err)
					}
				}
				if x := exceptions(t, h); !slices.Equal(x, []string{employee, "198.51.100.6"}) {
					t.Fatalf("exceptions %q", x)
				}
				r := report(t, h)
				if len(r.Exceptions) != 1 || r.Exceptions[0].Address != employee {
					t.Errorf("report exceptions %+v", r.Exceptions)
				}
				if x := exceptions(t, h); !slices.Equal(x, []string{employee}) {
					t.Errorf("exceptions after the report %q", x)
				}
			})
		}
	})
}

// TestAskAgainAfterRelease: asking again for an address whose exception
// ends in the same run (sshguard released the entry before a report ran)
// frees it and tidies up, with each awk. (gawk once stopped with a fatal
// error here: the exception's lookup had created an empty element.)
func TestAskAgainAfterRelease(t *testing.T) {
	labtest.Require(t)
	const employee = "198.51.100.5"
	for _, backend := range lab.Backends {
		for _, awk := range []string{"mawk", "gawk"} {
			t.Run(backend+"/"+awk, func(t *testing.T) {
				if _, err := exec.LookPath(awk); err != nil {
					t.Skipf("%s not installed", awk)
				}
				ctx := context.Background()
				h := labtest.Start(t, lab.Options{Backend: backend, Awk: awk})
				if err := h.AddEntries(ctx, []string{"198.51.100.0/24"}); err != nil {
					t.Fatal(err)
				}
				if u := mustUnban(t, h, employee); u.Results[0].Exception == nil {
					t.Fatalf("no exception: %+v", u.Results[0])
				}
				if err := h.Release(ctx, "198.51.100.0/24"); err != nil {
					t.Fatal(err)
				}
				u := mustUnban(t, h, employee)
				r := u.Results[0]
				if r.WasBlocked || r.StillBlocked || r.Exception != nil || len(r.BlockedBy) != 0 || len(u.Report.Exceptions) != 0 {
					t.Errorf("asked again: %+v, report exceptions %+v", r, u.Report.Exceptions)
				}
				if x := exceptions(t, h); len(x) != 0 {
					t.Errorf("exceptions left: %q", x)
				}
			})
		}
	}
}

// TestRepeatBlocksDouble measures sshguard 2.4.2's block arithmetic on
// Debian, which the replies' durations rest on (hostreport.Settings): an
// address blocked for the n-th time since sshguard started is blocked for
// BLOCK_TIME × 2^(n−1), and released within BlockEnds(n) after the attack.
func TestRepeatBlocksDouble(t *testing.T) {
	labtest.Require(t)
	t.Parallel()
	const blockTime, rounds = 1, 4
	h := labtest.Start(t, lab.Options{BlockTime: blockTime})
	s := hostreport.Settings{BlockTime: blockTime}
	addr := netip.MustParseAddr("192.0.2.9")
	blockRe := regexp.MustCompile(`Blocking "192\.0\.2\.9/32" for (\d+) secs`)
	releaseRe := regexp.MustCompile(`192\.0\.2\.9: unblocking after (\d+) secs`)
	for n := 1; n <= rounds; n++ {
		start := time.Now()
		attack(t, h, addr.String())
		waitFor(t, 30*time.Second, "no release", func() bool { return !lab.Contains(blocked(t, h), addr) })
		took := time.Since(start)
		var pardon, released int
		waitFor(t, 5*time.Second, "no log lines", func() bool {
			log := h.DebugText()
			b, r := blockRe.FindAllStringSubmatch(log, -1), releaseRe.FindAllStringSubmatch(log, -1)
			if len(b) < n || len(r) < n {
				return false
			}
			pardon, _ = strconv.Atoi(b[n-1][1])
			released, _ = strconv.Atoi(r[n-1][1])
			return true
		})
		earliest, latest := s.BlockEnds(n)
		t.Logf("block %d: sshguard logged %d s, released after %d s (log), %v (firewall)", n, pardon, released, took.Round(100*time.Millisecond))
		if time.Duration(pardon)*time.Second != s.BlockPardon(n) {
			t.Errorf("block %d lasts %d s, want %v", n, pardon, s.BlockPardon(n))
		}
		if d := time.Duration(released) * time.Second; d < earliest || d > latest {
			t.Errorf("block %d released after %v, want %v to %v", n, d, earliest, latest)
		}
	}
}

// TestWhatSshguardRemembers measures what the replies may promise after an
// unban (sshguard 2.4.2): it remembers blocked addresses, not entries. The
// unbanned address's failed logins are ignored until sshguard's timer ends;
// under subnet blocking a neighbour's are counted, its block is the prefix
// that is already there, and the excepted employee stays free.
func TestWhatSshguardRemembers(t *testing.T) {
	labtest.Require(t)
	t.Run("unbanned address ignored", func(t *testing.T) {
		h := labtest.Start(t, lab.Options{Network: true})
		attack(t, h, "192.0.2.5")
		mustUnban(t, h, "192.0.2.5")
		if err := h.LogFailure(netip.MustParseAddr("192.0.2.5")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "no \"already been blocked\"", func() bool {
			return strings.Contains(h.DebugText(), "192.0.2.5 has already been blocked.")
		})
		connects(t, h, "after a failed login", map[string]bool{"192.0.2.5": true})
	})
	t.Run("neighbour counted under subnet blocking", func(t *testing.T) {
		h := labtest.Start(t, lab.Options{Network: true, IPv4Subnet: 24})
		attack(t, h, "192.0.2.66")
		mustUnban(t, h, "192.0.2.5")
		for _, a := range []string{"192.0.2.7", "192.0.2.5"} {
			if err := h.LogFailure(netip.MustParseAddr(a)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "neighbour not blocked by sshguard", func() bool {
				return strings.Contains(h.DebugText(), `Blocking "`+a+`/24"`)
			})
		}
		if got := blocked(t, h); !slices.Equal(got, []string{"192.0.2.0/24"}) {
			t.Errorf("firewall %q", got)
		}
		connects(t, h, "after the neighbour's and the employee's blocks", map[string]bool{"192.0.2.5": true, "192.0.2.7": false})
	})
}

func blacklistedEntries(r hostreport.Report) []string {
	var out []string
	for _, e := range r.Entries {
		if e.Blacklisted {
			out = append(out, e.Entry)
		}
	}
	return out
}
