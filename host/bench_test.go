package host_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
	"sshguard-unban/shared/hostreport"
)

// BenchmarkUnbanFrom10000 times sshguard-unban.sh removing one address from a
// firewall that holds 10,000 blocks (9,000 IPv4 including the target's near
// misses, 1,000 IPv6), loaded in bulk straight into sshguard's set or chain.
// One op is one full script run: validate, read config, list the firewall,
// remove, list again to verify, print JSON.
func BenchmarkUnbanFrom10000(b *testing.B) {
	labtest.Require(b)
	const target = "10.0.0.1"
	entries := make([]string, 0, 10000)
	for i := range 9000 {
		entries = append(entries, fmt.Sprintf("10.%d.%d.%d", i/2500, i/10%250, i%10+1))
	}
	for i := range 1000 {
		entries = append(entries, fmt.Sprintf("2001:db8::%x", i+1))
	}
	if !slices.Contains(entries, target) || !slices.Contains(entries, "10.0.0.10") {
		b.Fatal("bad fixture")
	}
	for _, backend := range lab.Backends {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			h := labtest.Start(b, lab.Options{Backend: backend})
			if err := h.AddEntries(ctx, entries); err != nil {
				b.Fatal(err)
			}
			if got, err := h.Blocked(ctx); err != nil || len(got) != len(entries) {
				b.Fatalf("loaded %d entries (%v), want %d", len(got), err, len(entries))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 {
					b.StopTimer()
					if err := h.AddEntries(ctx, []string{target}); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				out, code, err := h.Run(ctx, unbanScript, target)
				if err != nil || code != 0 {
					b.Fatalf("unban: exit %d, %v: %s", code, err, out)
				}
				b.StopTimer()
				var want = `{"host":"` + h.Name + `","backend":"` + backend + `","results":[{"address":"10.0.0.1","was_blocked":true,"removed":["10.0.0.1"],"blacklist_removed":false}]}` + "\n"
				if string(out) != want {
					b.Fatalf("unban printed %s, want %s", out, want)
				}
				b.StartTimer()
			}
			b.StopTimer()
			got, err := h.Blocked(ctx)
			if err != nil || len(got) != len(entries)-1 || slices.Contains(got, target) {
				b.Fatalf("after unban: %d entries (%v), want %d without %s", len(got), err, len(entries)-1, target)
			}
			b.ReportMetric(float64(len(entries)), "entries")
		})
	}
}

var _ hostreport.Unban // the JSON checked above is hostreport.Unban's shape
