package browser

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Viewport is the window's size in CSS pixels (one device pixel each, so
// a screenshot is Width pixels wide). Mobile makes chromium honour
// <meta name="viewport"> and report touch, as a phone does: a page without
// that tag is then laid out 980 pixels wide and shrunk.
type Viewport struct {
	Width, Height int
	Mobile        bool
}

// The two sizes the project's pages are checked at.
var (
	Phone   = Viewport{Width: 390, Height: 844, Mobile: true}
	Desktop = Viewport{Width: 1280, Height: 800}
)

// Options describe the person looking at the page.
type Options struct {
	// Viewport defaults to Desktop.
	Viewport Viewport
	// Locale is the browser's language, sent as Accept-Language and seen
	// as navigator.language: "ja-JP" (the default) or "en-US".
	Locale string
	// JavaScriptDisabled turns off the page's scripts, as for a reader who
	// blocks them; the page's text and forms must still work.
	JavaScriptDisabled bool
	// Timeout bounds each step (a load, a click, waiting for a selector);
	// default 10 s. A context deadline that comes sooner wins.
	Timeout time.Duration
}

// Page is one tab in a fresh browser context: no cookies or storage from
// any other page. Its methods are for one goroutine at a time.
//
// Selectors are Playwright's (CSS, or text=…, role=…); a method about one
// element fails unless exactly one matches, and waits (up to Timeout) for
// it to appear. Count and Visible do not wait.
type Page struct {
	b       *Browser
	id      string
	timeout time.Duration
}

// NewPage opens a tab for a person described by opts.
func (b *Browser) NewPage(ctx context.Context, opts Options) (*Page, error) {
	if opts.Viewport == (Viewport{}) {
		opts.Viewport = Desktop
	}
	if opts.Viewport.Width <= 0 || opts.Viewport.Height <= 0 {
		return nil, fmt.Errorf("browser: viewport %dx%d", opts.Viewport.Width, opts.Viewport.Height)
	}
	if opts.Locale == "" {
		opts.Locale = "ja-JP"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	p := &Page{b: b, timeout: opts.Timeout}
	err := b.call(ctx, opts.Timeout, request{
		Op:         "open",
		Width:      opts.Viewport.Width,
		Height:     opts.Viewport.Height,
		Mobile:     opts.Viewport.Mobile,
		Locale:     opts.Locale,
		JavaScript: !opts.JavaScriptDisabled,
	}, &p.id)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Page) call(ctx context.Context, req request, out any) error {
	req.Page = p.id
	return p.b.call(ctx, p.timeout, req, out)
}

// Close closes the tab and its context.
func (p *Page) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	return p.call(ctx, request{Op: "close"}, nil)
}

// Goto loads url and waits for its load event. status is the HTTP status
// of the document (after redirects); an error status such as 403 is not
// an error here, the page is shown as the browser shows it. It is 0 when
// only the #fragment changed.
func (p *Page) Goto(ctx context.Context, url string) (status int, err error) {
	err = p.call(ctx, request{Op: "goto", URL: url}, &status)
	return status, err
}

// URL is the address of the document now shown.
func (p *Page) URL(ctx context.Context) (string, error) {
	var u string
	err := p.call(ctx, request{Op: "url"}, &u)
	return u, err
}

// Text is the page's visible text: the body's innerText, laid out as the
// browser renders it (hidden elements left out, one line per block).
func (p *Page) Text(ctx context.Context) (string, error) {
	return p.TextOf(ctx, "body")
}

// TextOf is the innerText of the one element selector matches (for an
// element that is not rendered, such as title, its text content).
func (p *Page) TextOf(ctx context.Context, selector string) (string, error) {
	var s string
	err := p.call(ctx, request{Op: "text", Selector: selector}, &s)
	return s, err
}

// Count is how many elements selector matches now.
func (p *Page) Count(ctx context.Context, selector string) (int, error) {
	var n int
	err := p.call(ctx, request{Op: "count", Selector: selector}, &n)
	return n, err
}

