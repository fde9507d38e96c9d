package sfnrunner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/sfnrunner/sfnrunnertest"
	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/taskerr"
)

type echoIn struct {
	Execution string `json:"execution"`
	Value     string `json:"value"`
}

type echoOut struct {
	Execution string `json:"execution"`
	Value     string `json:"value"`
}

// shared is the package's interpreter, with the echo machine.
var shared = sfnrunnertest.Shared{Config: func() (sfnrunner.Config, error) {
	def, err := os.ReadFile("testdata/echo.asl.json")
	return sfnrunner.Config{
		Machines:      map[string][]byte{"echo": def},
		Substitutions: map[string]string{"EchoFunctionArn": "arn:aws:lambda:local:000000000000:function:echo"},
	}, err
}}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// start returns the package's one runner (one Node start for all tests)
// bound to cfg.Defaults and a new bridge whose echo handler fails or not
// depending on the input value.
func start(t *testing.T, cfg sfnrunner.Config) (sfnrunner.Bound, *taskbridge.Bridge) {
	t.Helper()
	runner := shared.Runner(t)
	h := func(ctx context.Context, in echoIn) (echoOut, error) {
		switch in.Value {
		case "transient":
			return echoOut{}, taskerr.Transient(errors.New("throttled"))
		case "permanent":
			return echoOut{}, errors.New("bad input")
		}
		return echoOut(in), nil
	}
	b := taskbridge.New(map[string]lambda.Handler{"echo": lambda.NewHandler(h)})
	srv := httptest.NewServer(b)
	t.Cleanup(func() { srv.Close(); b.Idle() })
	o := cfg.Defaults
	o.BridgeURL = srv.URL
	return sfnrunner.Bound{Runner: runner, Overrides: o}, b
}

func fast() sfnrunner.Config {
	return sfnrunner.Config{Defaults: sfnrunner.Overrides{
		WaitMillis:          map[string]int{"*": 0},
		RetryIntervalMillis: map[string]int{"*": 0},
	}}
}

