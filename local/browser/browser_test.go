package browser_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sshguard-unban/local/browser"
	"sshguard-unban/local/browser/browsertest"
)

// The site the tests look at, as a person would: a page in the reader's
// language under a strict Content-Security-Policy (as the project's pages
// will be), a page with accessibility faults, a GET form, a forbidden page,
// a tall page and a page that logs errors.
const strictCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

const styleCSS = `body { margin: 0; padding: 1rem; font: 16px/1.5 sans-serif; color: #1a1a1a; background: #fff; }
.faint { color: #b0b0b0; }
.tall { margin: 0; padding: 0; }
.tall div { height: 2000px; background: #0a5; }`

// app.js is the page's only script: it shows whether JavaScript ran.
const appJS = `const p = document.createElement('p');
p.id = 'js-ran';
p.textContent = 'JavaScript ran';
document.querySelector('main').append(p);`

const brokenJS = `throw new Error('boom from broken.js');`

type site struct {
	srv *httptest.Server

	mu      sync.Mutex
	lookups []string // raw queries /result was asked with
}

func newSite(t *testing.T) *site {
	s := &site{}
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, status int, lang, title, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", strictCSP)
		w.WriteHeader(status)
		fmt.Fprintf(w, `<!doctype html>
<html lang="%s"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title><link rel="stylesheet" href="/style.css"></head>
<body>%s</body></html>`, lang, html.EscapeString(title), body)
	}
	mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, styleCSS)
	})
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, appJS)
	})
	mux.HandleFunc("GET /broken.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, brokenJS)
	})
	// The home page speaks the reader's language, from Accept-Language.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		lang, title, hello := "en", "Welcome", "Welcome, "+r.Header.Get("Accept-Language")
		if strings.HasPrefix(r.Header.Get("Accept-Language"), "ja") {
			lang, title, hello = "ja", "ようこそ", "ようこそ、"+r.Header.Get("Accept-Language")
		}
		page(w, http.StatusOK, lang, title, `<header><p>sshguard-unban</p></header>
<main><h1>`+html.EscapeString(hello)+`</h1>
<p id="hidden" hidden>a secret nobody sees</p>
<noscript><p>JavaScript is off</p></noscript>
<p><a href="/lookup">Look up an address</a></p></main>
<script src="/app.js"></script>`)
	})
	mux.HandleFunc("GET /bad", func(w http.ResponseWriter, _ *http.Request) {
		page(w, http.StatusOK, "en", "Bad", `<main><h1>Bad page</h1>
<p id="faint" class="faint">Too light to read</p>
<input id="nolabel" type="text"></main>`)
	})
	mux.HandleFunc("GET /lookup", func(w http.ResponseWriter, _ *http.Request) {
		page(w, http.StatusOK, "en", "Look up", `<main><h1>Look up an address</h1>
<form action="/result" method="get">
<label for="address">Address</label> <input id="address" name="address" type="text" required>
<button type="submit">Look up</button> <button type="button" id="nothing">Does nothing</button>
</form></main>`)
	})
	mux.HandleFunc("GET /result", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.lookups = append(s.lookups, r.URL.RawQuery)
		s.mu.Unlock()
		page(w, http.StatusOK, "en", "Result", `<main><h1>Result</h1><p id="answer">You asked about `+
			html.EscapeString(r.URL.Query().Get("address"))+`.</p></main>`)
	})
	mux.HandleFunc("GET /forbidden", func(w http.ResponseWriter, _ *http.Request) {
		page(w, http.StatusForbidden, "en", "Forbidden", `<main><h1>Not for you</h1><p>This list is for SREs.</p></main>`)
	})
	mux.HandleFunc("GET /tall", func(w http.ResponseWriter, _ *http.Request) {
		page(w, http.StatusOK, "en", "Tall", `<main class="tall"><h1 hidden>Tall</h1><div></div></main>`)
	})
	// A stylesheet that is missing, an inline style the CSP blocks, and a
	// script that throws.
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, _ *http.Request) {
		page(w, http.StatusOK, "en", "Broken", `<link rel="stylesheet" href="/missing.css">
<main><h1 style="color: red">Broken</h1></main><script src="/broken.js"></script>`)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *site) url(path string) string { return s.srv.URL + path }

