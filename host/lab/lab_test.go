package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
)

// TestHostLifecycle drives a real sshguard on every backend: it blocks an
// attacker (a prefix with subnet blocking), blocks blacklisted addresses at
// start, and Close leaves no namespace, process or file behind.
func TestHostLifecycle(t *testing.T) {
	labtest.Require(t)
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			h, err := lab.Start(ctx, lab.Options{
				Name: "life-" + backend, Backend: backend, IPv4Subnet: 24,
				Blacklist: true, Blacklisted: []string{"198.51.100.7", "2001:db8::bad"},
				Dir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.Close() })
			if !h.Running() {
				t.Fatal("sshguard not running after Start")
			}
			if err := h.Attack(ctx, "192.0.2.12"); err != nil {
				t.Fatal(err)
			}
			if err := h.Attack(ctx, "2001:db8::12"); err != nil {
				t.Fatal(err)
			}
			got, err := h.Blocked(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The blacklisted IPv4 address is blocked as its /24 too.
			want := []string{"192.0.2.0/24", "198.51.100.0/24", "2001:db8::12", "2001:db8::bad"}
			if !slices.Equal(got, want) {
				t.Fatalf("Blocked = %q, want %q", got, want)
			}

			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if h.Running() {
				t.Error("still running after Close")
			}
			if _, err := os.Stat(filepath.Join("/run/netns", h.NS)); !os.IsNotExist(err) {
				t.Errorf("namespace %s still exists (%v)", h.NS, err)
			}
			if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
				t.Errorf("dir %s still exists (%v)", h.Dir, err)
			}
			if err := h.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// TestRunSeesHostName: scripts run in the namespace with the host's name and
// config.
func TestRunSeesHostName(t *testing.T) {
	h := labtest.Start(t, lab.Options{Name: "web-1"})
	script := filepath.Join(t.TempDir(), "probe.sh")
	body := "#!/bin/sh\nuname -n; echo \"$SSHGUARD_CONF\"; nft list tables; echo \"$@\"; exit 7\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code, err := h.Run(context.Background(), script, "a b", "c")
	if err != nil {
		t.Fatal(err)
	}
	want := "web-1\n" + h.Conf + "\ntable ip sshguard\ntable ip6 sshguard\na b c\n"
	if string(out) != want || code != 7 {
		t.Fatalf("Run = %q, %d; want %q, 7", out, code, want)
	}
}

// TestAddEntries bulk-loads entries on every backend and reads them back.
func TestAddEntries(t *testing.T) {
	labtest.Require(t)
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			h := labtest.Start(t, lab.Options{Backend: backend})
			in := []string{"10.0.0.1", "10.0.1.0/24", "2001:db8:1::/48", "2001:db8::1"} // sorted
			if err := h.AddEntries(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			got, err := h.Blocked(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, in) {
				t.Fatalf("Blocked = %q, want %q", got, in)
			}
		})
	}
}

// A failed Start leaves nothing behind, whichever step the context ends in.
func TestStartFailureCleansUp(t *testing.T) {
	labtest.Require(t)
	failed := 0
	for _, timeout := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond,
		60 * time.Millisecond, 100 * time.Millisecond} {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		h, err := lab.Start(ctx, lab.Options{Name: "doomed", Dir: dir})
		cancel()
		if err == nil {
			if err := h.Close(); err != nil {
				t.Error(err)
			}
		} else {
			failed++
			t.Logf("%v: %v", timeout, err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%v: files left in %s: %v", timeout, dir, left)
		}
		nss, _ := os.ReadDir("/run/netns")
		for _, ns := range nss {
			if strings.Contains(ns.Name(), "-doomed-") {
				t.Errorf("%v: namespace %s left behind", timeout, ns.Name())
			}
		}
	}
	if failed == 0 {
		t.Error("no Start failed: the failure path was not exercised")
	}
	if _, err := lab.Start(context.Background(), lab.Options{Backend: "pf"}); err == nil {
		t.Error("Start accepted backend pf")
	}
	if _, err := lab.Start(context.Background(), lab.Options{Name: "a;b"}); err == nil {
		t.Error("Start accepted host name a;b")
	}
}

