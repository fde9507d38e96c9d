// Package dynalite runs a real DynamoDB-protocol server for tests and the
// local mode: npm dynalite (node_modules), in memory, on 127.0.0.1, as a
// child process. CreateTable creates the policy table with the schema the
// CDK stack deploys (shared/policystore's constants).
//
// dynalite has no UpdateTimeToLive and never deletes expired items; the
// store treats items past their TTL as absent itself, as it must with
// DynamoDB's lazy TTL deletion anyway.
package dynalite

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/local/tailbuf"
	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/pause"
	"sshguard-unban/shared/policystore"
)

//go:embed launch.js
var launchScript string

// Region is what the clients built here sign for (dynalite ignores it).
const Region = "us-east-1"

// ErrNotInstalled is returned (wrapped) by Start when modulesDir has no
// dynalite: `npm ci` (make test runs it) installs it.
var ErrNotInstalled = errors.New("dynalite: npm package not installed (run npm ci)")

// Server is a running dynalite.
type Server struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	endpoint string
	stderr   *tailbuf.Buffer
	done     chan struct{} // closed when the process has exited
	once     sync.Once
}

// Start runs dynalite from modulesDir (a node_modules directory) with the
// node in modulesDir/.bin, or on PATH, and returns once it answers a
// DynamoDB call. ctx bounds the start only: the server runs until Close,
// or until this process dies.
func Start(ctx context.Context, modulesDir string) (*Server, error) {
	modules, err := filepath.Abs(modulesDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(modules, "dynalite", "package.json")); err != nil {
		return nil, fmt.Errorf("%w: no %s", ErrNotInstalled, filepath.Join(modules, "dynalite"))
	}
	node := filepath.Join(modules, ".bin", "node")
	if _, err := os.Stat(node); err != nil {
		if node, err = exec.LookPath("node"); err != nil {
			return nil, fmt.Errorf("dynalite: no node in %s nor on PATH", filepath.Join(modules, ".bin"))
		}
	}
	// The script is passed with -e (its first argument is argv[1]), so no
	// temporary file is left behind by a killed test.
	cmd := exec.Command(node, "-e", launchScript, modules)
	killWithParent(cmd)
	s := &Server{cmd: cmd, stderr: &tailbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dynalite: start %s: %w", node, err)
	}
	port := make(chan int, 1)
	go s.watch(stdout, port)

	select {
	case p := <-port:
		s.endpoint = "http://127.0.0.1:" + strconv.Itoa(p)
	case <-s.done:
		return nil, fmt.Errorf("dynalite: exited before listening: %s", s.stderr)
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("dynalite: start: %w", ctx.Err())
	}
	if err := s.ready(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// watch reads the announced port, then drains stdout and reaps the process.
func (s *Server) watch(stdout io.Reader, port chan<- int) {
	r := bufio.NewReader(stdout)
	if line, err := r.ReadBytes('\n'); err == nil {
		var m struct{ Port int }
		if json.Unmarshal(line, &m) == nil && m.Port > 0 {
			port <- m.Port
		}
	}
	_, _ = io.Copy(io.Discard, r)
	_ = s.cmd.Wait()
	close(s.done)
}

// ready waits until a ListTables call succeeds.
func (s *Server) ready(ctx context.Context) error {
	c := NewClient(s.endpoint)
	for {
		_, callErr := c.ListTables(ctx, &dynamodb.ListTablesInput{})
		if callErr == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("dynalite: exited: %s", s.stderr)
		default:
		}
		if err := pause.For(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("dynalite: not answering at %s: %w (last: %v)", s.endpoint, err, callErr)
		}
	}
}

// Endpoint is the server's base URL (http://127.0.0.1:PORT).
func (s *Server) Endpoint() string { return s.endpoint }

// Client is a DynamoDB client for this server (NewClient(s.Endpoint())).
func (s *Server) Client() *dynamodb.Client { return NewClient(s.endpoint) }

// Close stops the server; its data is gone. Safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		_ = s.stdin.Close() // the script exits on end of stdin
		select {
		case <-s.done:
		case <-time.After(2 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return nil
}

// NewClient builds a real aws-sdk-go-v2 DynamoDB client for a local
// endpoint: static dummy credentials and its own HTTP client (so the
// machine's proxy settings do not apply).
func NewClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
	})
}

// CreateTable creates the policy table as cdk/table.go defines it: the
// string partition key policystore.KeyAttribute, on-demand billing, TTL on
// policystore.TTLAttribute. It returns when the table is ACTIVE.
func CreateTable(ctx context.Context, client *dynamodb.Client, table string) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{
			AttributeName: aws.String(policystore.KeyAttribute),
			AttributeType: types.ScalarAttributeType(policystore.KeyAttributeType),
		}},
		KeySchema: []types.KeySchemaElement{{
			AttributeName: aws.String(policystore.KeyAttribute),
			KeyType:       types.KeyTypeHash,
		}},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("dynalite: create table %s: %w", table, err)
	}
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return fmt.Errorf("dynalite: describe table %s: %w", table, err)
		}
		if out.Table.TableStatus == types.TableStatusActive {
			break
		}
		if err := pause.For(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(policystore.TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	// dynalite does not implement TTL (see the package comment); DynamoDB
	// itself, or another local implementation, gets it enabled.
	if err != nil && awserr.Code(err) != "UnknownOperationException" {
		return fmt.Errorf("dynalite: enable TTL on %s: %w", table, err)
	}
	return nil
}
