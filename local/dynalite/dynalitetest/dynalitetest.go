// Package dynalitetest gives a test a fresh policy table in its own
// dynalite (local/dynalite), from the repository's node_modules.
package dynalitetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	root, err := sfnrunner.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := dynalite.Start(ctx, filepath.Join(root, "node_modules"))
	if errors.Is(err, dynalite.ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("%v: npm ci installs it (make test does)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
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
