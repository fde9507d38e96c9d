package host_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sshguard-unban/host"
	"sshguard-unban/host/lab"
	"sshguard-unban/host/lab/labtest"
	"sshguard-unban/shared/hostreport"
)

// TestUnban makes a real sshguard block addresses and prefixes on each
// backend, unbans some, and checks the firewall itself: exactly the entries
// that are the asked addresses are gone, containing prefixes stay and the
// address is excepted from them, blacklisted addresses are left alone with
// the blacklist untouched, and the unban's report is the firewall's.
func TestUnban(t *testing.T) {
	labtest.Require(t)
	type scenario struct {
		name        string
		opts        lab.Options
		attack      []string
		wantBlocked []string // before the unban
		reportBL    []string // entries the report flags as blacklisted
		args        []string
		want        []hostreport.AddressResult // Exception.Expires is checked apart
	}
	ex := func(a string, entries ...string) *hostreport.Exception {
		return &hostreport.Exception{Address: a, Entries: entries}
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
			{Address: "192.0.2.1", WasBlocked: true, BlockedBy: []string{"192.0.2.1"}, Removed: []string{"192.0.2.1"}},
			{Address: "2001:db8::1", WasBlocked: true, BlockedBy: []string{"2001:db8::1"}, Removed: []string{"2001:db8::1"}},
			{Address: "198.51.100.7", WasBlocked: true, BlockedBy: []string{"198.51.100.7"}, Removed: []string{}, Blacklisted: true, StillBlocked: true},
			{Address: "203.0.113.99", BlockedBy: []string{}, Removed: []string{}},
		},
	}, {
		name:   "subnets",
		opts:   lab.Options{IPv4Subnet: 24, IPv6Subnet: 64, Blacklist: true, Blacklisted: []string{"198.51.100.7", "2001:db8:bad::7"}},
		attack: []string{"192.0.2.12", "203.0.113.5", "2001:db8:1::5", "2001:db8:2::5"},
		wantBlocked: []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
			"2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:bad::/64"},
		reportBL: []string{"198.51.100.0/24", "2001:db8:bad::/64"},
		// Other addresses inside blocked prefixes: the prefixes stay.
		args: []string{"192.0.2.77", "2001:db8:1::abcd", "198.51.100.5", "198.51.100.7"},
		want: []hostreport.AddressResult{
			{Address: "192.0.2.77", WasBlocked: true, BlockedBy: []string{"192.0.2.0/24"}, Removed: []string{}, Exception: ex("192.0.2.77", "192.0.2.0/24")},
			{Address: "2001:db8:1::abcd", WasBlocked: true, BlockedBy: []string{"2001:db8:1::/64"}, Removed: []string{}, Exception: ex("2001:db8:1::abcd", "2001:db8:1::/64")},
			// Inside a blacklisted prefix, and blacklisted itself: an SRE decides.
			{Address: "198.51.100.5", WasBlocked: true, BlockedBy: []string{"198.51.100.0/24"}, Removed: []string{}, Blacklisted: true, StillBlocked: true},
			{Address: "198.51.100.7", WasBlocked: true, BlockedBy: []string{"198.51.100.0/24"}, Removed: []string{}, Blacklisted: true, StillBlocked: true},
		},
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
				checkReport(t, h, report(t, h), sc.reportBL...)
				blBefore, inode := readFile(t, h.BlacklistFile)

				start := time.Now().Truncate(time.Second)
				res := mustUnban(t, h, sc.args...)
				var wantEx []string
				for i, r := range res.Results {
					if r.Exception != nil {
						// 30 x BLOCK_TIME (120 s): an hour.
						if d := until(t, r.Exception).Sub(start); d < time.Hour || d > time.Hour+5*time.Second {
							t.Errorf("%s: exception ends %s, %v from now, want an hour", r.Address, r.Exception.Expires, d)
						}
						res.Results[i].Exception.Expires = ""
						wantEx = append(wantEx, r.Address)
					}
				}
				if asJSON(t, res.Results) != asJSON(t, sc.want) {
					t.Errorf("results\n got %s\nwant %s", asJSON(t, res.Results), asJSON(t, sc.want))
				}
				var gone []string
				for _, r := range sc.want {
					gone = append(gone, r.Removed...)
				}
				if after, want := blocked(t, h), without(before, gone...); !slices.Equal(after, want) {
					t.Errorf("firewall after unban %q, want %q", after, want)
				}
				slices.Sort(wantEx)
				if got := exceptions(t, h); !slices.Equal(got, wantEx) {
					t.Errorf("exceptions in the firewall %q, want %q", got, wantEx)
				}
				checkReport(t, h, *res.Report, sc.reportBL...)
				want4 := 32
				if sc.opts.IPv4Subnet > 0 {
					want4 = sc.opts.IPv4Subnet
				}
				if s := res.Report.Settings; s.BlockTime != 120 || s.Threshold != 10 || s.ExceptionSeconds != 3600 ||
					s.IPv4Subnet != want4 || s.BlacklistFile != h.BlacklistFile {
					t.Errorf("settings %+v", *s)
				}

				blAfter, inode2 := readFile(t, h.BlacklistFile)
				if inode2 != inode || !bytes.Equal(blAfter, blBefore) {
					t.Errorf("blacklist changed without the override: %q -> %q", blBefore, blAfter)
				}
				if !h.Running() {
					t.Fatal("sshguard stopped")
				}
				attack(t, h, "2001:db8:ffff::1")
				if !lab.Contains(blocked(t, h), netip.MustParseAddr("2001:db8:ffff::1")) {
					t.Error("new attacker not blocked")
				}
				r := report(t, h)
				checkReport(t, h, r, sc.reportBL...)
				if len(r.Exceptions) != len(wantEx) {
					t.Errorf("report exceptions %+v, want %q", r.Exceptions, wantEx)
				}

				// Unbanning again finds the address free: the firewall's
				// blocks stay as they are (an exception is renewed).
				now := blocked(t, h)
				res = mustUnban(t, h, sc.args[0])
				if len(res.Results) != 1 || res.Results[0].WasBlocked || res.Results[0].StillBlocked || len(res.Results[0].Removed) != 0 {
					t.Errorf("second unban: %+v", res)
				}
				if after := blocked(t, h); !slices.Equal(after, now) {
					t.Errorf("second unban changed the firewall: %q -> %q", now, after)
				}
			})
		}
	}
}

