package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
	"sshguard-unban/shared/hostreport"
)

const (
	unbanScript  = "sshguard-unban.sh"
	reportScript = "sshguard-report.sh"
)

// decode parses out as exactly one JSON object on one line, rejecting fields
// that the shared types do not have (a typo in a script's field name fails).
func decode[T any](t *testing.T, out []byte) T {
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

// run runs a script on h; it must say nothing on stderr (errors are JSON).
func run(t *testing.T, h *lab.Host, env []string, script string, args ...string) ([]byte, int) {
	t.Helper()
	r, err := h.RunEnv(context.Background(), env, script, args...)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stderr) != 0 {
		t.Errorf("%s wrote to stderr: %q", script, r.Stderr)
	}
	return r.Stdout, r.ExitCode
}

func unban(t *testing.T, h *lab.Host, args ...string) (hostreport.Unban, int) {
	t.Helper()
	out, code := run(t, h, nil, unbanScript, args...)
	return decode[hostreport.Unban](t, out), code
}

func report(t *testing.T, h *lab.Host) hostreport.Report {
	t.Helper()
	out, code := run(t, h, nil, reportScript)
	if code != 0 {
		t.Fatalf("report exit %d: %s", code, out)
	}
	r := decode[hostreport.Report](t, out)
	if r.Host != h.Name || r.Backend != h.Backend || r.Error != "" {
		t.Errorf("report header = %+v, want host %s backend %s", r, h.Name, h.Backend)
	}
	ts, err := time.Parse(time.RFC3339, r.Time)
	if err != nil || !strings.HasSuffix(r.Time, "Z") || time.Since(ts).Abs() > time.Minute {
		t.Errorf("report time %q: not RFC 3339 UTC and now (%v)", r.Time, err)
	}
	return r
}

// blacklistAddrs is the address field of every line of a blacklist file
// (epoch|service|family|address); any other shape fails the test.
func blacklistAddrs(t *testing.T, content []byte) []string {
	t.Helper()
	var addrs []string
	for _, line := range strings.Split(strings.TrimSuffix(string(content), "\n"), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("blacklist line %q in %q", line, content)
		}
		addrs = append(addrs, f[3])
	}
	return addrs
}

func blocked(t *testing.T, h *lab.Host) []string {
	t.Helper()
	got, err := h.Blocked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func attack(t *testing.T, h *lab.Host, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if err := h.Attack(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(drop, s) })
}

