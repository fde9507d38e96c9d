// Package dynalitetest gives a test a fresh policy table in its own
// dynalite (local/dynalite), from the repository's node_modules.
package dynalitetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"sshguard-unban/local/dynalite"
	"sshguard-unban/local/sfnrunner"
)

// Start runs a dynalite for the test (closed by t.Cleanup). It skips the
// test only when node_modules has no dynalite (make test always installs
// it, and under CI a missing package fails too); any other failure fails
// the test.
func Start(t testing.TB) *dynalite.Server {
	t.Helper()
	srv, err := start()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

var shared struct {
	once sync.Once
	srv  *dynalite.Server
	err  error
}

// Shared is one dynalite for the whole test binary, for packages whose
// many tests each want a table of their own (one node process, not one
// each). It ends with the test process.
func Shared(t testing.TB) *dynalite.Server {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = start() })
	if shared.err != nil {
		skipOrFail(t, shared.err)
	}
	return shared.srv
}

func start() (*dynalite.Server, error) {
	root, err := sfnrunner.RepoRoot()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return dynalite.Start(ctx, filepath.Join(root, "node_modules"))
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, dynalite.ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("%v: npm ci installs it (make test does)", err)
	}
	t.Fatal(err)
}

// Table starts a dynalite with the policy table named table in it and
// returns a real DynamoDB client for it.
func Table(t testing.TB, table string) *dynamodb.Client {
	t.Helper()
	srv := Start(t)
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dynalite.CreateTable(ctx, c, table); err != nil {
		t.Fatal(err)
	}
	return c
}
