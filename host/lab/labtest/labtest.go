// Package labtest adapts package lab to Go tests: it skips when the machine
// cannot run lab hosts, except under CI, where that is a failure (CI must
// really run the sshguard tests), and it closes hosts when the test ends,
// failed or not.
package labtest

import (
	"context"
	"os"
	"testing"

	"sshguard-unban/host/lab"
)

// InCI reports whether the CI environment variable asks for a CI run.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}

// Require skips tb when lab hosts cannot run here, and fails it under CI.
func Require(tb testing.TB) {
	tb.Helper()
	if err := lab.Available(); err != nil {
		if InCI() {
			tb.Fatalf("lab hosts must run in CI: %v", err)
		}
		tb.Skipf("lab hosts cannot run here: %v", err)
	}
}

// Start is lab.Start for tests: Require, then a host closed by tb.Cleanup.
func Start(tb testing.TB, opts lab.Options) *lab.Host {
	tb.Helper()
	Require(tb)
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	h, err := lab.Start(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Errorf("close lab host: %v", err)
		}
	})
	return h
}