// TestHostileArguments: anything but a plain address (and the two options)
// is refused with exit 2 before anything is read or changed, and never
// reaches a shell.
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
		{"exception seconds missing", []string{"--exception-seconds"}, "usage"},
		{"exception seconds, no address", []string{"--exception-seconds", "60"}, "usage"},
		{"exception seconds too short", []string{"--exception-seconds", "9", "192.0.2.1"}, "usage"},
		{"exception seconds too long", []string{"--exception-seconds", "86401", "192.0.2.1"}, "usage"},
		{"exception seconds negative", []string{"--exception-seconds", "-60", "192.0.2.1"}, "usage"},
		{"exception seconds exponent", []string{"--exception-seconds", "1e3", "192.0.2.1"}, "usage"},
		{"exception seconds shell", []string{"--exception-seconds", "$(touch " + canary + ")", "192.0.2.1"}, "usage"},
		{"exception seconds huge", []string{"--exception-seconds", strings.Repeat("9", 400), "192.0.2.1"}, "usage"},
		{"override spelled wrong", []string{"--remove-blacklist", "198.51.100.7"}, "bad_address"},
		{"override after address", []string{"198.51.100.7", "--remove-blacklisted"}, "bad_address"},
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

// TestShellcheck: both assembled scripts are clean POSIX sh.
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

