package banlist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/local/s3local"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
)

func TestParseEntry(t *testing.T) {
	cases := []struct{ in, want string }{
		{"192.0.2.12", "192.0.2.12"},
		{" 192.0.2.12 ", "192.0.2.12"},
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"192.0.2.77/24", "192.0.2.0/24"}, // masked
		{"192.0.2.12/32", "192.0.2.12"},
		{"2001:DB8::1", "2001:db8::1"},
		{"2001:db8:0:0::/64", "2001:db8::/64"},
		{"::ffff:192.0.2.12", "192.0.2.12"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"fe80::1%eth0", ""},
		{"192.0.2", ""},
		{"192.0.2.0/33", ""},
		{"", ""},
	}
	for _, c := range cases {
		p, err := banlist.ParseEntry(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("ParseEntry(%q) = %v, want error", c.in, p)
			}
			continue
		}
		if err != nil || banlist.EntryString(p) != c.want {
			t.Errorf("ParseEntry(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"192.0.2.12", true},
		{"2001:db8::1", true},
		{"2001:DB8::1", false},              // not lowercase
		{"2001:db8:0:0:0:0:0:1", false},     // not compressed
		{"::ffff:192.0.2.12", false},        // IPv4-mapped
		{"192.0.2.012", false},              // leading zero (rejected by netip)
		{"fe80::1%eth0", false},             // zone
		{"0.0.0.0", false},                  // unspecified
		{"224.0.0.1", false},                // multicast
		{"192.0.2.0/24", false},             // prefix
		{"192.0.2.12; reboot", false},       // injection attempt
		{" 192.0.2.12", false},              // whitespace
		{"10.1.2.3", true},                  // private is fine
		{"2001:db8::ffff:192.0.2.1", false}, // netip prints 2001:db8::ffff:c000:201
	}
	for _, c := range cases {
		_, err := banlist.ParseAddress(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseAddress(%q) error %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func hostList(id, tm string, entries ...string) banlist.HostList {
	r := hostreport.Report{Host: "host-" + id, Time: tm, Backend: "nft-sets"}
	for _, e := range entries {
		fam := 4
		if strings.Contains(e, ":") {
			fam = 6
		}
		r.Entries = append(r.Entries, hostreport.Entry{Entry: e, Family: fam})
	}
	return banlist.HostList{InstanceID: id, StoredAt: tm, Report: r}
}

func TestAppendMatches(t *testing.T) {
	h := banlist.NewIndexHost(hostList("i-1", "2025-01-01T00:00:00Z",
		"192.0.2.12", "198.51.100.0/24", "203.0.113.7", "203.0.113.7", // duplicate
		"2001:db8::1", "2001:db8:1::/48", "2001:db8:2::/72", "not-an-address"))
	if h.Entries != 6 || h.Unparsed != 1 {
		t.Fatalf("entries %d unparsed %d", h.Entries, h.Unparsed)
	}
	cases := []struct {
		addr string
		want string
	}{
		{"192.0.2.12", "192.0.2.12"},
		{"192.0.2.1", ""}, // a string prefix of an entry is not a match
		{"192.0.2.123", ""},
		{"198.51.100.200", "198.51.100.0/24"},
		{"198.51.101.1", ""},
		{"203.0.113.7", "203.0.113.7"},
		{"2001:db8::1", "2001:db8::1"},
		{"2001:db8::2", ""},
		{"2001:db8:1:ffff::5", "2001:db8:1::/48"},
		{"2001:db8:2:0:ff::1", "2001:db8:2::/72"},
		{"2001:db8:2:0:100::1", ""}, // outside the /72
		{"::ffff:192.0.2.12", "192.0.2.12"},
	}
	for _, c := range cases {
		var got []string
		for _, p := range h.AppendMatches(nil, netip.MustParseAddr(c.addr)) {
			got = append(got, banlist.EntryString(p))
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s matched %v, want %q", c.addr, got, c.want)
		}
	}
	all := banlist.NewIndexHost(hostList("i-2", "2025-01-01T00:00:00Z", "0.0.0.0/0", "::/0"))
	for _, a := range []string{"192.0.2.1", "2001:db8::9"} {
		if n := len(all.AppendMatches(nil, netip.MustParseAddr(a))); n != 1 {
			t.Errorf("/0 matched %s %d times", a, n)
		}
	}
}

func newStore(t *testing.T) (*banlist.Store, *s3.Client) {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	srv := httptest.NewServer(s3local.New("lists"))
	t.Cleanup(srv.Close)
	client := s3local.NewClient(srv.URL)
	return banlist.NewStore(client, banlist.Location{Bucket: "lists", Prefix: "sshguard/"}, nil), client
}

func TestPutHost(t *testing.T) {
	st, srv := newStore(t)
	ctx := context.Background()
	st.Now = func() time.Time { return time.Date(2025, 1, 1, 0, 5, 0, 0, time.UTC) }

	first := hostList("i-0a", "2025-01-01T00:00:00Z", "192.0.2.1", "198.51.100.0/24")
	first.CommandID = "c1"
	r, err := st.PutHost(ctx, first)
	if err != nil || !r.Written || !r.First || len(r.New) != 0 {
		t.Fatalf("first: %+v %v", r, err)
	}
	second := hostList("i-0a", "2025-01-01T00:01:00Z", "192.0.2.1", "198.51.100.7/24", "2001:db8::5")
	second.CommandID = "c2"
	r, err = st.PutHost(ctx, second)
	if err != nil || !r.Written || r.First || strings.Join(r.New, ",") != "2001:db8::5" {
		t.Fatalf("second: %+v %v", r, err)
	}
	// The same report again (a retried store): nothing written, same news.
	r, err = st.PutHost(ctx, second)
	if err != nil || r.Written || strings.Join(r.New, ",") != "2001:db8::5" {
		t.Fatalf("re-store: %+v %v", r, err)
	}
	// An older report that arrives late does not replace the newer list.
	old := hostList("i-0a", "2025-01-01T00:00:30Z", "203.0.113.1")
	old.CommandID = "c0"
	r, err = st.PutHost(ctx, old)
	if err != nil || r.Written || !r.Superseded || r.Stored.CommandID != "c2" {
		t.Fatalf("older: %+v %v", r, err)
	}
	got, _, err := banlist.ReadHost(ctx, srv, st.Location, "i-0a")
	if err != nil || got.CommandID != "c2" || got.StoredAt != "2025-01-01T00:05:00Z" || len(got.Report.Entries) != 3 {
		t.Fatalf("stored: %+v %v", got, err)
	}
	// First seen: an entry kept from the first list keeps its date; a new
	// one (and the /24 that replaced another) dates from the second.
	wantSeen := map[string]string{"192.0.2.1": "2025-01-01T00:00:00Z", "198.51.100.0/24": "2025-01-01T00:00:00Z", "2001:db8::5": "2025-01-01T00:01:00Z"}
	if !maps.Equal(got.FirstSeen, wantSeen) {
		t.Fatalf("first seen %v, want %v", got.FirstSeen, wantSeen)
	}
	// A block that goes and comes back is seen anew.
	third := hostList("i-0a", "2025-01-01T00:02:00Z", "2001:db8::5")
	third.CommandID = "c3"
	fourth := hostList("i-0a", "2025-01-01T00:03:00Z", "2001:db8::5", "192.0.2.1")
	fourth.CommandID = "c4"
	for _, l := range []banlist.HostList{third, fourth} {
		if _, err := st.PutHost(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	got, _, _ = banlist.ReadHost(ctx, srv, st.Location, "i-0a")
	if got.FirstSeen["192.0.2.1"] != "2025-01-01T00:03:00Z" || got.FirstSeen["2001:db8::5"] != "2025-01-01T00:01:00Z" {
		t.Fatalf("first seen after a gap: %v", got.FirstSeen)
	}
	// Layout: PREFIX/hosts/ID.json and nothing written for the index yet.
	if _, err := srv.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("lists"), Key: aws.String("sshguard/hosts/i-0a.json")}); err != nil {
		t.Fatalf("host object key: %v", err)
	}
	if _, _, err := banlist.ReadIndex(ctx, srv, st.Location); !errors.Is(err, banlist.ErrNotFound) {
		t.Fatalf("missing index: %v", err)
	}
	if _, err := st.PutHost(ctx, hostList("../x", "2025-01-01T00:00:00Z")); err == nil {
		t.Fatal("path-like instance id accepted")
	}
}

// Many writers update the index at once; with conditional writes every
// host survives. (Without If-Match, last-writer-wins loses most of them.)
func TestConcurrentIndexUpdates(t *testing.T) {
	st, srv := newStore(t)
	ctx := context.Background()
	st.MaxAttempts = 50
	const writers = 12
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := hostList(fmt.Sprintf("i-%02d", w), "2025-01-01T00:00:00Z", fmt.Sprintf("192.0.2.%d", w+1))
			errs[w] = st.UpdateIndex(ctx, []banlist.IndexHost{banlist.NewIndexHost(l)}, time.Time{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ix, _, err := banlist.ReadIndex(ctx, srv, st.Location)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Hosts) != writers {
		t.Fatalf("index has %d hosts, want %d", len(ix.Hosts), writers)
	}
	for i, h := range ix.Hosts {
		if h.InstanceID != fmt.Sprintf("i-%02d", i) {
			t.Fatalf("hosts not sorted: %d %s", i, h.InstanceID)
		}
	}
}

func TestIndexMergeKeepsNewerAndForgets(t *testing.T) {
	st, srv := newStore(t)
	ctx := context.Background()
	newer := banlist.NewIndexHost(hostList("i-a", "2025-01-01T00:10:00Z", "192.0.2.1"))
	older := banlist.NewIndexHost(hostList("i-a", "2025-01-01T00:05:00Z", "192.0.2.2"))
	ancient := banlist.NewIndexHost(hostList("i-b", "2024-12-01T00:00:00Z", "192.0.2.3"))
	if err := st.UpdateIndex(ctx, []banlist.IndexHost{newer, ancient}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	forget := time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC)
	if err := st.UpdateIndex(ctx, []banlist.IndexHost{older}, forget); err != nil {
		t.Fatal(err)
	}
	ix, _, err := banlist.ReadIndex(ctx, srv, st.Location)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Hosts) != 1 || ix.Hosts[0].Time != "2025-01-01T00:10:00Z" {
		t.Fatalf("hosts %+v", ix.Hosts)
	}

	// A stale ETag is refused by the store (the conflict the loop retries on).
	_, etag, _ := banlist.ReadIndex(ctx, srv, st.Location)
	if err := st.UpdateIndex(ctx, []banlist.IndexHost{banlist.NewIndexHost(hostList("i-c", "2025-01-01T00:10:00Z"))}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err = srv.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lists"), Key: aws.String(st.IndexKey()),
		Body: bytes.NewReader([]byte("{}")), IfMatch: aws.String(etag)})
	if err == nil {
		t.Fatal("write with a stale ETag succeeded")
	}
}

func TestCorruptIndexIsReplaced(t *testing.T) {
	st, srv := newStore(t)
	ctx := context.Background()
	_, err := srv.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lists"), Key: aws.String(st.IndexKey()),
		Body: bytes.NewReader([]byte("not json"))})
	if err != nil {
		t.Fatal(err)
	}
	var corrupt *banlist.CorruptError
	if _, _, err := banlist.ReadIndex(ctx, srv, st.Location); !errors.As(err, &corrupt) {
		t.Fatalf("read corrupt: %v", err)
	}
	if err := st.UpdateIndex(ctx, []banlist.IndexHost{banlist.NewIndexHost(hostList("i-a", "2025-01-01T00:10:00Z", "192.0.2.1"))}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	ix, _, err := banlist.ReadIndex(ctx, srv, st.Location)
	if err != nil || len(ix.Hosts) != 1 {
		t.Fatalf("%+v %v", ix, err)
	}
}