// A host whose sshguard died is reported as such and still closes cleanly.
func TestCrashedHost(t *testing.T) {
	h := labtest.Start(t, lab.Options{})
	out, err := exec.Command("ip", "netns", "pids", h.NS).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		var pid int
		fmt.Sscan(p, &pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Running() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h.Running() {
		t.Fatal("Running after sshguard was killed")
	}
	if err := h.Attack(context.Background(), "192.0.2.1"); err == nil {
		t.Error("Attack on a dead host succeeded")
	}
	if err := h.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat("/run/netns/" + h.NS); !os.IsNotExist(err) {
		t.Errorf("namespace still there (%v)", err)
	}
}

// TestSweepStale: Start removes a namespace left behind by a lab whose
// process died, with what still runs in it, and leaves live ones alone.
func TestSweepStale(t *testing.T) {
	labtest.Require(t)
	// The namespace's "creator" lives until the namespace is set up, so that
	// no concurrent Start (another test binary) sweeps it half-made.
	owner := exec.Command("sleep", "60")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	stale := fmt.Sprintf("sglab-%d-stale-test", owner.Process.Pid)
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", stale).Run() })
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _ := exec.Command("ip", "netns", "pids", stale).Output()
		if len(strings.Fields(string(out))) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sleep never entered the namespace")
		}
	}
	_ = owner.Process.Kill()
	_ = owner.Wait()

	live := labtest.Start(t, lab.Options{})
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Error("process in the stale namespace still runs")
	}
	if _, err := os.Stat("/run/netns/" + stale); !os.IsNotExist(err) {
		t.Errorf("stale namespace still there (%v)", err)
	}
	labtest.Start(t, lab.Options{})
	if !live.Running() {
		t.Error("a live lab host was swept")
	}
}

func TestNormalizeAndContains(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                     "192.0.2.1",
		"192.0.2.1/32":                  "192.0.2.1",
		"192.0.2.77/24":                 "192.0.2.0/24",
		"2001:DB8:0::1/128":             "2001:db8::1",
		"2001:db8::5/64":                "2001:db8::/64",
		"198.51.100.1-198.51.100.9":     "198.51.100.1-198.51.100.9",
		"::ffff:192.0.2.1":              "::ffff:192.0.2.1",
		"2001:0db8:0000:0000::0001/128": "2001:db8::1",
	} {
		got, err := lab.Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	entries := []string{"192.0.2.1", "198.51.100.0/24", "203.0.113.5-203.0.113.9", "2001:db8::/64"}
	for a, want := range map[string]bool{
		"192.0.2.1": true, "192.0.2.12": false, "192.0.2.123": false,
		"198.51.100.255": true, "198.51.101.0": false,
		"203.0.113.4": false, "203.0.113.5": true, "203.0.113.9": true, "203.0.113.10": false,
		"2001:db8::ffff": true, "2001:db8:0:1::": false, "::ffff:192.0.2.1": true,
	} {
		if got := lab.Contains(entries, netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
}

// TestCanConnect judges blocks by real packets on every backend: a blocked
// source cannot complete a TCP handshake with the host, its neighbours can.
func TestCanConnect(t *testing.T) {
	labtest.Require(t)
	for _, backend := range lab.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			h := labtest.Start(t, lab.Options{Backend: backend, Network: true})
			ctx := context.Background()
			if err := h.Attack(ctx, "192.0.2.12"); err != nil {
				t.Fatal(err)
			}
			if err := h.Attack(ctx, "2001:db8::12"); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{"192.0.2.12": false, "192.0.2.13": true, "2001:db8::12": false, "2001:db8::13": true, "198.51.100.1": true}
			var srcs []netip.Addr
			for a := range want {
				srcs = append(srcs, netip.MustParseAddr(a))
			}
			got, err := h.CanConnectAll(ctx, srcs...)
			if err != nil {
				t.Fatal(err)
			}
			for a, ok := range want {
				if got[netip.MustParseAddr(a)] != ok {
					t.Errorf("CanConnect(%s) = %v, want %v", a, !ok, ok)
				}
			}
			if _, err := (&lab.Host{}).CanConnect(ctx, srcs[0]); err == nil {
				t.Error("CanConnect without Network succeeded")
			}
		})
	}
}

// TestAwkOption: the host's scripts find Options.Awk as awk, and only they.
func TestAwkOption(t *testing.T) {
	labtest.Require(t)
	for _, awk := range []string{"mawk", "busybox"} {
		if _, err := exec.LookPath(awk); err != nil {
			t.Logf("%s not installed", awk)
			continue
		}
		h := labtest.Start(t, lab.Options{Awk: awk})
		probe := filepath.Join(t.TempDir(), "probe.sh")
		if err := os.WriteFile(probe, []byte("#!/bin/sh\nawk -W version 2>&1 </dev/null | head -n 1; awk 2>&1 </dev/null | head -n 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out, _, err := h.Run(context.Background(), probe)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"mawk": "mawk", "busybox": "BusyBox"}[awk]
		if !strings.Contains(string(out), want) {
			t.Errorf("Awk %s: the script's awk says %q", awk, out)
		}
		own, _ := exec.Command("awk", "-W", "version").CombinedOutput()
		if awk == "busybox" && strings.Contains(string(own), "BusyBox") {
			t.Error("the machine's own awk changed")
		}
	}
}
