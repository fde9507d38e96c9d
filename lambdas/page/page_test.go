package page_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/net/html"

	"sshguard-unban/lambdas/page"
	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/local/s3local"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/history"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/pagelink"
)

const (
	bucket = "lists"
	sre    = "9000001"
	other  = "9000002" // was an SRE; no longer on the list
	arn    = "arn:aws:states:ap-northeast-1:123456789012:stateMachine:unban"
)

var key = []byte("the page key, at least thirty-two bytes long")

type env struct {
	h     *page.Handler
	now   time.Time
	logs  *bytes.Buffer
	s3    *s3.Client
	store *banlist.Store
}

// setup: three hosts' lists in S3 (gofakes3), as refresh-list stores them,
// and the last day's requests in the policy table (dynalite). web-1 is
// fresh, git-1 stale, db-1 silent; a hostile host name and a hostile
// address list come from the reports and the history.
func setup(t *testing.T) env {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	srv := httptest.NewServer(s3local.New(bucket))
	t.Cleanup(srv.Close)
	client := s3local.NewClient(srv.URL)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	e := env{now: now, logs: &bytes.Buffer{}, s3: client}
	e.store = banlist.NewStore(client, banlist.Location{Bucket: bucket, Prefix: "banlists/"}, slog.New(slog.NewTextHandler(io.Discard, nil)))

	e.put(t, "i-0000000000000000a", "web-1", "nft-sets", now.Add(-time.Minute),
		hostreport.Entry{Entry: "203.0.113.5", Family: 4}, hostreport.Entry{Entry: "198.51.100.0/24", Family: 4, Blacklisted: true})
	e.put(t, "i-0000000000000000b", "git-1", "iptables", now.Add(-8*time.Minute),
		hostreport.Entry{Entry: "203.0.113.5", Family: 4}, hostreport.Entry{Entry: "2001:db8::7", Family: 6})
	e.put(t, "i-0000000000000000c", `<script>alert("db")</script>`, "ipset", now.Add(-2*time.Hour),
		hostreport.Entry{Entry: "192.0.2.99", Family: 4})

	db := dynalitetest.Table(t, "policy")
	hist := &history.Store{DB: db, Table: "policy", Now: func() time.Time { return now }}
	for _, r := range []history.Record{
		{Time: now.Add(-3 * time.Hour), AccountID: "3000001", RoomID: "2000001", Addresses: []string{"203.0.113.5"}, Result: history.ResultUnblocked, Hosts: []string{"web-1"}, Execution: "chatwork-2000001-1790000000000000001"},
		{Time: now.Add(-time.Hour), AccountID: "3000002", RoomID: "2000001", Addresses: []string{"<img src=x onerror=alert(1)>"}, Result: history.ResultNotBlocked, Execution: "chatwork-2000001-1790000000000000002"},
		{Time: now.Add(-30 * time.Hour), AccountID: "3000003", Addresses: []string{"192.0.2.250"}, Result: history.ResultUnblocked, Execution: "too-old"},
	} {
		if err := hist.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	e.h = page.New(client, hist, func(context.Context) ([]byte, error) { return key, nil }, page.Config{
		Bucket: bucket, Prefix: "banlists/", Freshness: 5 * time.Minute, SREAccounts: []string{sre},
		StateMachineARN: arn, Now: func() time.Time { return now },
	}, slog.New(slog.NewJSONHandler(e.logs, nil)))
	return e
}

// put stores a host's list twice, as two refreshes would: the first list an
// hour before the second, with all but the last entry, so first-seen dates
// differ.
func (e env) put(t *testing.T, id, name, backend string, at time.Time, entries ...hostreport.Entry) {
	t.Helper()
	ctx := context.Background()
	var ih []banlist.IndexHost
	for i, l := range []banlist.HostList{
		{InstanceID: id, CommandID: "c1", Report: hostreport.Report{Host: name, Backend: backend, Time: at.Add(-time.Hour).Format(time.RFC3339), Entries: entries[:len(entries)-1]}},
		{InstanceID: id, CommandID: "c2", Report: hostreport.Report{Host: name, Backend: backend, Time: at.Format(time.RFC3339), Entries: entries}},
	} {
		stored := l.Report.Time
		e.store.Now = func() time.Time { t, _ := time.Parse(time.RFC3339, stored); return t }
		r, err := e.store.PutHost(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			ih = append(ih, banlist.NewIndexHost(r.Stored))
		}
	}
	if err := e.store.UpdateIndex(ctx, ih, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func (e env) link(t *testing.T, account string, expires time.Time) url.Values {
	t.Helper()
	q, err := pagelink.Sign(key, account, expires)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func get(t *testing.T, h *page.Handler, path string, q url.Values, hdr map[string]string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	req := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path, RawQueryString: q.Encode(), Headers: hdr,
		RequestContext: events.APIGatewayV2HTTPRequestContext{DomainName: "api.example",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: path, SourceIP: "198.51.100.23"}}}
	// Through JSON, as API Gateway and Lambda exchange it.
	raw, _ := json.Marshal(req)
	var in events.APIGatewayV2HTTPRequest
	json.Unmarshal(raw, &in)
	res, err := h.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// doc parses a page and returns its text per element id and every
// element, for checks that do not depend on the markup's spacing.
type doc struct {
	root *html.Node
}

func parse(t *testing.T, body string) doc {
	t.Helper()
	n, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return doc{n}
}

func (d doc) walk(f func(*html.Node)) {
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		f(n)
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(d.root)
}

func attr(n *html.Node, k string) string {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows returns the text of each body row of the table in the section
// headed by id.
func (d doc) rows(id string) [][]string {
	var out [][]string
	d.walk(func(n *html.Node) {
		if n.Type != html.ElementNode || n.Data != "section" || attr(n, "aria-labelledby") != id {
			return
		}
		doc{n}.walk(func(tr *html.Node) {
			if tr.Type != html.ElementNode || tr.Data != "tr" || tr.Parent.Data != "tbody" {
				return
			}
			var cells []string
			for c := tr.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && c.Data == "td" {
					cells = append(cells, text(c))
				}
			}
			out = append(out, cells)
		})
	})
	return out
}

func (d doc) elements(tag string) []*html.Node {
	var out []*html.Node
	d.walk(func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, n)
		}
	})
	return out
}

