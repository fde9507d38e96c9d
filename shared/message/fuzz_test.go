package message

import (
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.body)
	}
	for _, s := range []string{
		to + qtOpen + notifyJa + qtClose,
		"[rp aid=1234567 to=567890123-1790000000000000000]unbanbot さん\n" + qtOpen + notifyEn + qtClose + "\nthanks",
		"[qt][qtmeta aid=1 time=2][info][title]x[/title]::ffff:192.0.2.5/128 fe80::1%eth0/64[/info][/qt]",
		"１９２。１６８。００１。０１０／２４",
		"[To:1]a さん[To:2]b\n[download:3]c[/download][code]10.0.0.1:22[/code][hr]ty",
		// Names that run into the request, and names that look like numbers.
		"[To:1]a 1.2.3.4[To:2]b さん5.6.7.8[rp aid=3 to=4-5]v1.2.3 web1.2 Taro 2.0 2001:db8::1/128",
		"[To:1000001]unbanbot\u3000２０３．０．１１３．５／３２です[To:1000002]user.name2",
		// Over the limit, duplicates in other forms, refusals between.
		"1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 ::ffff:1.1.1.6 127.0.0.1 1.1.1.7/32 fe80::1%" + strings.Repeat("z", 40),
		// Quote tags paired, nested, unclosed, stray, around mentions and keep words.
		"[qt][To:1000001][qt]解除しないで[/qt][/qt][/qt][qt]keep it blocked[To:1000001]192.0.2.1",
		"[rp aid=1000001 to=1-2]x don't keep it blocked [qt]ブロックしたままにしてください[/qt] ブロックされたままです",
		"ブロックしたままにしないでほしくないアンブロックしてください解除しないでしょうかブロック継続中",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := Parse(body)
		checkResult(t, body, r)

		// Words against the unban, on a line of their own after the
		// body, change the intent and nothing else.
		for _, words := range []string{"\nブロックしたままにしてください", "\nDo not unban."} {
			want := r
			want.Intent, want.Code = IntentKeep, "" // a code only in a decision
			if got := Parse(body + words); !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q + %q) = %s, want %s", body, words, js(got), js(want))
			}
		}
		// Quoted, the same text has the same addresses and never says
		// keep or thanks.
		if !strings.Contains(body, "[") {
			q := qtOpen + body + qtClose
			got := Parse(q)
			if !slices.Equal(got.Addresses, r.Addresses) || got.Intent == IntentKeep || got.Intent == IntentThanks {
				t.Errorf("Parse(%q) = %s, unquoted %s", q, js(got), js(r))
			}
		}

		// What Parse returns reads back as itself: the addresses as
		// the same addresses, each refusal as the same refusal.
		if len(r.Addresses) > 0 {
			again := Parse(strings.Join(r.Addresses, " "))
			if strings.Join(again.Addresses, " ") != strings.Join(r.Addresses, " ") || len(again.Refused) != 0 {
				t.Errorf("addresses %q parse back as %s", r.Addresses, js(again))
			}
		}
		for _, ref := range r.Refused {
			if ref.Reason == ReasonOverLimit {
				// An address like the accepted ones, just one too many.
				again := Parse(ref.Text)
				if len(again.Addresses) != 1 || len(again.Refused) != 0 || slices.Contains(r.Addresses, again.Addresses[0]) {
					t.Errorf("refusal %+v parses back as %s", ref, js(again))
				}
				continue
			}
			again := Parse(ref.Text)
			if len(again.Refused) != 1 || again.Refused[0] != ref || len(again.Addresses) != 0 {
				t.Errorf("refusal %+v parses back as %s", ref, js(again))
			}
		}
	})
}