func readFile(t *testing.T, path string) ([]byte, uint64) {
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

// checkReport compares the report with the firewall as the lab reads it, and
// the blacklisted flags with want.
func checkReport(t *testing.T, h *lab.Host, blacklisted ...string) {
	t.Helper()
	r := report(t, h)
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
}

// TestUnban makes a real sshguard block several addresses on each backend,
// unbans some, and checks the firewall itself: exactly the entries containing
// them are gone, the rest stays, the blacklist lost exactly their lines (file
// rewritten in place), and sshguard still blocks new attackers.
func TestUnban(t *testing.T) {
	labtest.Require(t)
	type scenario struct {
		name        string
		opts        lab.Options
		attack      []string
		wantBlocked []string // before the unban
		reportBL    []string // entries the report flags as blacklisted, before
		args        []string
		want        []hostreport.AddressResult
		keepLines   []string // blacklist lines (4th field) left afterwards
	}
	scenarios := []scenario{{
		name: "addresses",
		opts: lab.Options{Blacklist: true, Blacklisted: []string{"198.51.100.7", "2001:db8:bad::7"}},
		// Near misses: unbanning 192.0.2.1 must leave .12 and .123 alone.
		attack:      []string{"192.0.2.1", "192.0.2.12", "192.0.2.123", "2001:db8::1", "2001:db8::12"},
		wantBlocked: []string{"192.0.2.1", "192.0.2.12", "192.0.2.123", "198.51.100.7", "2001:db8::1", "2001:db8::12", "2001:db8:bad::7"},
		reportBL:    []string{"198.51.100.7", "2001:db8:bad::7"},
		args:        []string{"192.0.2.1", "2001:DB8:0::1", "198.51.100.7", "203.0.113.99"},
		want: []hostreport.AddressResult{
			{Address: "192.0.2.1", WasBlocked: true, Removed: []string{"192.0.2.1"}},
			{Address: "2001:db8::1", WasBlocked: true, Removed: []string{"2001:db8::1"}},
			{Address: "198.51.100.7", WasBlocked: true, Removed: []string{"198.51.100.7"}, BlacklistRemoved: true},
			{Address: "203.0.113.99", Removed: []string{}},
		},
		keepLines: []string{"2001:db8:bad::7"},
	}, {
		name:   "subnets",
		opts:   lab.Options{IPv4Subnet: 24, IPv6Subnet: 64, Blacklist: true, Blacklisted: []string{"198.51.100.7", "2001:db8:bad::7"}},
		attack: []string{"192.0.2.12", "203.0.113.5", "2001:db8:1::5", "2001:db8:2::5"},
		wantBlocked: []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
			"2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:bad::/64"},
		reportBL: []string{"198.51.100.0/24", "2001:db8:bad::/64"},
		// Other addresses inside blocked prefixes: the prefixes go.
		args: []string{"192.0.2.77", "2001:db8:1::abcd", "198.51.100.7"},
		want: []hostreport.AddressResult{
			{Address: "192.0.2.77", WasBlocked: true, Removed: []string{"192.0.2.0/24"}},
			{Address: "2001:db8:1::abcd", WasBlocked: true, Removed: []string{"2001:db8:1::/64"}},
			{Address: "198.51.100.7", WasBlocked: true, Removed: []string{"198.51.100.0/24"}, BlacklistRemoved: true},
		},
		keepLines: []string{"2001:db8:bad::7"},
	}}
	for _, backend := range lab.Backends {
		for _, sc := range scenarios {
			t.Run(backend+"/"+sc.name, func(t *testing.T) {
				opts := sc.opts
				opts.Backend = backend
				opts.Name = "host-" + sc.name
				h := labtest.Start(t, opts)
				attack(t, h, sc.attack...)
				before := blocked(t, h)
				if !slices.Equal(before, slices.Sorted(slices.Values(sc.wantBlocked))) {
					t.Fatalf("sshguard blocked %q, want %q", before, sc.wantBlocked)
				}
				checkReport(t, h, sc.reportBL...)
				_, inode := readFile(t, h.BlacklistFile)

				res, code := unban(t, h, sc.args...)
				if code != 0 || res.Error != "" || res.Host != h.Name || res.Backend != backend {
					t.Fatalf("unban: exit %d, %+v", code, res)
				}
				if fmt.Sprint(res.Results) != fmt.Sprint(sc.want) {
					t.Errorf("results\n got %+v\nwant %+v", res.Results, sc.want)
				}
				var gone []string
				for _, r := range sc.want {
					gone = append(gone, r.Removed...)
				}
				if after, want := blocked(t, h), without(before, gone...); !slices.Equal(after, want) {
					t.Errorf("firewall after unban %q, want %q", after, want)
				}

				content, inode2 := readFile(t, h.BlacklistFile)
				if inode2 != inode {
					t.Errorf("blacklist replaced (inode %d -> %d), not rewritten in place", inode, inode2)
				}
				if kept := blacklistAddrs(t, content); !slices.Equal(kept, sc.keepLines) {
					t.Errorf("blacklist keeps %q, want %q", kept, sc.keepLines)
				}

				if !h.Running() {
					t.Fatal("sshguard stopped")
				}
				attack(t, h, "2001:db8:ffff::1")
				if !lab.Contains(blocked(t, h), netip.MustParseAddr("2001:db8:ffff::1")) {
					t.Error("new attacker not blocked")
				}
				// Only the blacklisted entries that stay are flagged.
				var stillBL []string
				for _, e := range sc.reportBL {
					if !slices.Contains(gone, e) {
						stillBL = append(stillBL, e)
					}
				}
				checkReport(t, h, stillBL...)

				// Unbanning again finds nothing and changes nothing.
				now := blocked(t, h)
				res, code = unban(t, h, sc.args[0])
				if code != 0 || len(res.Results) != 1 || res.Results[0].WasBlocked || len(res.Results[0].Removed) != 0 {
					t.Errorf("second unban: exit %d, %+v", code, res)
				}
				if after := blocked(t, h); !slices.Equal(after, now) {
					t.Errorf("second unban changed the firewall: %q -> %q", now, after)
				}
			})
		}
	}
}

