// Package sfnrunnertest gives a test package one ASL interpreter for all
// its tests (one Node start, about 0.4 s, instead of one per test), and the
// one rule for a machine without the npm packages: skip, but fail under CI.
package sfnrunnertest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"sshguard-unban/local/sfnrunner"
)

// RequireInstalled skips the test when the npm packages (Node 22,
// aws-local-stepfunctions, asl-validator) are not installed, and fails it
// under CI, where make test installs them.
func RequireInstalled(t testing.TB) {
	t.Helper()
	err := sfnrunner.Installed()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// Shared is a package's interpreter, started on first use with Config.
// Close it from TestMain.
type Shared struct {
	Config func() (sfnrunner.Config, error)

	once sync.Once
	r    *sfnrunner.Runner
	err  error
}

// Runner returns the interpreter, starting it the first time.
func (s *Shared) Runner(t testing.TB) *sfnrunner.Runner {
	t.Helper()
	RequireInstalled(t)
	s.once.Do(func() {
		cfg, err := s.Config()
		if err != nil {
			s.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.r, s.err = sfnrunner.Start(ctx, cfg)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.r
}

// Close stops the interpreter if it was started.
func (s *Shared) Close() {
	if s.r != nil {
		s.r.Close()
	}
}
