// Package page serves the two pages of the service's HTTP API, from the
// same bootstrap binary as the task functions (handler "page"):
//
//   - GET /ip: the caller's address as API Gateway sees it
//     (requestContext.http.sourceIp), as text/plain for curl (the address
//     and a newline) or, for a browser, a small page with a copy button
//     that also works without JavaScript (a read-only field). The bot's
//     help and "not blocked" replies link to it.
//   - GET /bans: the SREs' ban-list page, only through a link the bot gave
//     an SRE in the SRE room (shared/pagelink: signed for the account,
//     valid 15 minutes), and only while that account is still an SRE.
//     Every host with its last report (stale and silent marked), every
//     blocked address or range (on which hosts, since when, blacklisted),
//     and the last day's requests (shared/history) with links to their
//     executions in the Step Functions console. It reads the ban lists
//     and the history, nothing else. Without a valid link: 403 and a
//     one-word body, the same for every reason.
//
// Both pages are rendered on the server (html/template: every value from a
// host report or the history is escaped), in Japanese by default and in
// English by ?lang=en or Accept-Language, and are readable on a phone and
// usable without JavaScript. Every answer says no-store, no-referrer (the
// signed link must not leak through the console link), nosniff, and a
// Content-Security-Policy that allows nothing but the page's own inline
// stylesheet (and, on /ip, its copy script) by hash.
package page

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"mime"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/text/language"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/history"
	"sshguard-unban/shared/pagelink"
)

var (
	//go:embed assets/style.css
	styleCSS string
	//go:embed assets/copy.js
	copyJS string
	//go:embed assets/ip.html
	ipHTML string
	//go:embed assets/bans.html
	bansHTML string
	//go:embed assets/top.html
	topHTML string
)

var funcs = template.FuncMap{"join": func(s []string) string { return strings.Join(s, ", ") }}

var (
	ipPage   = template.Must(template.Must(template.New("ip").Funcs(funcs).Parse(topHTML)).Parse(ipHTML))
	bansPage = template.Must(template.Must(template.New("bans").Funcs(funcs).Parse(topHTML)).Parse(bansHTML))
)

// The policies allow the inline stylesheet and script by their hashes and
// nothing else: no other script, style, image, frame or form target.
var (
	bansCSP = "default-src 'none'; style-src '" + hash(styleCSS) + "'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	ipCSP   = "default-src 'none'; style-src '" + hash(styleCSS) + "'; script-src '" + hash(copyJS) + "'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// History reads the recent requests (shared/history).
type History interface {
	Recent(ctx context.Context, limit int) ([]history.Record, error)
}

// Config is the page function's environment.
type Config struct {
	Bucket, Prefix string // the ban lists
	// Freshness: a list older than this is stale (lookup's rule); three
	// times it, silent. Default banlist lookup's 5 minutes.
	Freshness time.Duration
	// SREAccounts may open the ban-list page (the policy's list).
	SREAccounts []string
	// StateMachineARN is the unban machine, for the console links.
	StateMachineARN string
	// Locale is the language without lang= or Accept-Language ("ja").
	Locale string
	Now    func() time.Time
}

// DefaultFreshness matches lambdas/lookup's.
const DefaultFreshness = 5 * time.Minute

// Handler serves both routes.
type Handler struct {
	lists   banlist.ObjectGetter
	history History
	key     func(context.Context) ([]byte, error)
	cfg     Config
	log     *slog.Logger
}

// New returns a Handler. key is the page links' signing key (cached by
// its source); log nil means slog.Default().
func New(lists banlist.ObjectGetter, hist History, key func(context.Context) ([]byte, error), cfg Config, log *slog.Logger) *Handler {
	if cfg.Freshness <= 0 {
		cfg.Freshness = DefaultFreshness
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if _, ok := texts[cfg.Locale]; !ok {
		cfg.Locale = "ja"
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{lists: lists, history: hist, key: key, cfg: cfg, log: log}
}

// Handle answers one API Gateway HTTP API (payload 2.0) request.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	path := req.RawPath
	if path == "" {
		path = req.RequestContext.HTTP.Path
	}
	method := req.RequestContext.HTTP.Method
	switch {
	case method == "GET" && path == "/ip":
		return h.ip(req), nil
	case method == "GET" && path == pagelink.Path:
		return h.bans(ctx, req), nil
	}
	return plain(404, "Not Found\n"), nil
}

// headers every answer carries.
func headers(contentType, csp string) map[string]string {
	hd := map[string]string{
		"Content-Type":           contentType,
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Vary":                   "Accept, Accept-Language",
	}
	if csp != "" {
		hd["Content-Security-Policy"] = csp
	}
	return hd
}

func plain(status int, body string) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: headers("text/plain; charset=utf-8", "default-src 'none'; frame-ancestors 'none'"), Body: body}
}

// forbidden is every refusal of /bans: the same tiny answer whatever the
// reason, so a prober learns nothing.
func forbidden() events.APIGatewayV2HTTPResponse { return plain(403, "Forbidden\n") }