// TestBlacklistRewrittenInPlace: sshguard keeps appending to the blacklist it
// has open (O_APPEND) after the script rewrote it; nothing is lost or garbled.
func TestBlacklistRewrittenInPlace(t *testing.T) {
	h := labtest.Start(t, lab.Options{Blacklist: true, BlacklistThreshold: 10})
	attack(t, h, "192.0.2.1", "192.0.2.12")
	_, inode := readFile(t, h.BlacklistFile)
	res, code := unban(t, h, "192.0.2.1")
	if code != 0 || !res.Results[0].BlacklistRemoved {
		t.Fatalf("unban: exit %d, %+v", code, res)
	}
	attack(t, h, "192.0.2.123")
	var content []byte
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.Contains(content, []byte("|192.0.2.123\n")) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		content, _ = readFile(t, h.BlacklistFile)
	}
	content, inode2 := readFile(t, h.BlacklistFile)
	if inode2 != inode {
		t.Errorf("blacklist inode changed %d -> %d", inode, inode2)
	}
	addrs := blacklistAddrs(t, content)
	if want := []string{"192.0.2.12", "192.0.2.123"}; !slices.Equal(addrs, want) {
		t.Errorf("blacklist holds %q, want %q", addrs, want)
	}
}

// TestHostileArguments: anything but a plain address is refused with exit 2
// before anything is read or changed, and never reaches a shell.
func TestHostileArguments(t *testing.T) {
	h := labtest.Start(t, lab.Options{Blacklist: true, Blacklisted: []string{"198.51.100.7"}})
	attack(t, h, "192.0.2.1", "192.0.2.12", "2001:db8::1")
	before := blocked(t, h)
	blBefore, _ := readFile(t, h.BlacklistFile)
	canary := filepath.Join(h.Dir, "pwned")

	tooMany := make([]string, 65)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("192.0.2.%d", i)
	}
	cases := []struct {
		name string
		args []string
		code string
	}{
		{"none", nil, "usage"},
		{"too many", tooMany, "usage"},
		{"empty", []string{""}, "bad_address"},
		{"semicolon", []string{"192.0.2.1;touch " + canary}, "bad_address"},
		{"command substitution", []string{"$(touch " + canary + ")"}, "bad_address"},
		{"backticks", []string{"`touch " + canary + "`"}, "bad_address"},
		{"newline", []string{"192.0.2.1\n192.0.2.12"}, "bad_address"},
		{"trailing newline", []string{"192.0.2.1\n"}, "bad_address"},
		{"space", []string{"192.0.2.1 192.0.2.12"}, "bad_address"},
		{"leading space", []string{" 192.0.2.1"}, "bad_address"},
		{"tab", []string{"192.0.2.1\t"}, "bad_address"},
		{"option -F", []string{"-F"}, "bad_address"},
		{"option --flush", []string{"--flush"}, "bad_address"},
		{"valid then option", []string{"192.0.2.1", "-F"}, "bad_address"},
		{"valid then hostile", []string{"192.0.2.1", "2001:db8::1", "$(reboot)"}, "bad_address"},
		{"glob", []string{"*"}, "bad_address"},
		{"nft set syntax", []string{"{ 0.0.0.0/0 }"}, "bad_address"},
		{"prefix", []string{"0.0.0.0/0"}, "bad_address"},
		{"range", []string{"192.0.2.0-192.0.2.255"}, "bad_address"},
		{"leading zero", []string{"01.2.3.4"}, "bad_address"},
		{"leading zero last", []string{"192.0.2.01"}, "bad_address"},
		{"octal-looking", []string{"0300.0.2.1"}, "bad_address"},
		{"hex quad", []string{"0xc0.0.2.1"}, "bad_address"},
		{"integer", []string{"3221225985"}, "bad_address"},
		{"short form", []string{"192.0.1"}, "bad_address"},
		{"five parts", []string{"192.0.2.1.5"}, "bad_address"},
		{"octet 256", []string{"192.0.2.256"}, "bad_address"},
		{"trailing dot", []string{"192.0.2.1."}, "bad_address"},
		{"fullwidth digits", []string{"１９２.0.2.1"}, "bad_address"},
		{"arabic-indic digit", []string{"192.0.2.\u0661"}, "bad_address"},
		{"non-breaking space", []string{"192.0.2.1\u00a0"}, "bad_address"},
		{"zone", []string{"fe80::1%eth0"}, "bad_address"},
		{"two ::", []string{"2001:db8::1::2"}, "bad_address"},
		{"triple colon", []string{"2001:db8:::1"}, "bad_address"},
		{"nine groups", []string{"1:2:3:4:5:6:7:8:9"}, "bad_address"},
		{"group of five", []string{"2001:db8::12345"}, "bad_address"},
		{"seven groups", []string{"1:2:3:4:5:6:7"}, "bad_address"},
		{"bad ipv4 tail", []string{"::ffff:192.0.2"}, "bad_address"},
		{"ipv4 tail too late", []string{"1:2:3:4:5:6:7:192.0.2.1"}, "bad_address"},
		{"brackets", []string{"[2001:db8::1]"}, "bad_address"},
		{"very long", []string{strings.Repeat("1", 100000)}, "bad_address"},
		{"long valid-looking", []string{strings.Repeat("0", 40) + "::1"}, "bad_address"},
		{"hostname", []string{"localhost"}, "bad_address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := run(t, h, nil, unbanScript, c.args...)
			res := decode[hostreport.Unban](t, out)
			if code != 2 || res.Code != c.code || res.Error == "" || res.Host != h.Name || len(res.Results) != 0 {
				t.Errorf("exit %d, %s; want exit 2 with code %s", code, out, c.code)
			}
			if after := blocked(t, h); !slices.Equal(after, before) {
				t.Fatalf("firewall changed: %q -> %q", before, after)
			}
		})
	}
	if bl, _ := readFile(t, h.BlacklistFile); !bytes.Equal(bl, blBefore) {
		t.Errorf("blacklist changed: %q -> %q", blBefore, bl)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Error("an argument was executed")
	}
}