func checkResult(t *testing.T, body string, r Result) {
	t.Helper()
	switch r.Intent {
	case IntentUnban, IntentKeep, IntentThanks, IntentHelp, IntentList:
		if r.Code != "" {
			t.Errorf("Parse(%q): intent %s with a code", body, r.Intent)
		}
	case IntentApprove, IntentDeny:
		if len(r.Code) != 6 || strings.ToUpper(r.Code) != r.Code || !strings.ContainsAny(r.Code, "0123456789") || len(r.Addresses) > 0 || len(r.Refused) > 0 {
			t.Errorf("Parse(%q): a decision %s", body, js(r))
		}
	default:
		t.Fatalf("Parse(%q): intent %q", body, r.Intent)
	}
	if r.Addresses == nil {
		t.Fatalf("Parse(%q): nil Addresses", body)
	}
	if len(r.Addresses) > MaxAddresses {
		t.Errorf("Parse(%q): %d addresses", body, len(r.Addresses))
	}
	if len(r.Addresses)+len(r.Refused) > MaxListed {
		t.Errorf("Parse(%q): %d addresses and %d refusals", body, len(r.Addresses), len(r.Refused))
	}
	if r.Dropped < 0 || r.Dropped > 0 && len(r.Addresses)+len(r.Refused) != MaxListed {
		t.Errorf("Parse(%q): dropped %d with %d addresses and %d refusals", body, r.Dropped, len(r.Addresses), len(r.Refused))
	}
	if n := len(js(r)); n > maxResultJSON {
		t.Errorf("Parse(%q): %d bytes of JSON", body, n)
	}
	if (r.Intent == IntentThanks || r.Intent == IntentHelp || r.Intent == IntentList) && (len(r.Addresses) > 0 || len(r.Refused) > 0 || r.Reason != "") {
		t.Errorf("Parse(%q): intent %s with findings: %s", body, r.Intent, js(r))
	}
	if r.Intent == IntentUnban && len(r.Addresses) == 0 && len(r.Refused) == 0 {
		t.Errorf("Parse(%q): unban with nothing found", body)
	}
	if (r.Reason == "") != (len(r.Refused) == 0) {
		t.Errorf("Parse(%q): reason %q with %d refusals", body, r.Reason, len(r.Refused))
	}
	if r.Reason != "" && r.Reason != r.Refused[0].Reason {
		t.Errorf("Parse(%q): reason %q, first refusal %q", body, r.Reason, r.Refused[0].Reason)
	}
	seen := map[string]bool{}
	for _, s := range r.Addresses {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			t.Errorf("Parse(%q): address %q: %v", body, s, err)
			continue
		case a.String() != s:
			t.Errorf("Parse(%q): address %q is not normal (%q)", body, s, a.String())
		case a.Is4In6() || a.Zone() != "":
			t.Errorf("Parse(%q): address %q is mapped or zoned", body, s)
		case a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a == broadcast:
			t.Errorf("Parse(%q): address %q is not a host", body, s)
		case seen[s]:
			t.Errorf("Parse(%q): address %q twice", body, s)
		}
		seen[s] = true
	}
	for _, ref := range r.Refused {
		switch ref.Reason {
		case ReasonOverLimit:
			if len(r.Addresses) != MaxAddresses {
				t.Errorf("Parse(%q): %s with %d addresses", body, ref.Reason, len(r.Addresses))
			}
		case ReasonCIDR, ReasonUnspecified, ReasonLoopback, ReasonMulticast, ReasonLinkLocal,
			ReasonBroadcast, ReasonAmbiguous:
		default:
			t.Errorf("Parse(%q): unknown reason %q", body, ref.Reason)
		}
		if ref.Text == "" || !utf8.ValidString(ref.Text) {
			t.Errorf("Parse(%q): refusal text %q", body, ref.Text)
		}
	}
}

func FuzzMentionsBot(f *testing.F) {
	for _, tc := range mentionCases {
		f.Add(tc.body)
	}
	for _, tc := range parseCases {
		f.Add(tc.body)
	}
	f.Add("[qt][qt][/qt][To:1000001][/QT][返信 aid=1000001 to=1-2][rp to=1-2 aid=1000001][toall][/qt]")
	mention := "[To:" + bot + "]"
	f.Fuzz(func(t *testing.T, body string) {
		if MentionsBot(body, bot) && !strings.Contains(body, bot) {
			t.Errorf("MentionsBot(%q): true without the id", body)
		}
		// Nothing after a mention at the end can close a quote around it.
		if !MentionsBot(body+mention, bot) {
			t.Errorf("MentionsBot(%q + %q) = false", body, mention)
		}
		// In a quote that body cannot close or reopen early, nothing is
		// a mention.
		low := strings.ToLower(body)
		if !strings.Contains(low, "[/") && !strings.Contains(low, "[qt") {
			if q := "[qt]" + body + mention + body + "[/qt]"; MentionsBot(q, bot) {
				t.Errorf("MentionsBot(%q) = true", q)
			}
		}
	})
}

// FuzzMarkupIDs: account ids, message ids and quote times inside tags never
// change what Parse finds, whatever their digits, so none becomes an
// address, a refusal or a word.
func FuzzMarkupIDs(f *testing.F) {
	f.Add("203.0.113.5", uint64(1000001), uint64(1732400000))
	f.Add(" 1.2.3", uint64(4), uint64(5))
	f.Add(".", uint64(192), uint64(168))
	f.Add("::", uint64(2001), uint64(1))
	f.Add("[To:1]x さん[qt]a[/qt]ありがとう", uint64(1790000000000000000), uint64(567890123))
	f.Fuzz(func(t *testing.T, body string, id, tm uint64) {
		wrap := func(id, tm string) string {
			return "[To:" + id + "]" + body + "[rp aid=" + id + " to=" + tm + "-" + id + "]" + body +
				"[qt][qtmeta aid=" + id + " time=" + tm + "]" + body + "[/qt][piconname:" + id + "]" + body +
				"[task aid=" + id + " st=open lt=" + tm + "]" + body + "[/task]"
		}
		a, b := wrap(strconv.FormatUint(id, 10), strconv.FormatUint(tm, 10)), wrap("1", "2")
		if ra, rb := Parse(a), Parse(b); !reflect.DeepEqual(ra, rb) {
			t.Errorf("Parse(%q) = %s\nParse(%q) = %s", a, js(ra), b, js(rb))
		}
	})
}