// Visible reports whether the one element selector matches is rendered
// with a size (not display:none, visibility:hidden or empty); false when
// nothing matches.
func (p *Page) Visible(ctx context.Context, selector string) (bool, error) {
	var v bool
	err := p.call(ctx, request{Op: "visible", Selector: selector}, &v)
	return v, err
}

// Attr is the value of attribute name on the one element selector
// matches; ok is false when the element has no such attribute.
func (p *Page) Attr(ctx context.Context, selector, name string) (value string, ok bool, err error) {
	var v *string
	if err := p.call(ctx, request{Op: "attr", Selector: selector, Name: name}, &v); err != nil {
		return "", false, err
	}
	if v == nil {
		return "", false, nil
	}
	return *v, true, nil
}

// Fill types text into the one input, textarea or contenteditable element
// selector matches, replacing what it held.
func (p *Page) Fill(ctx context.Context, selector, text string) error {
	return p.call(ctx, request{Op: "fill", Selector: selector, Text: text}, nil)
}

// Click clicks the one element selector matches, as a person would (it
// must be visible, enabled and not covered). If the click navigates (a
// link, a form's submit button, with or without JavaScript), Click waits
// for the new document's load event and returns its HTTP status; it
// returns 0 when the click started no navigation.
func (p *Page) Click(ctx context.Context, selector string) (status int, err error) {
	err = p.call(ctx, request{Op: "click", Selector: selector}, &status)
	return status, err
}

// Screenshot writes a PNG of the whole page (not only the viewport) to
// path: Viewport.Width pixels wide, as tall as the page (at least the
// viewport). Animations are stopped and the caret hidden, so it is stable.
func (p *Page) Screenshot(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	return p.call(ctx, request{Op: "screenshot", Path: abs}, nil)
}

// Errors lists what the browser's console reported as errors for the
// document now shown: uncaught exceptions, console.error calls,
// subresources that failed to load (a stylesheet's 404) and what the
// Content-Security-Policy blocked (an inline style). The document's own
// HTTP status is not among them (Goto and Click return it), nor a missing
// /favicon.ico, which chromium asks for by itself.
func (p *Page) Errors(ctx context.Context) ([]string, error) {
	var errs []string
	err := p.call(ctx, request{Op: "errors"}, &errs)
	return errs, err
}

// Violation is one axe-core rule the page breaks.
type Violation struct {
	ID string `json:"id"` // the rule: "color-contrast", "label", "heading-order", …
	// Impact is "minor", "moderate", "serious" or "critical".
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"help_url"`
	Nodes   []Node `json:"nodes"`
}

// Node is one element that breaks the rule.
type Node struct {
	// Target is a CSS selector path to the element (one per shadow root).
	Target []string `json:"target"`
	// HTML is the element's opening markup, Summary what to fix.
	HTML    string `json:"html"`
	Summary string `json:"summary"`
}

// String is one line for a test failure: rule, impact, help and the
// elements' selectors.
func (v Violation) String() string {
	var targets []string
	for _, n := range v.Nodes {
		targets = append(targets, strings.Join(n.Target, " "))
	}
	return fmt.Sprintf("%s (%s): %s: %s", v.ID, v.Impact, v.Help, strings.Join(targets, ", "))
}

// Serious is the violations of impact serious or critical: those a page
// must not have.
func Serious(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}

// Axe runs axe-core's default rules (WCAG 2.x A and AA, best practices: contrast
// as rendered, labels, headings, landmarks, language, names of buttons and
// links) on the document now shown and returns the violations. It runs in
// a world of its own, unseen by the page's scripts and allowed by its
// Content-Security-Policy, also when JavaScript is disabled. Frames'
// contents are not checked.
func (p *Page) Axe(ctx context.Context) ([]Violation, error) {
	var vs []Violation
	err := p.call(ctx, request{Op: "axe"}, &vs)
	return vs, err
}
