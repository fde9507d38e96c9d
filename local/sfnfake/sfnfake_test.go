package sfnfake_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"sshguard-unban/local/sfnfake"
	"sshguard-unban/local/sfnrunner"
)

// gate is a Runner whose executions run until released, so tests see them
// RUNNING.
type gate struct {
	mu      sync.Mutex
	calls   []string
	release chan struct{}
}

func (g *gate) Run(ctx context.Context, machine, name string, input []byte) (sfnrunner.Execution, error) {
	g.mu.Lock()
	g.calls = append(g.calls, machine+"/"+name)
	g.mu.Unlock()
	select {
	case <-g.release:
		return sfnrunner.Execution{Status: sfnrunner.StatusSucceeded, Output: []byte(`{"ok":true}`), Transitions: 2}, nil
	case <-ctx.Done():
		return sfnrunner.Execution{}, ctx.Err()
	}
}

func client(t *testing.T, url string) *sfn.Client {
	t.Helper()
	return sfn.New(sfn.Options{
		Region:       "local",
		BaseEndpoint: aws.String(url),
		Credentials:  aws.AnonymousCredentials{},
	})
}

const smARN = "arn:aws:states:local:000000000000:stateMachine:unban"

func TestStartExecutionNamingRules(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	f := sfnfake.New(g, sfnfake.Options{})
	defer f.Close()
	c := client(t, serve(t, f))
	ctx := context.Background()

	start := func(name, input string) (*sfn.StartExecutionOutput, error) {
		return c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smARN), Name: aws.String(name), Input: aws.String(input)})
	}
	first, err := start("room-1-msg-2", `{"request":{"body":"unban"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:states:local:000000000000:execution:unban:room-1-msg-2"; aws.ToString(first.ExecutionArn) != want {
		t.Errorf("arn %s, want %s", aws.ToString(first.ExecutionArn), want)
	}
	// Open execution, same input: the same execution, nothing new runs.
	again, err := start("room-1-msg-2", `{"request":{"body":"unban"}}`)
	if err != nil {
		t.Fatalf("same name and input while running: %v", err)
	}
	if aws.ToString(again.ExecutionArn) != aws.ToString(first.ExecutionArn) || !again.StartDate.Equal(*first.StartDate) {
		t.Errorf("second start %+v differs from %+v", again, first)
	}
	// Open execution, other input: ExecutionAlreadyExists.
	_, err = start("room-1-msg-2", `{"request":{"body":"other"}}`)
	var exists *types.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		t.Fatalf("different input: %v", err)
	}

	d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: first.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != types.ExecutionStatusRunning || d.StopDate != nil || d.Output != nil {
		t.Errorf("running: %+v", d)
	}

	close(g.release)
	f.Wait()
	d, err = c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: first.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != types.ExecutionStatusSucceeded || aws.ToString(d.Output) != `{"ok":true}` || d.StopDate == nil || aws.ToString(d.Input) != `{"request":{"body":"unban"}}` {
		t.Errorf("succeeded: %+v", d)
	}
	// Closed execution: the name is taken whatever the input.
	if _, err := start("room-1-msg-2", `{"request":{"body":"unban"}}`); !errors.As(err, &exists) {
		t.Fatalf("same name after the end: %v", err)
	}
	if n := len(g.calls); n != 1 {
		t.Errorf("%d executions ran, want 1", n)
	}

	var invalid *types.InvalidName
	if _, err := start("has space", `{}`); !errors.As(err, &invalid) {
		t.Errorf("invalid name: %v", err)
	}
	var badInput *types.InvalidExecutionInput
	if _, err := start("x", `{`); !errors.As(err, &badInput) {
		t.Errorf("invalid input: %v", err)
	}
	var noSuch *types.ExecutionDoesNotExist
	if _, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(smARN + "x")}); !errors.As(err, &noSuch) {
		t.Errorf("unknown execution: %v", err)
	}
}

func TestUnknownMachine(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	f := sfnfake.New(g, sfnfake.Options{Machines: map[string]string{smARN: "unban"}})
	defer f.Close()
	c := client(t, serve(t, f))
	var noMachine *types.StateMachineDoesNotExist
	if _, err := c.StartExecution(context.Background(), &sfn.StartExecutionInput{StateMachineArn: aws.String(smARN + "2")}); !errors.As(err, &noMachine) {
		t.Errorf("unknown machine: %v", err)
	}
	close(g.release)
}

// serve serves a fake with httptest for the test's lifetime.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