// TestAddressForms: every RFC 4291 form of an address is accepted and
// reported in the canonical form Go's net/netip prints; duplicates collapse.
func TestAddressForms(t *testing.T) {
	h := labtest.Start(t, lab.Options{})
	attack(t, h, "2001:db8::1")
	rng := rand.New(rand.NewPCG(1, 2))
	var args []string
	add := func(forms ...string) { args = append(args, forms...) }
	add("0.0.0.0", "255.255.255.255", "::", "::1", "1::", "::ffff:192.0.2.1",
		"::FFFF:C000:0201", "0:0:0:0:0:ffff:192.0.2.1", "::192.0.2.1", "1:2:3:4:5:6:192.0.2.1",
		"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "2001:0:0:1::1", "1:0:0:0:1:0:0:0")
	for len(args) < 60 {
		var b [16]byte
		for i := range b {
			if rng.IntN(3) > 0 { // plenty of zero groups, to exercise "::"
				b[i] = byte(rng.IntN(256))
			}
		}
		a := netip.AddrFrom16(b)
		switch rng.IntN(4) {
		case 0:
			add(a.StringExpanded())
		case 1:
			add(strings.ToUpper(a.String()))
		case 2:
			add(a.String())
		default:
			v4 := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
			add(v4.String())
		}
	}
	res, code := unban(t, h, append(args, "2001:DB8:0:0::1", "2001:0db8:0000:0000:0000:0000:0000:0001")...)
	if code != 0 {
		t.Fatalf("exit %d: %+v", code, res)
	}
	var want []string
	for _, a := range append(args, "2001:db8::1") {
		c := netip.MustParseAddr(a).String()
		if !slices.Contains(want, c) {
			want = append(want, c)
		}
	}
	var got []string
	for _, r := range res.Results {
		got = append(got, r.Address)
	}
	if !slices.Equal(got, want) {
		t.Errorf("addresses\n got %q\nwant %q", got, want)
	}
	for _, r := range res.Results {
		if (r.Address == "2001:db8::1") != r.WasBlocked {
			t.Errorf("%+v", r)
		}
	}
	if b := blocked(t, h); len(b) != 0 {
		t.Errorf("still blocked: %q", b)
	}
}

// TestErrors: a missing or unusable config, or a firewall without sshguard's
// objects, gives a JSON error with the right code and exit status, nothing on
// stderr, and no change.
func TestErrors(t *testing.T) {
	h := labtest.Start(t, lab.Options{Blacklist: true, Blacklisted: []string{"198.51.100.7"}})
	attack(t, h, "192.0.2.1")
	before := blocked(t, h)
	dir := t.TempDir()
	canary := filepath.Join(dir, "pwned")
	conf := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	backend := func(b string) string { return "BACKEND=/usr/libexec/sshguard/sshg-fw-" + b + "\n" }
	cases := []struct {
		name, conf string
		exit       int
		code       string
	}{
		{"no config", filepath.Join(dir, "missing.conf"), 4, "no_config"},
		{"config is a directory", dir, 4, "no_config"},
		{"no BACKEND", conf("empty.conf", "THRESHOLD=30\n"), 4, "bad_config"},
		{"unsupported backend", conf("hosts.conf", backend("hosts")), 4, "unsupported_backend"},
		{"relative blacklist", conf("rel.conf", backend("nft-sets")+"BLACKLIST_FILE=30:blacklist\n"), 4, "bad_config"},
		{"blacklist expansion", conf("exp.conf", backend("nft-sets")+"BLACKLIST_FILE=\"30:$(touch "+canary+")\"\n"), 4, "bad_config"},
		{"blacklist is a directory", conf("bldir.conf", backend("nft-sets")+"BLACKLIST_FILE=30:"+dir+"\n"), 3, "blacklist_unreadable"},
		{"iptables chain missing", conf("ipt.conf", backend("iptables")), 3, "firewall_unreadable"},
		{"ipset sets missing", conf("ipset.conf", backend("ipset")), 3, "firewall_unreadable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, script := range []string{unbanScript, reportScript} {
				args := []string{"192.0.2.1"}
				if script == reportScript {
					args = nil
				}
				out, code := run(t, h, []string{"SSHGUARD_CONF=" + c.conf}, script, args...)
				host, msg, errCode := errorOf(t, script, out)
				if code != c.exit || errCode != c.code || msg == "" || host != h.Name {
					t.Errorf("%s: exit %d, %s; want exit %d code %s", script, code, out, c.exit, c.code)
				}
			}
			if after := blocked(t, h); !slices.Equal(after, before) {
				t.Fatalf("firewall changed: %q -> %q", before, after)
			}
		})
	}
	if _, err := os.Stat(canary); err == nil {
		t.Error("config content was executed")
	}

	t.Run("config is data", func(t *testing.T) {
		// Shell in the config is never run; the KEY=VALUE lines still count.
		p := conf("shell.conf", "$(touch "+canary+")\n`touch "+canary+"`\n"+
			"export BACKEND='/usr/libexec/sshguard/sshg-fw-nft-sets' # Debian default\n"+
			"FLAGS=\"-a 30 -b 30:"+h.BlacklistFile+"\"\n")
		out, code := run(t, h, []string{"SSHGUARD_CONF=" + p}, reportScript)
		r := decode[hostreport.Report](t, out)
		if code != 0 || len(r.Entries) != len(before) || !slices.ContainsFunc(r.Entries, func(e hostreport.Entry) bool {
			return e.Entry == "198.51.100.7" && e.Blacklisted
		}) {
			t.Errorf("exit %d: %s", code, out)
		}
		if _, err := os.Stat(canary); err == nil {
			t.Error("config content was executed")
		}
	})

	t.Run("nft table missing", func(t *testing.T) {
		if _, err := h.Command(context.Background(), "nft", "delete", "table", "ip6", "sshguard"); err != nil {
			t.Fatal(err)
		}
		before := blocked4(t, h)
		for _, argv := range [][]string{{unbanScript, "192.0.2.1"}, {reportScript}} {
			out, code := run(t, h, nil, argv[0], argv[1:]...)
			_, msg, errCode := errorOf(t, argv[0], out)
			if code != 3 || errCode != "firewall_unreadable" || !strings.Contains(msg, "ip6 sshguard attackers") {
				t.Errorf("%s: exit %d, %s", argv[0], code, out)
			}
		}
		if after := blocked4(t, h); after != before {
			t.Errorf("firewall changed: %q -> %q", before, after)
		}
	})
}

