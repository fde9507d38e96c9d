package lookup_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/lambdas/lookup"
	"sshguard-unban/local/s3local"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const bucket = "lists"

func start(t testing.TB) *httptest.Server {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	srv := httptest.NewServer(s3local.New(bucket))
	t.Cleanup(srv.Close)
	return srv
}

type host struct {
	id      string
	age     time.Duration
	entries []string
	own     []string // the host's own addresses, as its report gives them
}

func store(t testing.TB, srv *httptest.Server, hosts ...host) {
	t.Helper()
	st := banlist.NewStore(s3local.NewClient(srv.URL), banlist.Location{Bucket: bucket, Prefix: "p"}, nil)
	var ix []banlist.IndexHost
	for _, h := range hosts {
		tm := now.Add(-h.age).Format(time.RFC3339)
		r := hostreport.Report{Host: "web-" + h.id, Time: tm, Addresses: h.own}
		for _, e := range h.entries {
			r.Entries = append(r.Entries, hostreport.Entry{Entry: e})
		}
		ix = append(ix, banlist.NewIndexHost(banlist.HostList{InstanceID: h.id, StoredAt: tm, Report: r}))
	}
	if err := st.UpdateIndex(context.Background(), ix, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func handler(srv *httptest.Server) *lookup.Handler {
	return lookup.New(s3local.NewClient(srv.URL), lookup.Config{Bucket: bucket, Prefix: "p", Freshness: 3 * time.Minute,
		Now: func() time.Time { return now }}, nil)
}

func summary(r workflow.LookupResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listed=%d hosts=%d stale=%d", r.ListedHosts, r.Hosts, r.StaleHosts)
	for _, t := range r.Listed {
		fmt.Fprintf(&b, " %s[", t.InstanceID)
		for _, m := range t.Matches {
			fmt.Fprintf(&b, "%s<%s ", m.Address, m.Entry)
		}
		b.WriteString("]")
	}
	for _, s := range r.Servers {
		fmt.Fprintf(&b, " server %s=%v/%d", s.Address, s.Hosts, s.Count)
	}
	return b.String()
}

// What the stored lists say, for the audit: the lookup decides nothing (the
// hosts are asked anyway), so stale lists, a missing or empty index are just
// recorded.
func TestLookup(t *testing.T) {
	fresh := []host{
		{id: "i-a", age: time.Minute, entries: []string{"192.0.2.12", "198.51.100.0/24"}},
		{id: "i-b", age: 2 * time.Minute, entries: []string{"2001:db8::1", "2001:db8:1::/48"}},
		{id: "i-c", age: 0, entries: nil},
	}
	cases := []struct {
		name  string
		hosts []host // nil: no index object at all
		empty bool   // an index with no hosts
		addrs []string
		want  string
	}{
		{"exact match", fresh, false, []string{"192.0.2.12"},
			"listed=1 hosts=3 stale=0 i-a[192.0.2.12<192.0.2.12 ]"},
		{"string prefix is not a match", fresh, false, []string{"192.0.2.1"},
			"listed=0 hosts=3 stale=0"},
		{"prefix match", fresh, false, []string{"198.51.100.77"},
			"listed=1 hosts=3 stale=0 i-a[198.51.100.77<198.51.100.0/24 ]"},
		{"ipv6 exact and prefix", fresh, false, []string{"2001:db8::1", "2001:db8:1:2::3"},
			"listed=1 hosts=3 stale=0 i-b[2001:db8::1<2001:db8::1 2001:db8:1:2::3<2001:db8:1::/48 ]"},
		{"several hosts", append(fresh, host{id: "i-d", age: time.Minute, entries: []string{"192.0.2.0/28"}}), false, []string{"192.0.2.12"},
			"listed=2 hosts=4 stale=0 i-a[192.0.2.12<192.0.2.12 ] i-d[192.0.2.12<192.0.2.0/28 ]"},
		{"a stale list is recorded as stale, matches and all", append(fresh, host{id: "i-old", age: 10 * time.Minute, entries: []string{"203.0.113.9"}}), false, []string{"192.0.2.12", "203.0.113.9"},
			"listed=2 hosts=4 stale=1 i-a[192.0.2.12<192.0.2.12 ] i-old[203.0.113.9<203.0.113.9 ]"},
		{"someone asks for a server's own address", append(fresh,
			host{id: "i-g1", age: time.Minute, own: []string{"203.0.113.10", "2001:DB8:FFFF:0::10"}},
			host{id: "i-g2", age: time.Minute, own: []string{"203.0.113.10"}}), false, []string{"203.0.113.10", "2001:db8:ffff::10", "192.0.2.12"},
			"listed=1 hosts=5 stale=0 i-a[192.0.2.12<192.0.2.12 ] server 203.0.113.10=[web-i-g1 web-i-g2]/2 server 2001:db8:ffff::10=[web-i-g1]/1"},
		{"a neighbour of a server's address is not it", append(fresh, host{id: "i-g1", age: time.Minute, own: []string{"203.0.113.10"}}), false, []string{"203.0.113.11"},
			"listed=0 hosts=4 stale=0"},
		{"empty index", nil, true, []string{"192.0.2.12"}, "listed=0 hosts=0 stale=0"},
		{"missing index", nil, false, []string{"192.0.2.12"}, "listed=0 hosts=0 stale=0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := start(t)
			if c.hosts != nil || c.empty {
				store(t, srv, c.hosts...)
			}
			res, err := handler(srv).Handle(context.Background(), workflow.LookupInput{Addresses: c.addrs})
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(res); got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// A block on more hosts than the state may name: the count stays exact.
func TestListedIsBounded(t *testing.T) {
	srv := start(t)
	var hosts []host
	for i := range workflow.MaxListed + 7 {
		hosts = append(hosts, host{id: fmt.Sprintf("i-%03d", i), age: time.Minute, entries: []string{"192.0.2.0/24"}})
	}
	store(t, srv, hosts...)
	res, err := handler(srv).Handle(context.Background(), workflow.LookupInput{Addresses: []string{"192.0.2.5"}})
	if err != nil || len(res.Listed) != workflow.MaxListed || res.ListedHosts != workflow.MaxListed+7 {
		t.Fatalf("listed %d of %d: %v", len(res.Listed), res.ListedHosts, err)
	}
}

func TestLookupErrors(t *testing.T) {
	srv := start(t)
	store(t, srv, host{id: "i-a", entries: []string{"192.0.2.12"}})
	h := handler(srv)
	for _, addrs := range [][]string{nil, {"192.0.2.999"}, {"2001:DB8::1"}, {"::ffff:192.0.2.12"}, {"192.0.2.0/24"}} {
		_, err := h.Handle(context.Background(), workflow.LookupInput{Addresses: addrs})
		var inv *taskerr.InvalidInputError
		if !errors.As(err, &inv) {
			t.Errorf("%v: error %v, want InvalidInputError", addrs, err)
		}
	}
	// S3 unreachable: a transient error, so the state machine retries.
	srv.Close()
	_, err := h.Handle(context.Background(), workflow.LookupInput{Addresses: []string{"192.0.2.12"}})
	if !taskerr.IsTransient(err) {
		t.Fatalf("unreachable S3: %v, want TransientError", err)
	}
}

func TestCorruptIndexRecordsNothing(t *testing.T) {
	srv := start(t)
	_, err := s3local.NewClient(srv.URL).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket),
		Key: aws.String("p/index.json"), Body: bytes.NewReader([]byte(`{"version":`))})
	if err != nil {
		t.Fatal(err)
	}
	res, err := handler(srv).Handle(context.Background(), workflow.LookupInput{Addresses: []string{"192.0.2.12"}})
	if err != nil || res.Hosts != 0 || len(res.Listed) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// fleet builds hosts × entries distinct IPv4 entries (every 50th a /24) plus
// one known match on the last host.
func fleet(hosts, entries int) []host {
	out := make([]host, hosts)
	for h := range hosts {
		es := make([]string, entries)
		for e := range entries {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(0x0b000000+h*entries+e)) // 11.x.x.x
			a := netip.AddrFrom4(b)
			if e%50 == 0 {
				es[e] = netip.PrefixFrom(a, 24).Masked().String()
			} else {
				es[e] = a.String()
			}
		}
		out[h] = host{id: fmt.Sprintf("i-%017x", h), age: time.Minute, entries: es}
	}
	out[hosts-1].entries[entries-1] = "192.0.2.12"
	return out
}

// BenchmarkLookup1000x1000 measures one lookup handler call against
// gofakes3 over HTTP: GET of the index (1,000 hosts × 1,000 entries), JSON
// decode, and the scan for two addresses.
// BenchmarkLookup is the whole task on fleets of 1,000 and 5,000 hosts with
// 1,000 entries each: the GET and decode of the index from S3 (gofakes3
// over loopback) and the match of two addresses.
func BenchmarkLookup(b *testing.B) {
	for _, hosts := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("%dx1000", hosts), func(b *testing.B) {
			srv := start(b)
			store(b, srv, fleet(hosts, 1000)...)
			h := handler(srv)
			in := workflow.LookupInput{Addresses: []string{"192.0.2.12", "2001:db8::1"}}
			ctx := context.Background()
			out, err := s3local.NewClient(srv.URL).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/index.json")})
			if err != nil {
				b.Fatal(err)
			}
			h.Log = slog.New(slog.DiscardHandler)
			b.ReportAllocs()
			for b.Loop() {
				res, err := h.Handle(ctx, in)
				if err != nil || len(res.Listed) != 1 || res.StaleHosts != 0 {
					b.Fatalf("%+v %v", res, err)
				}
			}
			b.ReportMetric(float64(aws.ToInt64(out.ContentLength))/1e6, "index-MB")
		})
	}
}

// BenchmarkMatch is the scan alone, on an index already in memory.
func BenchmarkMatch(b *testing.B) {
	for _, hosts := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("%dx1000", hosts), func(b *testing.B) {
			var ix banlist.Index
			for _, h := range fleet(hosts, 1000) {
				r := hostreport.Report{Host: h.id, Time: now.Add(-h.age).Format(time.RFC3339)}
				for _, e := range h.entries {
					r.Entries = append(r.Entries, hostreport.Entry{Entry: e})
				}
				ix.Hosts = append(ix.Hosts, banlist.NewIndexHost(banlist.HostList{InstanceID: h.id, StoredAt: r.Time, Report: r}))
			}
			addrs := []netip.Addr{netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("2001:db8::1")}
			b.ReportAllocs()
			for b.Loop() {
				if res := lookup.Match(&ix, addrs, now, 3*time.Minute); len(res.Listed) != 1 {
					b.Fatal(res)
				}
			}
		})
	}
}
