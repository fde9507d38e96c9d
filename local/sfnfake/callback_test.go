package sfnfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"sshguard-unban/local/sfnfake"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/sfnrunner/sfnrunnertest"
	"sshguard-unban/local/taskbridge"
)

// The callback tests run testdata/callback.asl.json of sfnrunner on the
// real interpreter, and answer its tokens through the real sfn client.

const callbackARN = "arn:aws:states:local:000000000000:stateMachine:callback"

// shared is the package's interpreter, with the callback machine.
var shared = sfnrunnertest.Shared{Config: func() (sfnrunner.Config, error) {
	def, err := os.ReadFile("../sfnrunner/testdata/callback.asl.json")
	return sfnrunner.Config{
		Machines:      map[string][]byte{"callback": def},
		Substitutions: map[string]string{"AskFunctionArn": "arn:aws:lambda:local:000000000000:function:ask"},
	}, err
}}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// asked is what the approval function received: its task token among it.
type asked struct {
	Request   string `json:"request"`
	Execution string `json:"execution"`
	Token     string `json:"token"`
}

type callbackEnv struct {
	c      *sfn.Client
	f      *sfnfake.Fake
	bridge *taskbridge.Bridge
	asks   chan asked
}

// callbackEnv starts (once) the interpreter with the callback machine and
// gives the test its own bridge, whose "ask" function records the tokens,
// and its own endpoint, with o's overrides.
func newCallbackEnv(t *testing.T, o sfnrunner.Overrides) *callbackEnv {
	t.Helper()
	runner := shared.Runner(t)
	e := &callbackEnv{asks: make(chan asked, 10)}
	e.bridge = taskbridge.New(map[string]lambda.Handler{"ask": lambda.NewHandler(func(ctx context.Context, in asked) (map[string]bool, error) {
		e.asks <- in
		return map[string]bool{"posted": true}, nil
	})})
	srv := httptest.NewServer(e.bridge)
	t.Cleanup(func() { srv.Close(); e.bridge.Idle() })
	o.BridgeURL = srv.URL
	o.RetryIntervalMillis = map[string]int{"*": 0}
	e.f = sfnfake.New(sfnrunner.Bound{Runner: runner, Overrides: o}, sfnfake.Options{})
	t.Cleanup(e.f.Close)
	e.c = client(t, serve(t, e.f))
	return e
}