func (s *site) lookupQueries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lookups)
}

// modes are the readers every page must work for.
var modes = []struct {
	name string
	opts browser.Options
}{
	{"phone js", browser.Options{Viewport: browser.Phone}},
	{"phone nojs", browser.Options{Viewport: browser.Phone, JavaScriptDisabled: true}},
	{"desktop js", browser.Options{Viewport: browser.Desktop}},
	{"desktop nojs", browser.Options{Viewport: browser.Desktop, JavaScriptDisabled: true}},
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAccessiblePageInEachLanguage(t *testing.T) {
	s := newSite(t)
	for _, m := range modes {
		for _, lc := range []struct{ locale, lang, hello string }{
			{"ja-JP", "ja", "ようこそ、ja-JP"},
			{"en-US", "en", "Welcome, en-US"},
		} {
			t.Run(m.name+" "+lc.locale, func(t *testing.T) {
				t.Parallel()
				ctx := ctxFor(t)
				opts := m.opts
				opts.Locale = lc.locale
				p := browsertest.Page(t, opts)
				status, err := p.Goto(ctx, s.url("/"))
				if err != nil || status != http.StatusOK {
					t.Fatalf("Goto: %d, %v", status, err)
				}
				h1, err := p.TextOf(ctx, "h1")
				if err != nil || h1 != lc.hello {
					t.Errorf("h1 = %q, %v; want %q (the Accept-Language the server saw)", h1, err, lc.hello)
				}
				if lang, ok, err := p.Attr(ctx, "html", "lang"); err != nil || !ok || lang != lc.lang {
					t.Errorf(`html lang = %q, %v, %v; want %q`, lang, ok, err, lc.lang)
				}
				if _, ok, err := p.Attr(ctx, "html", "dir"); err != nil || ok {
					t.Errorf("html dir: present %v, %v; want absent", ok, err)
				}

				text, err := p.Text(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(text, "secret") {
					t.Errorf("hidden text is visible:\n%s", text)
				}
				// The JavaScript switch is real: the script's paragraph, or
				// the noscript one, never both.
				wantJS, wantNoJS := !opts.JavaScriptDisabled, opts.JavaScriptDisabled
				if got := strings.Contains(text, "JavaScript ran"); got != wantJS {
					t.Errorf("script's text shown = %v, want %v:\n%s", got, wantJS, text)
				}
				if got := strings.Contains(text, "JavaScript is off"); got != wantNoJS {
					t.Errorf("noscript text shown = %v, want %v:\n%s", got, wantNoJS, text)
				}
				if n, err := p.Count(ctx, "#hidden"); err != nil || n != 1 {
					t.Errorf("Count(#hidden) = %d, %v; want 1", n, err)
				}
				if v, err := p.Visible(ctx, "#hidden"); err != nil || v {
					t.Errorf("Visible(#hidden) = %v, %v; want false", v, err)
				}
				if v, err := p.Visible(ctx, "h1"); err != nil || !v {
					t.Errorf("Visible(h1) = %v, %v; want true", v, err)
				}

				vs, err := p.Axe(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range vs {
					t.Errorf("axe: %s", v)
				}
				if errs, err := p.Errors(ctx); err != nil || len(errs) != 0 {
					t.Errorf("console errors %q, %v; want none", errs, err)
				}
			})
		}
	}
}

func TestAxeReportsContrastAndLabel(t *testing.T) {
	s := newSite(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t)
			p := browsertest.Page(t, m.opts)
			if _, err := p.Goto(ctx, s.url("/bad")); err != nil {
				t.Fatal(err)
			}
			vs, err := p.Axe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			serious := browser.Serious(vs)
			for _, want := range []struct{ id, target string }{
				{"color-contrast", "#faint"},
				{"label", "#nolabel"},
			} {
				i := slices.IndexFunc(serious, func(v browser.Violation) bool { return v.ID == want.id })
				if i < 0 {
					t.Errorf("no serious %s violation in %v", want.id, vs)
					continue
				}
				v := serious[i]
				if len(v.Nodes) != 1 || !slices.Contains(v.Nodes[0].Target, want.target) {
					t.Errorf("%s nodes = %+v, want the one element %s", want.id, v.Nodes, want.target)
				}
				if v.Help == "" || !strings.HasPrefix(v.HelpURL, "https://") || v.Nodes[0].Summary == "" {
					t.Errorf("%s: missing help, URL or summary: %+v", want.id, v)
				}
				if !strings.Contains(v.String(), want.target) {
					t.Errorf("String() = %q, want the target in it", v.String())
				}
			}
		})
	}
}