// An SRE opens the link the bot gave them: every host with its state,
// every block with its hosts, first sighting and blacklist, and the last
// day's requests with console links.
func TestBanListPage(t *testing.T) {
	e := setup(t)
	res := get(t, e.h, "/bans", e.link(t, sre, e.now.Add(10*time.Minute)), map[string]string{"accept-language": "en-US,en;q=0.9"})
	if res.StatusCode != 200 || res.Headers["Content-Type"] != "text/html; charset=utf-8" {
		t.Fatalf("%d %v", res.StatusCode, res.Headers)
	}
	checkHeaders(t, res)
	d := parse(t, res.Body)
	hosts := d.rows("hosts-h")
	want := [][]string{
		{`<script>alert("db")</script>`, "i-0000000000000000c", "ipset", "2 h ago", "silent", "1"},
		{"git-1", "i-0000000000000000b", "iptables", "8 min ago", "stale", "2"},
		{"web-1", "i-0000000000000000a", "nft-sets", "1 min ago", "fresh", "2"},
	}
	if !equalRows(hosts, want) {
		t.Errorf("hosts\n%q\nwant\n%q", hosts, want)
	}
	blocks := d.rows("blocks-h")
	wantBlocks := [][]string{
		// Newest first; 203.0.113.5 was seen on web-1 two hours ago
		// (its first list), on git-1 later.
		{"2001:db8::7", "git-1", "2026-12-01 09:52 UTC", "no"},
		{"198.51.100.0/24", "web-1", "2026-12-01 09:59 UTC", "yes web-1"},
		{"203.0.113.5", "git-1, web-1", "2026-12-01 08:52 UTC", "no"},
		{"192.0.2.99", `<script>alert("db")</script>`, "2026-12-01 08:00 UTC", "no"},
	}
	if !sameSet(blocks, wantBlocks) {
		t.Errorf("blocks\n%q\nwant\n%q", blocks, wantBlocks)
	}
	reqs := d.rows("requests-h")
	if len(reqs) != 2 || reqs[0][2] != "<img src=x onerror=alert(1)>" || reqs[0][3] != "not blocked" ||
		reqs[1][1] != "account 3000001 (room 2000001)" || reqs[1][3] != "unblocked (web-1)" {
		t.Errorf("requests %q", reqs)
	}
	var console []string
	for _, a := range d.elements("a") {
		if strings.Contains(attr(a, "href"), "console.aws.amazon.com") {
			console = append(console, attr(a, "href"))
			if !strings.Contains(attr(a, "rel"), "noreferrer") {
				t.Errorf("console link without noreferrer: %v", a.Attr)
			}
		}
	}
	wantLink := "https://ap-northeast-1.console.aws.amazon.com/states/home?region=ap-northeast-1#/v2/executions/details/arn:aws:states:ap-northeast-1:123456789012:execution:unban:chatwork-2000001-1790000000000000001"
	if len(console) != 2 || console[1] != wantLink {
		t.Errorf("console links %q", console)
	}
	// Hostile values are text, never markup: no script element but the
	// none the page has, no injected image.
	if n := len(d.elements("script")) + len(d.elements("img")); n != 0 {
		t.Errorf("%d script or img elements", n)
	}
	if !strings.Contains(res.Body, "&lt;script&gt;alert(&#34;db&#34;)&lt;/script&gt;") {
		t.Error("the host name is not escaped as expected")
	}
	// Accessible: the language, one h1, a labelled search field.
	if h := d.elements("html"); attr(h[0], "lang") != "en" || len(d.elements("h1")) != 1 || len(d.elements("h2")) != 3 {
		t.Error("lang or headings")
	}
	checkSearchForm(t, d, e.link(t, sre, e.now.Add(10*time.Minute)))
}

