package host_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
	"sshguard-unban/shared/hostreport"
)

// BenchmarkUnbanFrom10000 times sshguard-unban.sh (validate, read config,
// lock, list the firewall, change it, print the result and the full report
// after the unban) on a firewall holding 10,000 blocks, loaded in bulk
// straight into sshguard's set or chain, against the floor measured in the
// same iterations: one delete of the entry plus one full listing with the
// backend's own tool (nft list ruleset; iptables -S and ip6tables -S, no
// one command lists both families; ipset save), each started from Go into
// the namespace exactly as the script is (one nsenter). ns/op is the
// script; floor-ns/op the floor; x-floor their ratio. Once per awk the
// production hosts have: mawk (Debian), gawk (Amazon Linux).
//
//   - address: 9,000 IPv4 addresses (with the target's near misses) and 1,000
//     IPv6; the target is an entry of its own and gets deleted.
//   - prefix: 9,000 IPv4 /24 prefixes (subnet blocking) and 1,000 IPv6 /64;
//     the target lies in one and gets an exception (renewed on every run).
func BenchmarkUnbanFrom10000(b *testing.B) {
	labtest.Require(b)
	var exact, prefixes []string
	for i := range 9000 {
		exact = append(exact, fmt.Sprintf("10.%d.%d.%d", i/2500, i/10%250, i%10+1))
		prefixes = append(prefixes, fmt.Sprintf("10.%d.%d.0/24", i/250, i%250))
	}
	for i := range 1000 {
		exact = append(exact, fmt.Sprintf("2001:db8::%x", i+1))
		prefixes = append(prefixes, fmt.Sprintf("2001:db8:%x::/64", i+1))
	}
	fixtures := []benchFixture{
		{"address", exact, "10.0.0.1", "10.0.0.1"},
		{"prefix", prefixes, "10.0.0.77", "10.0.0.0/24"},
	}
	if !slices.Contains(exact, "10.0.0.10") || len(exact) != 10000 || len(prefixes) != 10000 {
		b.Fatal("bad fixture")
	}
	for _, backend := range lab.Backends {
		for _, fx := range fixtures {
			for _, awk := range []string{"mawk", "gawk"} {
				b.Run(backend+"/"+fx.name+"/"+awk, func(b *testing.B) {
					if _, err := exec.LookPath(awk); err != nil {
						b.Skipf("%s not installed", awk)
					}
					benchUnban(b, backend, awk, fx)
				})
			}
		}
	}
}

type benchFixture struct {
	name    string
	entries []string
	target  string
	entry   string // what contains the target
}

func benchUnban(b *testing.B, backend, awk string, fx benchFixture) {
	ctx := context.Background()
	h := labtest.Start(b, lab.Options{Backend: backend, Awk: awk})
	if err := h.AddEntries(ctx, fx.entries); err != nil {
		b.Fatal(err)
	}
	if got, err := h.Blocked(ctx); err != nil || len(got) != len(fx.entries) {
		b.Fatalf("loaded %d entries (%v), want %d", len(got), err, len(fx.entries))
	}
	del, list := floorCommands(backend, fx.entry)
	var floor time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// The floor: one delete, one full listing.
		start := time.Now()
		if _, err := h.Command(ctx, del[0], del[1:]...); err != nil {
			b.Fatal(err)
		}
		for _, l := range list {
			if _, err := h.Command(ctx, l[0], l[1:]...); err != nil {
				b.Fatal(err)
			}
		}
		floor += time.Since(start)
		if err := h.AddEntries(ctx, []string{fx.entry}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		out, code, err := h.Run(ctx, unbanScript, fx.target)
		b.StopTimer()
		if err != nil || code != 0 {
			b.Fatalf("unban: exit %d, %v: %s", code, err, out)
		}
		checkBenchUnban(b, out, fx.target, fx.entry, len(fx.entries))
		if fx.entry == fx.target {
			if err := h.AddEntries(ctx, []string{fx.target}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(floor.Nanoseconds()), "x-floor")
}

// floorCommands are the delete and the listing the floor runs.
func floorCommands(backend, entry string) (del []string, list [][]string) {
	switch backend {
	case "nft-sets":
		return []string{"nft", "delete", "element", "ip", "sshguard", "attackers", "{ " + entry + " }"},
			[][]string{{"nft", "-n", "list", "ruleset"}}
	case "iptables":
		spec := entry
		if !slices.Contains([]byte(entry), '/') {
			spec += "/32"
		}
		return []string{"iptables", "-w", "-D", "sshguard", "-s", spec, "-j", "DROP"},
			[][]string{{"iptables", "-w", "-S", "sshguard"}, {"ip6tables", "-w", "-S", "sshguard"}}
	default:
		return []string{"ipset", "del", "sshguard4", entry},
			[][]string{{"ipset", "save"}}
	}
}

// checkBenchUnban: the run freed the target and its report holds every
// entry but a deleted one.
func checkBenchUnban(b *testing.B, out []byte, target, entry string, n int) {
	u := decode[hostreport.Unban](b, out)
	if len(u.Results) != 1 || u.Results[0].Address != target || u.Results[0].StillBlocked || u.Report == nil {
		b.Fatalf("unban printed %.300s", out)
	}
	r := u.Results[0]
	if entry == target {
		if !r.WasBlocked || !slices.Equal(r.Removed, []string{target}) || len(u.Report.Entries) != n-1 {
			b.Fatalf("unban printed %.300s", out)
		}
		return
	}
	if r.Exception == nil || !slices.Equal(r.Exception.Entries, []string{entry}) || len(r.Removed) != 0 || len(u.Report.Entries) != n {
		b.Fatalf("unban printed %.300s", out)
	}
}
