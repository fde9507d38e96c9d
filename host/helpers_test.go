package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sshguard-unban/host"
	"sshguard-unban/host/lab"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmcmd"
)

// The assembled scripts, written once by TestMain: what every test runs is
// what the SSM documents carry (host.Script), never the sources.
var unbanScript, reportScript string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sshguard-unban-scripts-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, s := range []struct {
		dst  *string
		name string
	}{{&unbanScript, host.UnbanScript}, {&reportScript, host.ReportScript}} {
		if *s.dst, err = host.WriteScript(dir, s.name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// decode parses out as exactly one JSON object on one line, rejecting fields
// that the shared types do not have (a typo in a script's field name fails).
func decode[T any](t testing.TB, out []byte) T {
	t.Helper()
	var v T
	if !bytes.HasSuffix(out, []byte("\n")) || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON object: %q", out)
	}
	return v
}

// run runs a script on h. Its stderr holds nothing but the digest of its
// stdout, which the readers check a long S3 copy against (ssmcmd.DigestLine):
// always after a finished run; an error found before the run is only JSON.
func run(t testing.TB, h *lab.Host, env []string, script string, args ...string) ([]byte, int) {
	t.Helper()
	r, err := h.RunEnv(context.Background(), env, script, args...)
	if err != nil {
		t.Fatal(err)
	}
	digest := ssmcmd.DigestLine(r.Stdout)
	if string(r.Stderr) != digest && (r.ExitCode == 0 || len(r.Stderr) != 0) {
		t.Errorf("%s (exit %d) wrote %q to stderr, want %q", script, r.ExitCode, r.Stderr, digest)
	}
	return r.Stdout, r.ExitCode
}

func unban(t testing.TB, h *lab.Host, args ...string) (hostreport.Unban, int) {
	t.Helper()
	out, code := run(t, h, nil, unbanScript, args...)
	u := decode[hostreport.Unban](t, out)
	if code == 0 {
		checkHeader(t, h, u.Report)
	}
	return u, code
}

// mustUnban is unban that must succeed.
func mustUnban(t testing.TB, h *lab.Host, args ...string) hostreport.Unban {
	t.Helper()
	u, code := unban(t, h, args...)
	if code != 0 || u.Error != "" || u.Host != h.Name || u.Backend != h.Backend {
		t.Fatalf("unban %q: exit %d, %+v", args, code, u)
	}
	return u
}

func report(t testing.TB, h *lab.Host) hostreport.Report {
	t.Helper()
	out, code := run(t, h, nil, reportScript)
	if code != 0 {
		t.Fatalf("report exit %d: %s", code, out)
	}
	r := decode[hostreport.Report](t, out)
	checkHeader(t, h, &r)
	return r
}

func checkHeader(t testing.TB, h *lab.Host, r *hostreport.Report) {
	t.Helper()
	if r == nil {
		t.Fatal("no report")
	}
	if r.Host != h.Name || r.Backend != h.Backend || r.Error != "" || r.Settings == nil {
		t.Errorf("report header = %+v, want host %s backend %s", r, h.Name, h.Backend)
	}
	ts, err := time.Parse(time.RFC3339, r.Time)
	if err != nil || !strings.HasSuffix(r.Time, "Z") || time.Since(ts).Abs() > time.Minute {
		t.Errorf("report time %q: not RFC 3339 UTC and now (%v)", r.Time, err)
	}
	// The host's own global addresses (the link-local ones are not
	// reported).
	var want []string
	for _, a := range h.Addresses() {
		want = append(want, a.String())
	}
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(r.Addresses)); !slices.Equal(got, want) {
		t.Errorf("report addresses %v, want %v", got, want)
	}
}

// blacklistAddrs is the address field of every line of a blacklist file
// (epoch|service|family|address); any other shape fails the test.
func blacklistAddrs(t testing.TB, content []byte) []string {
	t.Helper()
	var addrs []string
	for _, line := range strings.Split(strings.TrimSuffix(string(content), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("blacklist line %q in %q", line, content)
		}
		addrs = append(addrs, f[3])
	}
	return addrs
}

func blocked(t testing.TB, h *lab.Host) []string {
	t.Helper()
	got, err := h.Blocked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func exceptions(t testing.TB, h *lab.Host) []string {
	t.Helper()
	got, err := h.Exceptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func attack(t testing.TB, h *lab.Host, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if err := h.Attack(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// connects checks with real packets that exactly the addresses of want
// marked true get through to the host.
func connects(t testing.TB, h *lab.Host, when string, want map[string]bool) {
	t.Helper()
	var srcs []string
	for a := range want {
		srcs = append(srcs, a)
	}
	got, err := h.CanConnectAll(context.Background(), addrs(srcs...)...)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(srcs)
	for _, a := range srcs {
		if g := got[netip.MustParseAddr(a)]; g != want[a] {
			t.Errorf("%s: %s connects = %v, want %v", when, a, g, want[a])
		}
	}
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(drop, s) })
}

func readFile(t testing.TB, path string) ([]byte, uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, st.Sys().(*syscall.Stat_t).Ino
}

// checkReport compares a report with the firewall as the lab reads it, and
// the blacklisted flags with want.
func checkReport(t testing.TB, h *lab.Host, r hostreport.Report, blacklisted ...string) {
	t.Helper()
	var got []string
	for _, e := range r.Entries {
		got = append(got, e.Entry)
		fam := 4
		if strings.Contains(e.Entry, ":") {
			fam = 6
		}
		if e.Family != fam {
			t.Errorf("report entry %s: family %d", e.Entry, e.Family)
		}
		if e.Blacklisted != slices.Contains(blacklisted, e.Entry) {
			t.Errorf("report entry %s: blacklisted %v", e.Entry, e.Blacklisted)
		}
	}
	slices.Sort(got)
	if want := blocked(t, h); !slices.Equal(got, want) {
		t.Errorf("report entries %q, firewall %q", got, want)
	}
	var ex []string
	for _, x := range r.Exceptions {
		ex = append(ex, x.Address)
	}
	slices.Sort(ex)
	if want := exceptions(t, h); !slices.Equal(ex, want) {
		t.Errorf("report exceptions %q, firewall %q", ex, want)
	}
}

// waitFor polls cond every 100 ms until it holds or the time is up.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// until parses an exception's expiry.
func until(t testing.TB, x *hostreport.Exception) time.Time {
	t.Helper()
	if x == nil {
		t.Fatal("no exception")
	}
	ts, err := time.Parse(time.RFC3339, x.Expires)
	if err != nil || !strings.HasSuffix(x.Expires, "Z") {
		t.Fatalf("exception expiry %q: %v", x.Expires, err)
	}
	return ts
}

// asJSON is v as JSON, for comparing values that hold pointers.
func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeFile rewrites an existing file in place, as sshguard keeps the
// file open with O_APPEND.
func writeFile(t testing.TB, path, content string) { writeExisting(t, path, os.O_TRUNC, content) }

func appendFile(t testing.TB, path, content string) { writeExisting(t, path, os.O_APPEND, content) }

func writeExisting(t testing.TB, path string, mode int, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|mode, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