// errorOf decodes a script's error object.
func errorOf(t *testing.T, script string, out []byte) (host, msg, code string) {
	t.Helper()
	if script == reportScript {
		r := decode[hostreport.Report](t, out)
		return r.Host, r.Error, r.Code
	}
	u := decode[hostreport.Unban](t, out)
	return u.Host, u.Error, u.Code
}

// blocked4 lists the IPv4 set alone, for when the IPv6 table is gone.
func blocked4(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, err := h.Command(context.Background(), "nft", "list", "set", "ip", "sshguard", "attackers")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestShellcheck: both scripts are clean POSIX sh.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		if labtest.InCI() {
			t.Fatal("shellcheck is required in CI")
		}
		t.Skip("shellcheck not installed")
	}
	out, err := exec.Command("shellcheck", "--shell=sh", "--severity=style", unbanScript, reportScript).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// TestCommonBlock: the shared part of the scripts is the same in both (they
// cannot source a common file: each is embedded alone in an SSM document).
func TestCommonBlock(t *testing.T) {
	block := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i, j := strings.Index(s, "# >>> common"), strings.Index(s, "# <<< common")
		if i < 0 || j < i {
			t.Fatalf("%s: no common block", name)
		}
		return s[i:j]
	}
	if block(unbanScript) != block(reportScript) {
		t.Error("the common blocks of the two scripts differ")
	}
	for _, name := range []string{unbanScript, reportScript} {
		st, err := os.Stat(name)
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (%v)", name, err)
		}
	}
}