func run(t *testing.T, r sfnrunner.Bound, name, value string) sfnrunner.Execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := r.Run(ctx, "echo", name, []byte(fmt.Sprintf(`{"value":%q}`, value)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSucceedsWithContextAndOverriddenWait(t *testing.T) {
	r, _ := start(t, fast())
	e := run(t, r, "exec-1", "hello")
	if e.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("status %s %s %s", e.Status, e.Error, e.Cause)
	}
	var out struct{ Echo echoOut }
	if err := json.Unmarshal(e.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out.Echo.Execution != "exec-1" || out.Echo.Value != "hello" {
		t.Errorf("output %s", e.Output)
	}
	if got := strings.Join(e.States, ","); got != "Echo,Pause,Done" {
		t.Errorf("states %s", got)
	}
	if e.Transitions != 3 || e.Retries != 0 {
		t.Errorf("transitions %d retries %d", e.Transitions, e.Retries)
	}
}

func TestErrorNamesReachRetryAndCatch(t *testing.T) {
	r, b := start(t, fast())
	e := run(t, r, "t", "transient")
	// 1 attempt + 2 retries, then caught into the Fail state.
	if e.Status != sfnrunner.StatusFailed || e.Error != "TransientError" || e.Retries != 2 {
		t.Fatalf("transient: %+v", e)
	}
	var cause struct{ ErrorType, ErrorMessage string }
	if err := json.Unmarshal([]byte(e.Cause), &cause); err != nil || cause.ErrorMessage != "throttled" {
		t.Errorf("cause %q is not the Lambda error payload", e.Cause)
	}
	e = run(t, r, "p", "permanent")
	if e.Status != sfnrunner.StatusFailed || e.Error != "errorString" || e.Retries != 0 {
		t.Fatalf("permanent: %+v", e)
	}

	b.Inject("echo", taskbridge.Fault{Kind: taskbridge.Transient, Times: 2})
	e = run(t, r, "recovers", "x")
	if e.Status != sfnrunner.StatusSucceeded || e.Retries != 2 || e.Transitions != 5 {
		t.Fatalf("injected transient: %+v", e)
	}
	b.Inject("echo", taskbridge.Fault{Kind: taskbridge.Service, Times: 1})
	e = run(t, r, "service", "x")
	if e.Status != sfnrunner.StatusFailed || e.Error != "Lambda.ServiceException" {
		t.Fatalf("injected service error: %+v", e)
	}
}

func TestTaskTimeout(t *testing.T) {
	cfg := fast()
	cfg.Defaults.TaskTimeoutSeconds = map[string]float64{"*": 0.1}
	r, b := start(t, cfg)
	b.Inject("echo", taskbridge.Fault{Kind: taskbridge.Delay, Delay: 300 * time.Millisecond, Times: 1})
	e := run(t, r, "slow-once", "x")
	if e.Status != sfnrunner.StatusSucceeded || e.Retries != 1 {
		t.Fatalf("one timeout, then retried: %+v", e)
	}
	b.Inject("echo", taskbridge.Fault{Kind: taskbridge.Delay, Delay: 300 * time.Millisecond, Times: 2})
	e = run(t, r, "slow", "x")
	if e.Status != sfnrunner.StatusFailed || e.Error != "States.Timeout" {
		t.Fatalf("timeouts: %+v", e)
	}
	b.Idle()
	// The late calls still ran their handler, as a Lambda would: 2 calls
	// per execution, all 4 succeeded.
	calls := b.Calls("echo")
	if len(calls) != 4 {
		t.Fatalf("%d calls, want 4", len(calls))
	}
	for _, c := range calls {
		if c.Error != "" {
			t.Errorf("call %+v failed", c)
		}
	}
}

func TestExecutionTimeoutAndAbort(t *testing.T) {
	cfg := fast()
	cfg.Defaults.WaitMillis = map[string]int{"*": 5000}
	cfg.Defaults.ExecutionTimeoutSeconds = 0.2
	r, _ := start(t, cfg)
	e := run(t, r, "long", "x")
	if e.Status != sfnrunner.StatusTimedOut {
		t.Fatalf("%+v", e)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Run(ctx, "echo", "abandoned", []byte(`{"value":"x"}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestConcurrentExecutions(t *testing.T) {
	r, _ := start(t, fast())
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("c-%d", i)
			e, err := r.Run(context.Background(), "echo", name, []byte(fmt.Sprintf(`{"value":"v%d"}`, i)))
			if err != nil {
				errs <- err
				return
			}
			var out struct{ Echo echoOut }
			json.Unmarshal(e.Output, &out)
			if e.Status != sfnrunner.StatusSucceeded || out.Echo.Execution != name || out.Echo.Value != fmt.Sprintf("v%d", i) {
				errs <- fmt.Errorf("%s: %+v", name, e)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestInvalidDefinitionFailsStart(t *testing.T) {
	sfnrunnertest.RequireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := sfnrunner.Start(ctx, sfnrunner.Config{Machines: map[string][]byte{
		"bad": []byte(`{"StartAt":"Nowhere","States":{"A":{"Type":"Succeed"}}}`),
	}})
	if err == nil {
		t.Fatal("an invalid definition started")
	}
	_, err = sfnrunner.Start(ctx, sfnrunner.Config{Machines: map[string][]byte{
		"unsubstituted": []byte(`{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"${Missing}","End":true}}}`),
	}})
	if err == nil || !strings.Contains(err.Error(), "Missing") {
		t.Fatalf("missing substitution: %v", err)
	}
	// A callback Task that hands its token to nobody could never be
	// answered.
	_, err = sfnrunner.Start(ctx, sfnrunner.Config{Machines: map[string][]byte{
		"tokenless": []byte(`{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
			"Parameters":{"FunctionName":"arn:aws:lambda:local:000000000000:function:ask","Payload":{"x":1}},"End":true}}}`),
	}})
	if err == nil || !strings.Contains(err.Error(), "$$.Task.Token") {
		t.Fatalf("callback without its token: %v", err)
	}
}

// TestLatencyChargesTransitions: under a latency model a Task call first
// pays for the states entered since the previous call; the retried call
// pays for Echo's entry.
func TestLatencyChargesTransitions(t *testing.T) {
	cfg := fast()
	cfg.Defaults.Latency = &sfnrunner.Latency{TransitionMillis: [2]float64{150, 150}, Seed: 1}
	r, b := start(t, cfg)
	b.Inject("echo", taskbridge.Fault{Kind: taskbridge.Transient, Times: 1})
	e := run(t, r, "slow-sfn", "x")
	if e.Status != sfnrunner.StatusSucceeded || e.Transitions != 4 || e.Retries != 1 {
		t.Fatalf("%+v", e)
	}
	calls := b.Calls("echo")
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	if paid := calls[1].At.Sub(calls[0].At); paid < 150*time.Millisecond {
		t.Errorf("the retry was called %s after the first call: the transition was not charged", paid)
	}
}

// TestDefaultsAndPerRunOverrides: Config.Defaults apply to Run; RunWith's
// overrides replace them for one run (another bridge, shorter timeouts).
func TestDefaultsAndPerRunOverrides(t *testing.T) {
	bound, _ := start(t, fast()) // the default bridge, with the echo handler
	def, err := os.ReadFile("testdata/echo.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := sfnrunner.Start(ctx, sfnrunner.Config{
		Machines:      map[string][]byte{"echo": def},
		Substitutions: map[string]string{"EchoFunctionArn": "arn:aws:lambda:local:000000000000:function:echo:live"}, // a qualified ARN
		Defaults:      bound.Overrides,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, err := r.Run(ctx, "echo", "plain", []byte(`{"value":"hello"}`)); err != nil || e.Status != sfnrunner.StatusSucceeded || !strings.Contains(string(e.Output), "hello") {
		t.Fatalf("%+v %v", e, err)
	}

	// A second environment: its own bridge.
	other := taskbridge.New(map[string]lambda.Handler{"echo": lambda.NewHandler(func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{Execution: in.Execution, Value: "from the other bridge"}, nil
	})})
	otherSrv := httptest.NewServer(other)
	defer func() { otherSrv.Close(); other.Idle() }()
	o := sfnrunner.Overrides{BridgeURL: otherSrv.URL, TaskTimeoutSeconds: map[string]float64{"Echo": 0.1}}
	e, err := r.RunWith(ctx, o, "echo", "other", []byte(`{"value":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != sfnrunner.StatusSucceeded || !strings.Contains(string(e.Output), "from the other bridge") {
		t.Fatalf("%+v", e)
	}
	if c := other.Calls("echo"); len(c) != 1 || c[0].Execution != "other" {
		t.Errorf("calls %+v", c)
	}
	other.Inject("echo", taskbridge.Fault{Kind: taskbridge.Delay, Delay: 300 * time.Millisecond})
	e, err = sfnrunner.Bound{Runner: r, Overrides: o}.Run(ctx, "echo", "late", []byte(`{"value":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != sfnrunner.StatusFailed || e.Error != "States.Timeout" {
		t.Fatalf("%+v", e)
	}
	// The defaults still apply to plain runs.
	if e, err := r.Run(ctx, "echo", "plain-2", []byte(`{"value":"hello"}`)); err != nil || e.Status != sfnrunner.StatusSucceeded || !strings.Contains(string(e.Output), "hello") {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestResultOverPayloadLimitIsNotCaught(t *testing.T) {
	r, b := start(t, fast())
	b.Handle("echo", lambda.NewHandler(func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{Value: strings.Repeat("x", 300<<10)}, nil
	}))
	e := run(t, r, "big", "x")
	// The Catch (States.ALL → Caught) does not apply: the execution fails
	// with the limit error itself, not through the Fail state.
	if e.Status != sfnrunner.StatusFailed || e.Error != "States.DataLimitExceeded" || e.Entered("Caught") != 0 {
		t.Fatalf("%+v", e)
	}
}

// noNode skips when the npm packages are missing (npm ci, or make deps),
// except in CI, where a skip would hide that nothing ran.