func TestGetFormWorksWithAndWithoutJavaScript(t *testing.T) {
	s := newSite(t)
	t.Run("modes", func(t *testing.T) { // returns when its parallel subtests have
		for _, m := range modes {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				ctx := ctxFor(t)
				p := browsertest.Page(t, m.opts)
				// From the home page's link, as a reader gets there.
				if _, err := p.Goto(ctx, s.url("/")); err != nil {
					t.Fatal(err)
				}
				if status, err := p.Click(ctx, "text=Look up an address"); err != nil || status != http.StatusOK {
					t.Fatalf("following the link: %d, %v", status, err)
				}
				// A button that navigates nowhere says so.
				if status, err := p.Click(ctx, "#nothing"); err != nil || status != 0 {
					t.Errorf("Click(#nothing) = %d, %v; want 0 (no navigation)", status, err)
				}
				if err := p.Fill(ctx, "#address", "203.0.113.5"); err != nil {
					t.Fatal(err)
				}
				if v, ok, err := p.Attr(ctx, "#address", "required"); err != nil || !ok || v != "" {
					t.Errorf("Attr(required) = %q, %v, %v", v, ok, err)
				}
				status, err := p.Click(ctx, "button[type=submit]")
				if err != nil || status != http.StatusOK {
					t.Fatalf("submit: %d, %v", status, err)
				}
				answer, err := p.TextOf(ctx, "#answer")
				if err != nil || answer != "You asked about 203.0.113.5." {
					t.Errorf("answer = %q, %v", answer, err)
				}
				u, err := p.URL(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if pu, err := url.Parse(u); err != nil || pu.Path != "/result" || pu.Query().Get("address") != "203.0.113.5" {
					t.Errorf("URL after submit = %q", u)
				}
			})
		}
	})
	if q := s.lookupQueries(); !slices.Equal(q, slices.Repeat([]string{"address=203.0.113.5"}, len(modes))) {
		t.Errorf("the server saw %q, want one address=203.0.113.5 per mode", q)
	}
}

func TestForbiddenPageShowsItsStatusAndText(t *testing.T) {
	s := newSite(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t)
			p := browsertest.Page(t, m.opts)
			status, err := p.Goto(ctx, s.url("/forbidden"))
			if err != nil || status != http.StatusForbidden {
				t.Fatalf("Goto = %d, %v; want 403", status, err)
			}
			if text, err := p.Text(ctx); err != nil || !strings.Contains(text, "This list is for SREs.") {
				t.Errorf("text = %q, %v", text, err)
			}
			if errs, err := p.Errors(ctx); err != nil || len(errs) != 0 {
				t.Errorf("console errors %q, %v; want none (the 403 is Goto's answer)", errs, err)
			}
			if status, err := p.Goto(ctx, s.url("/nowhere")); err != nil || status != http.StatusNotFound {
				t.Errorf("Goto(/nowhere) = %d, %v; want 404", status, err)
			}
		})
	}
}