// TestPortability runs the scripts under other awks and shells (Debian has
// mawk and dash, Amazon Linux gawk and bash as sh, small images busybox): the
// awk is bind-mounted over the one the scripts find, inside the lab's private
// mount namespace. Combinations not installed here are skipped.
func TestPortability(t *testing.T) {
	labtest.Require(t)
	awk, err := filepath.EvalSymlinks("/usr/bin/awk")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "with-awk.sh")
	body := "#!/bin/sh\n# with-awk.sh AWK TARGET SHELL... -- SCRIPT ARGS...\n" +
		"mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := func(s string) string {
		p, err := filepath.Abs(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var env []string
	if v := os.Getenv("LD_LIBRARY_PATH"); v != "" {
		env = append(env, "LD_LIBRARY_PATH="+v) // for awks unpacked outside the system
	}
	cases := []struct {
		name  string
		awk   string
		shell []string
	}{
		{"mawk+dash", "mawk", []string{"dash"}},
		{"gawk+dash", "gawk", []string{"dash"}},
		{"original-awk+dash", "original-awk", []string{"dash"}},
		{"busybox-awk+dash", "busybox", []string{"dash"}},
		{"mawk+bash", "mawk", []string{"bash"}},
		{"gawk+bash-posix", "gawk", []string{"bash", "--posix"}},
		{"busybox-awk+busybox-sh", "busybox", []string{"busybox", "sh"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			impl, err := exec.LookPath(c.awk)
			if err != nil {
				t.Skipf("%s not installed", c.awk)
			}
			sh, err := exec.LookPath(c.shell[0])
			if err != nil {
				t.Skipf("%s not installed", c.shell[0])
			}
			h := labtest.Start(t, lab.Options{IPv4Subnet: 24, Blacklist: true, Blacklisted: []string{"198.51.100.7"}})
			attack(t, h, "192.0.2.1", "2001:db8::1", "2001:db8::12")
			with := func(script string, args ...string) ([]byte, int) {
				argv := append([]string{impl, awk, sh}, c.shell[1:]...)
				return run(t, h, env, wrapper, append(append(argv, abs(script)), args...)...)
			}

			out, code := with(reportScript)
			if code != 0 {
				t.Fatalf("report: exit %d: %s", code, out)
			}
			got := decode[hostreport.Report](t, out)
			want := report(t, h)
			got.Time, want.Time = "", ""
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("report\n got %+v\nwant %+v", got, want)
			}

			for _, bad := range []string{"01.2.3.4", "1::2::3", "１９２.0.2.1", "1.2.3.4.5", "::ffff:1.2.3"} {
				if out, code := with(unbanScript, bad); code != 2 {
					t.Errorf("unban %q: exit %d: %s", bad, code, out)
				}
			}

			out, code = with(unbanScript, "192.0.2.77", "2001:DB8:0::1", "198.51.100.7", "::FFFF:C000:0201", "1:0:0:0:1:0:0:0")
			res := decode[hostreport.Unban](t, out)
			wantRes := []hostreport.AddressResult{
				{Address: "192.0.2.77", WasBlocked: true, Removed: []string{"192.0.2.0/24"}},
				{Address: "2001:db8::1", WasBlocked: true, Removed: []string{"2001:db8::1"}},
				{Address: "198.51.100.7", WasBlocked: true, Removed: []string{"198.51.100.0/24"}, BlacklistRemoved: true},
				{Address: "::ffff:192.0.2.1", Removed: []string{}},
				{Address: "1::1:0:0:0", Removed: []string{}},
			}
			if code != 0 || fmt.Sprint(res.Results) != fmt.Sprint(wantRes) {
				t.Errorf("unban: exit %d\n got %+v\nwant %+v", code, res.Results, wantRes)
			}
			if b := blocked(t, h); !slices.Equal(b, []string{"2001:db8::12"}) {
				t.Errorf("left blocked %q", b)
			}
		})
	}
}

