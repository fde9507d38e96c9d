// Package browsertest gives a test package one chromium (local/browser)
// for all its tests, pages that close with their test, and the project's
// rule for a machine without chromium or the npm packages: skip, but fail
// under CI, where make test installs them.
package browsertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"sshguard-unban/host/lab/labtest"
	"sshguard-unban/local/browser"
)

// available is browser.Available, asked once per test binary (it starts
// node to read its version).
var available = sync.OnceValue(browser.Available)

// Require skips tb when pages cannot be opened here, and fails it under CI.
func Require(tb testing.TB) {
	tb.Helper()
	if err := available(); err != nil {
		if labtest.InCI() { // the real-sshguard tests' rule
			tb.Fatalf("browser tests must run in CI: %v", err)
		}
		tb.Skipf("%v", err)
	}
}

var shared struct {
	once sync.Once
	b    *browser.Browser
	err  error
}

// Browser is the test binary's chromium, launched on first use (about half
// a second); it ends with the test process, when the driver's stdin closes.
func Browser(tb testing.TB) *browser.Browser {
	tb.Helper()
	Require(tb)
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.b, shared.err = browser.Launch(ctx, browser.Config{})
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.b
}

// Page opens a tab on the shared chromium for a person described by opts,
// closed when tb ends.
func Page(tb testing.TB, opts browser.Options) *browser.Page {
	tb.Helper()
	b := Browser(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := b.NewPage(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("close page: %v", err)
		}
	})
	return p
}