func TestErrorsAreReported(t *testing.T) {
	s := newSite(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t)
			p := browsertest.Page(t, m.opts)
			if _, err := p.Goto(ctx, s.url("/broken")); err != nil {
				t.Fatal(err)
			}
			errs, err := p.Errors(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(errs, "\n")
			for _, want := range []string{"/missing.css", "Content Security Policy"} {
				if !strings.Contains(all, want) {
					t.Errorf("errors lack %q:\n%s", want, all)
				}
			}
			if got, want := strings.Contains(all, "boom from broken.js"), !m.opts.JavaScriptDisabled; got != want {
				t.Errorf("script's exception reported = %v, want %v:\n%s", got, want, all)
			}
			// A new document starts with none.
			if _, err := p.Goto(ctx, s.url("/lookup")); err != nil {
				t.Fatal(err)
			}
			if errs, err := p.Errors(ctx); err != nil || len(errs) != 0 {
				t.Errorf("errors after navigating away: %q, %v", errs, err)
			}
		})
	}
}

func TestScreenshotIsTheWholePage(t *testing.T) {
	s := newSite(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t)
			p := browsertest.Page(t, m.opts)
			if _, err := p.Goto(ctx, s.url("/tall")); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "tall.png")
			if err := p.Screenshot(ctx, path); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("not a PNG: %v", err)
			}
			// body's 1rem padding around a 2000 px block, full width.
			wantW, wantH := m.opts.Viewport.Width, 2000+2*16
			if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
				t.Errorf("screenshot %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
			}
			// The block was painted (#0a5), not a blank page.
			if got := hex(img, wantW/2, wantH/2); got != "#00aa55" {
				t.Errorf("pixel in the middle = %s, want #00aa55", got)
			}
			if got := hex(img, 2, 2); got != "#ffffff" {
				t.Errorf("pixel in the padding = %s, want #ffffff", got)
			}
		})
	}
}

func hex(img image.Image, x, y int) string {
	r, g, b, _ := img.At(x, y).RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

func TestOneElementOrAnError(t *testing.T) {
	s := newSite(t)
	p := browsertest.Page(t, browser.Options{Timeout: 300 * time.Millisecond})
	ctx := ctxFor(t)
	if _, err := p.Goto(ctx, s.url("/")); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []string{"p", "#missing"} {
		start := time.Now()
		if text, err := p.TextOf(ctx, sel); err == nil {
			t.Errorf("TextOf(%q) = %q, want an error (not exactly one element)", sel, text)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("TextOf(%q) took %v despite the 300 ms timeout", sel, d)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Goto(cancelled, s.url("/lookup")); !errors.Is(err, context.Canceled) {
		t.Errorf("Goto with a cancelled context: %v", err)
	}
}

func TestClosedBrowserFailsInsteadOfHanging(t *testing.T) {
	browsertest.Require(t)
	ctx := ctxFor(t)
	b, err := browser.Launch(ctx, browser.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.Version(), ".") {
		t.Errorf("Version() = %q", b.Version())
	}
	p, err := b.NewPage(ctx, browser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := p.Goto(ctx, "about:blank"); err == nil {
		t.Error("Goto after Close succeeded")
	}
	if _, err := b.NewPage(ctx, browser.Options{}); err == nil {
		t.Error("NewPage after Close succeeded")
	}
	b.Close() // a second Close is harmless
}

func TestMissingChromiumIsUnavailable(t *testing.T) {
	_, err := browser.Launch(t.Context(), browser.Config{Chromium: filepath.Join(t.TempDir(), "chromium")})
	if !errors.Is(err, browser.ErrUnavailable) || !strings.Contains(err.Error(), "no chromium") {
		t.Errorf("Launch without chromium: %v, want ErrUnavailable naming chromium", err)
	}
}