// TestAssembledScripts: each runnable script is its source with common.sh
// in place of its include line, once; the copy compiled into the binaries
// (tests, local mode) is the checked-out tree (the CDK app's source).
func TestAssembledScripts(t *testing.T) {
	common, err := os.ReadFile(host.CommonFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range host.Scripts {
		embedded, err := host.Script(name)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := host.Assemble(os.DirFS("."), name)
		if err != nil {
			t.Fatal(err)
		}
		if tree != embedded {
			t.Errorf("%s: the embedded copy differs from the tree (rebuild)", name)
		}
		if strings.Count(embedded, string(common)) != 1 || strings.Contains(embedded, host.IncludeLine) ||
			!strings.HasPrefix(embedded, "#!/bin/sh\n") {
			t.Errorf("%s: not its source with common.sh once in place of %q", name, host.IncludeLine)
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Replace(string(src), host.IncludeLine+"\n", string(common), 1); embedded != want {
			t.Errorf("%s: assembled text is not the source with common.sh put in", name)
		}
	}
	for name, fsys := range map[string]map[string]string{
		"no include":  {host.UnbanScript: "#!/bin/sh\necho hi\n", host.CommonFile: "x=1\n"},
		"two":         {host.UnbanScript: "#!/bin/sh\n" + host.IncludeLine + "\n" + host.IncludeLine + "\n", host.CommonFile: "x=1\n"},
		"no common":   {host.UnbanScript: "#!/bin/sh\n" + host.IncludeLine + "\n"},
		"recursive":   {host.UnbanScript: "#!/bin/sh\n" + host.IncludeLine + "\n", host.CommonFile: host.IncludeLine + "\n"},
		"no such one": {"other.sh": "#!/bin/sh\n", host.CommonFile: "x=1\n"},
	} {
		dir := t.TempDir()
		for f, body := range fsys {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := host.Assemble(os.DirFS(dir), host.UnbanScript); err == nil {
			t.Errorf("%s: assembled", name)
		}
	}
}

// TestPortability runs the scripts under other awks and shells (Debian has
// mawk and dash, Amazon Linux gawk and bash as sh, small images busybox): the
// awk is bind-mounted over the one the scripts find, in the lab host's mount
// namespace (lab.Options.Awk). Combinations not installed here are skipped.
func TestPortability(t *testing.T) {
	labtest.Require(t)
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
			if _, err := exec.LookPath(c.awk); err != nil {
				t.Skipf("%s not installed", c.awk)
			}
			sh, err := exec.LookPath(c.shell[0])
			if err != nil {
				t.Skipf("%s not installed", c.shell[0])
			}
			h := labtest.Start(t, lab.Options{IPv4Subnet: 24, Blacklist: true, Blacklisted: []string{"198.51.100.7"}, Awk: c.awk})
			attack(t, h, "192.0.2.1", "2001:db8::1", "2001:db8::12")
			with := func(script string, args ...string) ([]byte, int) {
				return run(t, h, env, sh, append(append(c.shell[1:], script), args...)...)
			}

			out, code := with(reportScript)
			if code != 0 {
				t.Fatalf("report: exit %d: %s", code, out)
			}
			got := decode[hostreport.Report](t, out)
			checkHeader(t, h, &got)
			checkReport(t, h, got, "198.51.100.0/24")
			if s := got.Settings; s == nil || s.IPv4Subnet != 24 || s.IPv6Subnet != 128 || s.ExceptionSeconds != 3600 || s.BlacklistFile != h.BlacklistFile {
				t.Errorf("settings %+v", s)
			}

			for _, bad := range []string{"01.2.3.4", "1::2::3", "１９２.0.2.1", "1.2.3.4.5", "::ffff:1.2.3"} {
				if out, code := with(unbanScript, bad); code != 2 {
					t.Errorf("unban %q: exit %d: %s", bad, code, out)
				}
			}

			// The override too, so that the blacklist rewrite runs under each.
			out, code = with(unbanScript, "--exception-seconds", "600", "--remove-blacklisted",
				"192.0.2.77", "2001:DB8:0::1", "198.51.100.7", "::FFFF:C000:0201", "1:0:0:0:1:0:0:0")
			res := decode[hostreport.Unban](t, out)
			ex := func(a, e string) *hostreport.Exception {
				return &hostreport.Exception{Address: a, Entries: []string{e}}
			}
			wantRes := []hostreport.AddressResult{
				{Address: "192.0.2.77", WasBlocked: true, BlockedBy: []string{"192.0.2.0/24"}, Removed: []string{}, Exception: ex("192.0.2.77", "192.0.2.0/24")},
				{Address: "2001:db8::1", WasBlocked: true, BlockedBy: []string{"2001:db8::1"}, Removed: []string{"2001:db8::1"}},
				{Address: "198.51.100.7", WasBlocked: true, BlockedBy: []string{"198.51.100.0/24"}, Removed: []string{},
					Exception: ex("198.51.100.7", "198.51.100.0/24"), Blacklisted: true, BlacklistRemoved: true},
				{Address: "::ffff:192.0.2.1", BlockedBy: []string{}, Removed: []string{}},
				{Address: "1::1:0:0:0", BlockedBy: []string{}, Removed: []string{}},
			}
			for i, r := range res.Results {
				if r.Exception != nil {
					if d := time.Until(until(t, r.Exception)); d < 590*time.Second || d > 601*time.Second {
						t.Errorf("%s: exception ends in %v, want 600 s", r.Address, d)
					}
					res.Results[i].Exception.Expires = ""
				}
			}
			if code != 0 || asJSON(t, res.Results) != asJSON(t, wantRes) {
				t.Errorf("unban: exit %d\n got %s\nwant %s", code, asJSON(t, res.Results), asJSON(t, wantRes))
			}
			if b := blocked(t, h); !slices.Equal(b, []string{"192.0.2.0/24", "198.51.100.0/24", "2001:db8::12"}) {
				t.Errorf("left blocked %q", b)
			}
			if x := exceptions(t, h); !slices.Equal(x, []string{"192.0.2.77", "198.51.100.7"}) {
				t.Errorf("exceptions %q", x)
			}
			if bl, _ := readFile(t, h.BlacklistFile); len(blacklistAddrs(t, bl)) != 0 {
				t.Errorf("blacklist keeps %q", bl)
			}
		})
	}
}

// TestConcurrentUnbansReportOnce: colleagues from one office ask at the same
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