// start starts an execution and returns its ARN and the token its
// function was handed.
func (e *callbackEnv) start(t *testing.T, name string) (string, asked) {
	t.Helper()
	out, err := e.c.StartExecution(context.Background(), &sfn.StartExecutionInput{
		StateMachineArn: aws.String(callbackARN), Name: aws.String(name), Input: aws.String(`{"request":"unban 192.0.2.7"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ExecutionArn), e.ask(t)
}

func (e *callbackEnv) ask(t *testing.T) asked {
	t.Helper()
	select {
	case a := <-e.asks:
		if a.Token == "" || a.Request != "unban 192.0.2.7" {
			t.Fatalf("the function was asked %+v", a)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("the function was never asked")
		return asked{}
	}
}

func (e *callbackEnv) end(t *testing.T, arn string) *sfn.DescribeExecutionOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.f.WaitFor(ctx, arn); err != nil {
		t.Fatal(err)
	}
	d, err := e.c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *callbackEnv) success(token, output string) error {
	_, err := e.c.SendTaskSuccess(context.Background(), &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(output)})
	return err
}

func (e *callbackEnv) heartbeat(token string) error {
	_, err := e.c.SendTaskHeartbeat(context.Background(), &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(token)})
	return err
}

func TestCallbackSuccessContinuesWithOutput(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{})
	arn, a := e.start(t, "approve-1")
	if a.Execution != "approve-1" {
		t.Errorf("payload %+v", a)
	}
	// The execution waits for the answer.
	time.Sleep(50 * time.Millisecond)
	if d, err := e.c.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)}); err != nil || d.Status != types.ExecutionStatusRunning {
		t.Fatalf("before the answer: %+v %v", d, err)
	}
	if err := e.heartbeat(a.Token); err != nil {
		t.Fatalf("heartbeat while waiting: %v", err)
	}
	if err := e.success(a.Token, `{"approved":true,"by":"sre-1"}`); err != nil {
		t.Fatal(err)
	}
	d := e.end(t, arn)
	var out struct {
		Request  string
		Decision struct {
			Approved bool
			By       string
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &out); err != nil {
		t.Fatal(err)
	}
	if d.Status != types.ExecutionStatusSucceeded || !out.Decision.Approved || out.Decision.By != "sre-1" || out.Request != "unban 192.0.2.7" {
		t.Fatalf("%s %s", d.Status, aws.ToString(d.Output))
	}
	// The token is spent: a second answer is refused as AWS refuses it.
	var timedOut *types.TaskTimedOut
	if err := e.success(a.Token, `{"approved":false}`); !errors.As(err, &timedOut) {
		t.Errorf("second SendTaskSuccess: %v", err)
	}
	if err := e.heartbeat(a.Token); !errors.As(err, &timedOut) {
		t.Errorf("heartbeat after the answer: %v", err)
	}
}

func TestCallbackFailureGoesToCatch(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{})
	arn, first := e.start(t, "deny-1")
	// A failure a retrier matches: the Task runs again, with a new token.
	if _, err := e.c.SendTaskFailure(context.Background(), &sfn.SendTaskFailureInput{TaskToken: aws.String(first.Token), Error: aws.String("AskAgain")}); err != nil {
		t.Fatal(err)
	}
	second := e.ask(t)
	if second.Token == first.Token {
		t.Fatal("the retried attempt kept its token")
	}
	var timedOut *types.TaskTimedOut
	if err := e.success(first.Token, `{}`); !errors.As(err, &timedOut) {
		t.Errorf("the first attempt's token after the retry: %v", err)
	}
	if _, err := e.c.SendTaskFailure(context.Background(), &sfn.SendTaskFailureInput{
		TaskToken: aws.String(second.Token), Error: aws.String("Denied"), Cause: aws.String("sre-1 said no"),
	}); err != nil {
		t.Fatal(err)
	}
	d := e.end(t, arn)
	if d.Status != types.ExecutionStatusFailed || aws.ToString(d.Error) != "Denied" || aws.ToString(d.Cause) != "sre-1 said no" {
		t.Fatalf("%s %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
	rec, _ := e.f.WaitFor(context.Background(), arn)
	if got := strings.Join(rec.Run.States, ","); got != "AskApproval,WasDenied" || rec.Run.Retries != 1 {
		t.Errorf("states %s, retries %d", got, rec.Run.Retries)
	}
}

func TestCallbackTimeout(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{TaskTimeoutSeconds: map[string]float64{"AskApproval": 0.2}})
	arn, a := e.start(t, "late-1")
	d := e.end(t, arn)
	if d.Status != types.ExecutionStatusSucceeded || aws.ToString(d.Output) != `{"timedOut":"States.Timeout"}` {
		t.Fatalf("%s %s", d.Status, aws.ToString(d.Output))
	}
	var timedOut *types.TaskTimedOut
	if err := e.success(a.Token, `{"approved":true}`); !errors.As(err, &timedOut) {
		t.Errorf("an answer after the timeout: %v", err)
	}
}

func TestCallbackHeartbeat(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{
		TaskTimeoutSeconds: map[string]float64{"*": 10},
		HeartbeatSeconds:   map[string]float64{"*": 0.3},
	})
	// Beating every 100 ms keeps the Task alive well past 300 ms.
	arn, a := e.start(t, "beating")
	for range 8 {
		time.Sleep(100 * time.Millisecond)
		if err := e.heartbeat(a.Token); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	if err := e.success(a.Token, `{"approved":true}`); err != nil {
		t.Fatalf("success after 800 ms of heartbeats: %v", err)
	}
	if d := e.end(t, arn); d.Status != types.ExecutionStatusSucceeded || !strings.Contains(aws.ToString(d.Output), `"decision":{"approved":true}`) {
		t.Fatalf("%s %s", d.Status, aws.ToString(d.Output))
	}

	// No heartbeat: States.HeartbeatTimeout, caught by the States.Timeout
	// catcher as in the States Language, long before TimeoutSeconds.
	arn, a = e.start(t, "silent")
	d := e.end(t, arn)
	if d.Status != types.ExecutionStatusSucceeded || aws.ToString(d.Output) != `{"timedOut":"States.HeartbeatTimeout"}` {
		t.Fatalf("%s %s", d.Status, aws.ToString(d.Output))
	}
	if took := d.StopDate.Sub(*d.StartDate); took > 5*time.Second {
		t.Errorf("ended after %s: the heartbeat did not time out", took)
	}
	var timedOut *types.TaskTimedOut
	if err := e.heartbeat(a.Token); !errors.As(err, &timedOut) {
		t.Errorf("heartbeat after the heartbeat timeout: %v", err)
	}
}

func TestCallbackTokensRefused(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{})
	var invalid *types.InvalidToken
	if err := e.success("not-a-token", `{}`); !errors.As(err, &invalid) {
		t.Errorf("malformed token: %v", err)
	}
	var noTask *types.TaskDoesNotExist
	if err := e.success(strings.Repeat("A", 64), `{}`); !errors.As(err, &noTask) {
		t.Errorf("a token never issued: %v", err)
	}
	if _, err := e.c.SendTaskFailure(context.Background(), &sfn.SendTaskFailureInput{TaskToken: aws.String(strings.Repeat("B", 64))}); !errors.As(err, &noTask) {
		t.Errorf("SendTaskFailure, a token never issued: %v", err)
	}
	arn, a := e.start(t, "bad-output")
	var badOutput *types.InvalidOutput
	if err := e.success(a.Token, `{"approved":`); !errors.As(err, &badOutput) {
		t.Errorf("output not JSON: %v", err)
	}
	// The refused call left the Task waiting.
	if err := e.success(a.Token, `"approved"`); err != nil {
		t.Fatal(err)
	}
	if d := e.end(t, arn); d.Status != types.ExecutionStatusSucceeded || !strings.Contains(aws.ToString(d.Output), `"decision":"approved"`) {
		t.Fatalf("%s %s", d.Status, aws.ToString(d.Output))
	}
}

func TestStopExecutionEndsTheWait(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{})
	arn, a := e.start(t, "stopped")
	out, err := e.c.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: aws.String(arn), Error: aws.String("Withdrawn"), Cause: aws.String("the asker withdrew")})
	if err != nil {
		t.Fatal(err)
	}
	if out.StopDate == nil {
		t.Error("no stopDate")
	}
	d := e.end(t, arn)
	if d.Status != types.ExecutionStatusAborted || aws.ToString(d.Error) != "Withdrawn" || aws.ToString(d.Cause) != "the asker withdrew" {
		t.Fatalf("%s %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
	var timedOut *types.TaskTimedOut
	if err := e.success(a.Token, `{}`); !errors.As(err, &timedOut) {
		t.Errorf("an answer after StopExecution: %v", err)
	}
	var noSuch *types.ExecutionDoesNotExist
	if _, err := e.c.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: aws.String(arn + "x")}); !errors.As(err, &noSuch) {
		t.Errorf("stopping an unknown execution: %v", err)
	}
}

func TestCallbackFunctionErrorFailsAtOnce(t *testing.T) {
	e := newCallbackEnv(t, sfnrunner.Overrides{})
	e.bridge.Inject("ask", taskbridge.Fault{Kind: taskbridge.Permanent, Times: 1})
	out, err := e.c.StartExecution(context.Background(), &sfn.StartExecutionInput{StateMachineArn: aws.String(callbackARN), Name: aws.String("broken"), Input: aws.String(`{"request":"x"}`)})
	if err != nil {
		t.Fatal(err)
	}
	d := e.end(t, aws.ToString(out.ExecutionArn))
	if d.Status != types.ExecutionStatusFailed || aws.ToString(d.Error) != "errorString" {
		t.Fatalf("%s %s %s", d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
	}
}
