// Package sfnfake is a Step Functions endpoint for local runs and tests. It
// speaks the service's AWS JSON 1.0 protocol (X-Amz-Target:
// AWSStepFunctions.<Operation>), so the unchanged aws-sdk-go-v2 sfn client
// works against it with BaseEndpoint set, and it executes the machines with
// local/sfnrunner.
//
// Operations: StartExecution (what the webhook calls), DescribeExecution
// (what a developer's aws CLI asks about a run), StopExecution, and the
// callback pattern's SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat
// (served when the Runner has Callbacks, as *sfnrunner.Runner does), with
// the service's errors: InvalidToken, TaskDoesNotExist, TaskTimedOut (a
// closed task, e.g. a second SendTaskSuccess) and InvalidOutput.
// StartExecution follows the service's naming rules: a name
// already used by an open execution with the same input returns that
// execution (the call is idempotent); a different input, or a closed
// execution of that name, is ExecutionAlreadyExists.
package sfnfake

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"sshguard-unban/local/sfnrunner"
)

// Runner executes a machine; *sfnrunner.Runner is one.
type Runner interface {
	Run(ctx context.Context, machine, name string, input []byte) (sfnrunner.Execution, error)
}

// Callbacks answer a callback Task's token; *sfnrunner.Runner and
// sfnrunner.Bound have them, returning *sfnrunner.TaskError when refused.
type Callbacks interface {
	SendTaskSuccess(ctx context.Context, token string, output json.RawMessage) error
	SendTaskFailure(ctx context.Context, token, errName, cause string) error
	SendTaskHeartbeat(ctx context.Context, token string) error
}

// Options configure a Fake.
type Options struct {
	// Machines maps a state machine ARN to the Runner's machine name. When
	// nil, an ARN arn:aws:states:REGION:ACCOUNT:stateMachine:NAME runs the
	// machine NAME.
	Machines map[string]string
	// OnEnd, if set, is called after each execution ends.
	OnEnd func(Execution)
}

// Execution is the fake's record of one execution.
type Execution struct {
	ARN             string
	StateMachineARN string
	Machine         string
	Name            string
	Input           string
	Status          string // RUNNING, then an sfnrunner status
	Start, Stop     time.Time
	Output          string
	Error, Cause    string
	// Run is the runner's report (transitions, states entered…), once ended.
	Run sfnrunner.Execution
}

// Fake is the endpoint. Its methods are safe for concurrent use.
type Fake struct {
	runner Runner
	opts   Options

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	execs map[string]*record // by execution ARN
	order []string           // ARNs in start order
}

type record struct {
	Execution
	stop  context.CancelFunc
	ended chan struct{}
	// stopped is set by StopExecution, with its error and cause.
	stopped              bool
	stopError, stopCause string
}

// New returns a Fake executing with r. It is an http.Handler: serve it
// with httptest.NewServer; Close it to abort what still runs.
func New(r Runner, opts Options) *Fake {
	ctx, cancel := context.WithCancel(context.Background())
	return &Fake{runner: r, opts: opts, ctx: ctx, cancel: cancel, execs: map[string]*record{}}
}

// Close aborts the executions still running and waits for them.
func (f *Fake) Close() {
	f.cancel()
	f.wg.Wait()
}

// Wait blocks until every execution started so far has ended.
func (f *Fake) Wait() { f.wg.Wait() }

// WaitFor blocks until the execution ends and returns its record.
func (f *Fake) WaitFor(ctx context.Context, executionARN string) (Execution, error) {
	f.mu.Lock()
	rec := f.execs[executionARN]
	f.mu.Unlock()
	if rec == nil {
		return Execution{}, fmt.Errorf("sfnfake: no execution %s", executionARN)
	}
	select {
	case <-rec.ended:
	case <-ctx.Done():
		return Execution{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return rec.Execution, nil
}

// Executions returns every execution, in start order.
func (f *Fake) Executions() []Execution {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Execution, 0, len(f.order))
	for _, arn := range f.order {
		out = append(out, f.execs[arn].Execution)
	}
	return out
}

// apiError is an error answered in the protocol's shape.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badRequest(code, format string, args ...any) error {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

// ServeHTTP dispatches on X-Amz-Target.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AWSStepFunctions.")
	if r.Method != http.MethodPost || !ok {
		writeError(w, &apiError{http.StatusBadRequest, "UnknownOperationException", "expected POST with X-Amz-Target: AWSStepFunctions.<Operation>"})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, badRequest("SerializationException", "%v", err))
		return
	}
	var out any
	switch op {
	case "StartExecution":
		out, err = f.startExecution(body)
	case "DescribeExecution":
		out, err = f.describeExecution(body)
	case "StopExecution":
		out, err = f.stopExecution(r.Context(), body)
	case "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat":
		out, err = f.sendTask(r.Context(), op, body)
	default:
		err = badRequest("UnknownOperationException", "operation %s is not served by sfnfake", op)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, "InternalFailure", err.Error()}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-ErrorType", ae.code)
	w.WriteHeader(ae.status)
	json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.states#" + ae.code, "message": ae.msg})
}