// TestConcurrentUnbansReportOnce: colleagues from one office ask at the same
// time, so SSM runs several unbans of one address on a host at once. The
// firewall changes once, and exactly one run may say it removed the block
// (the others found nothing): without the script's lock every overlapping
// run claimed the removal.
func TestConcurrentUnbansReportOnce(t *testing.T) {
	for _, backend := range []string{"nft-sets", "iptables", "ipset"} {
		t.Run(backend, func(t *testing.T) {
			h := labtest.Start(t, lab.Options{Backend: backend})
			for round := range 3 {
				addr := fmt.Sprintf("192.0.2.%d", 50+round)
				attack(t, h, addr)
				const runs = 4
				outs := make([]lab.Result, runs)
				errs := make([]error, runs)
				var wg sync.WaitGroup
				for i := range runs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						outs[i], errs[i] = h.RunEnv(context.Background(), nil, unbanScript, addr)
					}()
				}
				wg.Wait()
				claimed := 0
				for i := range runs {
					if errs[i] != nil || outs[i].ExitCode != 0 {
						t.Fatalf("run %d: %v exit %d: %s %s", i, errs[i], outs[i].ExitCode, outs[i].Stdout, outs[i].Stderr)
					}
					u := decode[hostreport.Unban](t, outs[i].Stdout)
					if len(u.Results) == 1 && u.Results[0].WasBlocked {
						claimed++
					}
				}
				if claimed != 1 {
					t.Errorf("round %d: %d of %d concurrent runs say they removed %s, want exactly 1", round, claimed, runs, addr)
				}
				if slices.Contains(blocked(t, h), addr) {
					t.Errorf("round %d: %s still blocked", round, addr)
				}
			}
		})
	}
}