func checkHeaders(t *testing.T, res events.APIGatewayV2HTTPResponse) {
	t.Helper()
	for k, v := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
		if res.Headers[k] != v {
			t.Errorf("%s: %q", k, res.Headers[k])
		}
	}
	csp := res.Headers["Content-Security-Policy"]
	if !strings.HasPrefix(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
}

// The filter works without JavaScript: a GET form whose hidden fields
// carry the signed parameters, with a label for its one field.
func checkSearchForm(t *testing.T, d doc, signed url.Values) {
	t.Helper()
	forms := d.elements("form")
	if len(forms) != 1 || attr(forms[0], "method") != "get" {
		t.Fatalf("forms %d", len(forms))
	}
	got := url.Values{}
	labelled := false
	doc{forms[0]}.walk(func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" {
			got.Set(attr(n, "name"), attr(n, "value"))
		}
		if n.Type == html.ElementNode && n.Data == "label" && attr(n, "for") == "q" {
			labelled = true
		}
	})
	for _, k := range []string{pagelink.ParamAccount, pagelink.ParamExpires, pagelink.ParamSig} {
		if got.Get(k) != signed.Get(k) {
			t.Errorf("hidden %s = %q, want %q", k, got.Get(k), signed.Get(k))
		}
	}
	if !labelled || !got.Has("q") {
		t.Error("the search field has no label")
	}
}

func equalRows(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "|") != strings.Join(b[i], "|") {
			return false
		}
	}
	return true
}