// epoch is the protocol's timestamp: seconds since 1970 as a JSON number.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(t).UnixMilli())/1000, 'f', 3, 64)), nil
}

func decode(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("SerializationException", "%v", err)
	}
	return nil
}

// machineFor maps a state machine ARN to a runner machine name.
func (f *Fake) machineFor(arn string) (string, error) {
	if f.opts.Machines != nil {
		if m, ok := f.opts.Machines[arn]; ok {
			return m, nil
		}
		return "", badRequest("StateMachineDoesNotExist", "State Machine Does Not Exist: '%s'", arn)
	}
	parts := strings.Split(arn, ":")
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "stateMachine" || parts[6] == "" {
		return "", badRequest("InvalidArn", "Invalid Arn: '%s'", arn)
	}
	return parts[6], nil
}

// validName applies the service's rules: 1–80 characters, none of
// whitespace, brackets, wildcards, "#%\^|~`$&,;:/ or control characters.
func validName(name string) bool {
	if name == "" || utf8.RuneCountInString(name) > 80 {
		return false
	}
	for _, c := range name {
		switch {
		case c <= 0x20, c >= 0x7f && c <= 0x9f:
			return false
		case strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", c):
			return false
		}
	}
	return true
}

func (f *Fake) startExecution(body []byte) (any, error) {
	var in struct {
		StateMachineArn string  `json:"stateMachineArn"`
		Name            *string `json:"name"`
		Input           *string `json:"input"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	machine, err := f.machineFor(in.StateMachineArn)
	if err != nil {
		return nil, err
	}
	name := ""
	if in.Name != nil {
		name = *in.Name
		if !validName(name) {
			return nil, badRequest("InvalidName", "Invalid Name: '%s'", name)
		}
	} else {
		name = uuid()
	}
	input := "{}"
	if in.Input != nil {
		input = *in.Input
	}
	if len(input) > 256*1024 {
		return nil, badRequest("InvalidExecutionInput", "input exceeds the 256 KiB limit")
	}
	if !json.Valid([]byte(input)) {
		return nil, badRequest("InvalidExecutionInput", "Invalid State Machine Execution Input: not JSON")
	}
	smARN := in.StateMachineArn
	arn := executionARN(smARN, name)

	f.mu.Lock()
	defer f.mu.Unlock()
	if rec, ok := f.execs[arn]; ok {
		if rec.Status == "RUNNING" && rec.Input == input {
			return startOutput(rec), nil
		}
		return nil, badRequest("ExecutionAlreadyExists", "Execution Already Exists: '%s'", arn)
	}
	ctx, stop := context.WithCancel(f.ctx)
	rec := &record{
		Execution: Execution{ARN: arn, StateMachineARN: smARN, Machine: machine, Name: name, Input: input, Status: "RUNNING", Start: time.Now()},
		stop:      stop,
		ended:     make(chan struct{}),
	}
	f.execs[arn] = rec
	f.order = append(f.order, arn)
	f.wg.Add(1)
	go f.execute(ctx, rec)
	return startOutput(rec), nil
}

func startOutput(rec *record) any {
	return struct {
		ExecutionArn string `json:"executionArn"`
		StartDate    epoch  `json:"startDate"`
	}{rec.ARN, epoch(rec.Start)}
}

// executionARN follows the service: the state machine ARN with
// stateMachine replaced by execution, and the name appended.
func executionARN(smARN, name string) string {
	if i := strings.Index(smARN, ":stateMachine:"); i >= 0 {
		return smARN[:i] + ":execution:" + smARN[i+len(":stateMachine:"):] + ":" + name
	}
	return smARN + ":execution:" + name
}

func (f *Fake) execute(ctx context.Context, rec *record) {
	defer f.wg.Done()
	res, err := f.runner.Run(ctx, rec.Machine, rec.Name, []byte(rec.Input))
	f.mu.Lock()
	rec.Stop = time.Now()
	rec.Run = res
	switch {
	case rec.stopped:
		rec.Status = sfnrunner.StatusAborted
		rec.Error, rec.Cause = rec.stopError, rec.stopCause
	case err != nil && ctx.Err() != nil:
		rec.Status = sfnrunner.StatusAborted // the fake was closed
	case err != nil:
		rec.Status = sfnrunner.StatusFailed
		rec.Error, rec.Cause = "States.Runtime", err.Error()
	default:
		rec.Status = res.Status
		rec.Error, rec.Cause = res.Error, res.Cause
		if len(res.Output) > 0 && res.Status == sfnrunner.StatusSucceeded {
			rec.Output = string(res.Output)
		}
	}
	done := rec.Execution
	f.mu.Unlock()
	rec.stop()
	close(rec.ended)
	if f.opts.OnEnd != nil {
		f.opts.OnEnd(done)
	}
}

// stopExecution aborts a running execution (its waiting callback Tasks
// end with it) and waits until it has ended. An execution already ended is
// left as it is.
func (f *Fake) stopExecution(ctx context.Context, body []byte) (any, error) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
		Error        string `json:"error"`
		Cause        string `json:"cause"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Error) > 256 || len(in.Cause) > 32768 {
		return nil, badRequest("ValidationException", "error or cause too long")
	}
	f.mu.Lock()
	rec, err := f.lookup(in.ExecutionArn)
	if err == nil && rec.Status == "RUNNING" && !rec.stopped {
		rec.stopped, rec.stopError, rec.stopCause = true, in.Error, in.Cause
		rec.stop()
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case <-rec.ended:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	stop := rec.Stop
	f.mu.Unlock()
	return struct {
		StopDate epoch `json:"stopDate"`
	}{epoch(stop)}, nil
}

// sendTask serves SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat;
// each answers an empty object.
func (f *Fake) sendTask(ctx context.Context, op string, body []byte) (any, error) {
	cb, ok := f.runner.(Callbacks)
	if !ok {
		return nil, badRequest("UnknownOperationException", "operation %s needs a runner serving task tokens", op)
	}
	var in struct {
		TaskToken *string `json:"taskToken"`
		Output    *string `json:"output"`
		Error     string  `json:"error"`
		Cause     string  `json:"cause"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.TaskToken == nil || *in.TaskToken == "" || len(*in.TaskToken) > 2048:
		return nil, badRequest("ValidationException", "taskToken must be 1 to 2048 characters")
	case op == "SendTaskSuccess" && in.Output == nil:
		return nil, badRequest("ValidationException", "output is required")
	case op == "SendTaskSuccess" && len(*in.Output) > 256*1024:
		return nil, badRequest("ValidationException", "output exceeds the 262144-character limit")
	case len(in.Error) > 256 || len(in.Cause) > 32768:
		return nil, badRequest("ValidationException", "error or cause too long")
	}
	var err error
	switch op {
	case "SendTaskSuccess":
		err = cb.SendTaskSuccess(ctx, *in.TaskToken, json.RawMessage(*in.Output))
	case "SendTaskFailure":
		err = cb.SendTaskFailure(ctx, *in.TaskToken, in.Error, in.Cause)
	default:
		err = cb.SendTaskHeartbeat(ctx, *in.TaskToken)
	}
	var te *sfnrunner.TaskError
	if errors.As(err, &te) {
		return nil, badRequest(te.Code, "%s", te.Message)
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (f *Fake) lookup(arn string) (*record, error) {
	rec := f.execs[arn]
	if rec == nil {
		return nil, badRequest("ExecutionDoesNotExist", "Execution Does Not Exist: '%s'", arn)
	}
	return rec, nil
}

type describeOutput struct {
	ExecutionArn    string `json:"executionArn"`
	StateMachineArn string `json:"stateMachineArn"`
	Name            string `json:"name"`
	Status          string `json:"status"`
	StartDate       epoch  `json:"startDate"`
	StopDate        *epoch `json:"stopDate,omitempty"`
	Input           string `json:"input"`
	InputDetails    struct {
		Included bool `json:"included"`
	} `json:"inputDetails"`
	Output        *string `json:"output,omitempty"`
	OutputDetails *struct {
		Included bool `json:"included"`
	} `json:"outputDetails,omitempty"`
	Error         string `json:"error,omitempty"`
	Cause         string `json:"cause,omitempty"`
	RedriveCount  int    `json:"redriveCount"`
	RedriveStatus string `json:"redriveStatus"`
}

func (f *Fake) describeExecution(body []byte) (any, error) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, err := f.lookup(in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	out := describeOutput{
		ExecutionArn: rec.ARN, StateMachineArn: rec.StateMachineARN, Name: rec.Name,
		Status: rec.Status, StartDate: epoch(rec.Start), Input: rec.Input,
		Error: rec.Error, Cause: rec.Cause,
		// Redrive is not served: say so, as the service does for executions
		// it cannot redrive.
		RedriveStatus: "NOT_REDRIVABLE",
	}
	out.InputDetails.Included = true
	if rec.Status != "RUNNING" {
		stop := epoch(rec.Stop)
		out.StopDate = &stop
	}
	if rec.Status == sfnrunner.StatusSucceeded {
		o := rec.Output
		out.Output = &o
		out.OutputDetails = &struct {
			Included bool `json:"included"`
		}{true}
	}
	return out, nil
}

// uuid is the service's default execution name: a random UUID.
func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