func html(csp, body string) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: headers("text/html; charset=utf-8", csp), Body: body}
}

// header reads a request header (API Gateway lower-cases their names).
func header(req events.APIGatewayV2HTTPRequest, name string) string {
	if v, ok := req.Headers[name]; ok {
		return v
	}
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// wantsHTML: the client lists text/html (a browser) with a non-zero
// quality; curl's */* gets text.
func wantsHTML(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != "text/html" && mt != "application/xhtml+xml") {
			continue
		}
		if q := params["q"]; q == "0" || strings.HasPrefix(q, "0.0") && strings.Trim(q, "0.") == "" {
			continue
		}
		return true
	}
	return false
}

var supported = []language.Tag{language.Japanese, language.English}
var matcher = language.NewMatcher(supported)

// langOf picks the language: lang= first, then Accept-Language, then the
// deployment's default.
func (h *Handler) langOf(req events.APIGatewayV2HTTPRequest, q url.Values) string {
	if l := q.Get("lang"); l == "ja" || l == "en" {
		return l
	}
	if tags, _, err := language.ParseAcceptLanguage(header(req, "accept-language")); err == nil && len(tags) > 0 {
		if _, i, conf := matcher.Match(tags...); conf != language.No {
			return []string{"ja", "en"}[i]
		}
	}
	return h.cfg.Locale
}

func other(lang string) string {
	if lang == "en" {
		return "ja"
	}
	return "en"
}

type ipView struct {
	frame
	Address string
	Self    string
	Script  template.JS
}

// frame is what both pages' top (assets/top.html) shows.
type frame struct {
	Lang, OtherLang string
	OtherLangLink   string
	T               map[string]string
	Title           string
	Style           template.CSS
}

func newFrame(lang, title string) frame {
	return frame{Lang: lang, OtherLang: other(lang), T: texts[lang], Title: texts[lang][title], Style: template.CSS(styleCSS)}
}

func (h *Handler) ip(req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	q, _ := url.ParseQuery(req.RawQueryString)
	// Only a parsable address is echoed, in its normal form.
	addr := ""
	if a, err := netip.ParseAddr(req.RequestContext.HTTP.SourceIP); err == nil {
		addr = a.String()
	}
	if !wantsHTML(header(req, "accept")) {
		if addr == "" {
			return plain(500, "unknown\n")
		}
		return plain(200, addr+"\n")
	}
	lang := h.langOf(req, q)
	v := ipView{frame: newFrame(lang, "ipTitle"), Address: addr, Script: template.JS(copyJS), Self: selfURL(req, "/ip")}
	v.OtherLangLink = "?lang=" + v.OtherLang
	if addr == "" {
		v.Address = texts[lang]["ipUnknown"]
	}
	var b strings.Builder
	if err := ipPage.Execute(&b, v); err != nil {
		h.log.Error("could not render the ip page", "error", err)
		return plain(500, "Internal Server Error\n")
	}
	return html(ipCSP, b.String())
}

// selfURL is the route's public URL, from the Host header API Gateway
// passes (shown for curl; escaped by the template).
func selfURL(req events.APIGatewayV2HTTPRequest, path string) string {
	host := req.RequestContext.DomainName
	if host == "" {
		host = header(req, "host")
	}
	if host == "" || strings.ContainsAny(host, "/\\ <>\"'") {
		return path
	}
	scheme := "https"
	if strings.HasPrefix(host, "127.0.0.1") || strings.HasPrefix(host, "localhost") {
		scheme = "http" // the local mode
	}
	return scheme + "://" + host + path
}

func (h *Handler) bans(ctx context.Context, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	q, err := url.ParseQuery(req.RawQueryString)
	if err != nil {
		return forbidden()
	}
	key, err := h.key(ctx)
	if err != nil {
		h.log.ErrorContext(ctx, "cannot read the page key", "error", err)
		return plain(503, "Service Unavailable\n")
	}
	now := h.cfg.Now()
	account, expires, err := pagelink.Verify(key, q, now)
	if err != nil || !slices.Contains(h.cfg.SREAccounts, account) {
		// Never the query itself (it may hold a valid signature).
		h.log.WarnContext(ctx, "page link refused", "source_ip", req.RequestContext.HTTP.SourceIP, "account_id", account)
		return forbidden()
	}
	lang := h.langOf(req, q)
	v := h.collect(ctx, now, lang)
	v.Account, v.Expires = account, expires.In(zones[lang]).Format("15:04 MST")
	v.filter(strings.TrimSpace(q.Get("q")))
	v.links(q, lang)
	var b strings.Builder
	if err := bansPage.Execute(&b, v); err != nil {
		h.log.ErrorContext(ctx, "could not render the ban-list page", "error", err)
		return plain(500, "Internal Server Error\n")
	}
	h.log.InfoContext(ctx, "ban-list page", "account_id", account, "hosts", v.Hosts.Total, "blocks", v.Blocks.Total, "requests", v.Requests.Total)
	return html(bansCSP, b.String())
}