func sameSet(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, r := range a {
		seen[strings.Join(r, "|")]++
	}
	for _, r := range b {
		seen[strings.Join(r, "|")]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// Filtering and languages: q narrows every table (an address finds the
// range that holds it); Japanese by default, English by lang= or the
// browser's language.
func TestFilterAndLanguage(t *testing.T) {
	e := setup(t)
	link := e.link(t, sre, e.now.Add(10*time.Minute))
	with := func(kv ...string) url.Values {
		q := url.Values{}
		for k, v := range link {
			q[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q
	}
	tests := []struct {
		name                  string
		q                     url.Values
		hdr                   map[string]string
		lang                  string
		hosts, blocks, reqs   int
		wantText, wantNotText string
	}{
		{"no filter, Japanese by default", with(), nil, "ja", 3, 4, 2, "sshguard のブロック一覧", "Blocked addresses"},
		{"lang=en", with("lang", "en"), nil, "en", 3, 4, 2, "Blocked addresses and ranges", "ブロック一覧"},
		{"Accept-Language en", with(), map[string]string{"accept-language": "en-GB,en;q=0.8"}, "en", 3, 4, 2, "Recent requests", ""},
		{"lang=ja beats the browser", with("lang", "ja"), map[string]string{"accept-language": "en"}, "ja", 3, 4, 2, "最近のご依頼", ""},
		{"by host", with("q", "git"), nil, "ja", 1, 2, 0, "", ""},
		{"an address inside a blocked range", with("q", "198.51.100.77"), nil, "ja", 0, 1, 0, "198.51.100.0/24", ""},
		{"an address", with("q", "203.0.113.5"), nil, "ja", 0, 1, 1, "", ""},
		{"by account", with("q", "3000002"), nil, "ja", 0, 0, 1, "", ""},
		{"by state", with("q", "silent", "lang", "en"), nil, "en", 1, 0, 0, "", ""},
		{"hostile query", with("q", `<script>alert("db")`), nil, "ja", 1, 1, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, e.h, "/bans", tt.q, tt.hdr)
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			d := parse(t, res.Body)
			if l := attr(d.elements("html")[0], "lang"); l != tt.lang {
				t.Errorf("lang %q", l)
			}
			h, b, r := len(d.rows("hosts-h")), len(d.rows("blocks-h")), len(d.rows("requests-h"))
			if tt.name == "hostile query" {
				// Matches the host whose name holds "<script>", and its block.
				if len(d.elements("script")) != 0 {
					t.Fatal("the query became markup")
				}
			}
			if h != tt.hosts || b != tt.blocks || r != tt.reqs {
				t.Errorf("rows %d/%d/%d, want %d/%d/%d", h, b, r, tt.hosts, tt.blocks, tt.reqs)
			}
			if body := text(d.root); !strings.Contains(body, tt.wantText) || (tt.wantNotText != "" && strings.Contains(body, tt.wantNotText)) {
				t.Errorf("text: want %q, not %q", tt.wantText, tt.wantNotText)
			}
			for _, in := range d.elements("input") {
				if attr(in, "name") == "q" && attr(in, "value") != tt.q.Get("q") {
					t.Errorf("search field holds %q", attr(in, "value"))
				}
			}
		})
	}
}

// Without a valid link the page says 403 and nothing else, the same for
// every reason; the log never carries the signature.
func TestRefused(t *testing.T) {
	e := setup(t)
	good := e.link(t, sre, e.now.Add(10*time.Minute))
	forged := url.Values{}
	for k, v := range good {
		forged[k] = v
	}
	forged.Set(pagelink.ParamAccount, "9000003")
	otherKey, _ := pagelink.Sign([]byte("another key that is also long enough!!"), sre, e.now.Add(10*time.Minute))
	tests := map[string]url.Values{
		"no link":            {},
		"expired":            e.link(t, sre, e.now.Add(-time.Second)),
		"forged account":     forged,
		"another key":        otherKey,
		"no longer an SRE":   e.link(t, other, e.now.Add(10*time.Minute)),
		"far in the future":  e.link(t, sre, e.now.Add(24*time.Hour)),
		"signature only":     {pagelink.ParamSig: good[pagelink.ParamSig]},
		"duplicated account": {pagelink.ParamAccount: {sre, sre}, pagelink.ParamExpires: good[pagelink.ParamExpires], pagelink.ParamSig: good[pagelink.ParamSig]},
	}
	for name, q := range tests {
		t.Run(name, func(t *testing.T) {
			res := get(t, e.h, "/bans", q, nil)
			if res.StatusCode != 403 || res.Body != "Forbidden\n" || res.Headers["Content-Type"] != "text/plain; charset=utf-8" {
				t.Fatalf("%d %q %v", res.StatusCode, res.Body, res.Headers)
			}
			checkHeaders(t, res)
		})
	}
	// A malformed query string.
	req := events.APIGatewayV2HTTPRequest{RawPath: "/bans", RawQueryString: "a=%zz",
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/bans"}}}
	if res, _ := e.h.Handle(context.Background(), req); res.StatusCode != 403 || res.Body != "Forbidden\n" {
		t.Errorf("malformed: %d %q", res.StatusCode, res.Body)
	}
	if strings.Contains(e.logs.String(), good.Get(pagelink.ParamSig)) {
		t.Errorf("the log carries a signature: %s", e.logs.String())
	}
	// Other routes and methods.
	for _, p := range []string{"/", "/bans/", "/ip/x", "/BANS"} {
		if res := get(t, e.h, p, good, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
}

// /ip: the address alone for curl, a small page for a browser.
func TestIP(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name, accept, lang string
		html               bool
	}{
		{"curl", "*/*", "", false},
		{"no accept header", "", "", false},
		{"a browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", true},
		{"html refused", "text/html;q=0, text/plain", "", false},
		{"a browser in English", "text/html", "en", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.accept != "" {
				hdr["accept"] = tt.accept
			}
			q := url.Values{}
			if tt.lang != "" {
				q.Set("lang", tt.lang)
			}
			res := get(t, e.h, "/ip", q, hdr)
			checkHeaders(t, res)
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if !tt.html {
				if res.Body != "198.51.100.23\n" || res.Headers["Content-Type"] != "text/plain; charset=utf-8" {
					t.Fatalf("text answer %q %v", res.Body, res.Headers)
				}
				return
			}
			d := parse(t, res.Body)
			var field *html.Node
			for _, in := range d.elements("input") {
				if attr(in, "id") == "addr" {
					field = in
				}
			}
			if field == nil || attr(field, "value") != "198.51.100.23" || !hasAttr(field, "readonly") {
				t.Fatal("no read-only field with the address")
			}
			labels := 0
			for _, l := range d.elements("label") {
				if attr(l, "for") == "addr" {
					labels++
				}
			}
			want := map[string]string{"": "あなたの IP アドレス", "en": "Your IP address"}[tt.lang]
			if labels != 1 || text(d.elements("h1")[0]) != want {
				t.Errorf("label %d, h1 %q", labels, text(d.elements("h1")[0]))
			}
			// The copy button is progressive enhancement: hidden until
			// the script (allowed by its hash) shows it.
			for _, b := range d.elements("button") {
				if !hasAttr(b, "hidden") {
					t.Error("the copy button shows without JavaScript")
				}
			}
			if !strings.Contains(res.Headers["Content-Security-Policy"], "script-src 'sha256-") {
				t.Errorf("CSP %q", res.Headers["Content-Security-Policy"])
			}
			if !strings.Contains(text(d.root), "curl https://api.example/ip") {
				t.Error("no curl hint")
			}
		})
	}
}

func hasAttr(n *html.Node, k string) bool {
	for _, a := range n.Attr {
		if a.Key == k {
			return true
		}
	}
	return false
}

// The page's lists may be unreadable: the page says so and still shows
// the requests.
func TestListsUnreadable(t *testing.T) {
	e := setup(t)
	if _, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("banlists/index.json"),
		Body: bytes.NewReader([]byte("{not json"))}); err != nil {
		t.Fatal(err)
	}
	res := get(t, e.h, "/bans", e.link(t, sre, e.now.Add(time.Minute)), map[string]string{"accept-language": "en"})
	d := parse(t, res.Body)
	if res.StatusCode != 200 || !strings.Contains(text(d.root), "The ban lists could not be read") || len(d.rows("requests-h")) != 2 {
		t.Fatalf("%d %s", res.StatusCode, text(d.root))
	}
}

func TestConsoleURL(t *testing.T) {
	for _, c := range []struct{ arn, exec, want string }{
		{arn, "chatwork-1-2", "https://ap-northeast-1.console.aws.amazon.com/states/home?region=ap-northeast-1#/v2/executions/details/arn:aws:states:ap-northeast-1:123456789012:execution:unban:chatwork-1-2"},
		{"arn:aws-cn:states:cn-north-1:123456789012:stateMachine:unban", "x", "https://cn-north-1.console.amazonaws.cn/states/home?region=cn-north-1#/v2/executions/details/arn:aws-cn:states:cn-north-1:123456789012:execution:unban:x"},
		{arn, "a/b", ""},
		{arn, "<x>", ""},
		{"arn:aws:lambda:us-east-1:1:function:x", "e", ""},
		{"", "e", ""},
	} {
		if got := page.ConsoleURL(c.arn, c.exec); got != c.want {
			t.Errorf("ConsoleURL(%q, %q) = %q", c.arn, c.exec, got)
		}
	}
}
