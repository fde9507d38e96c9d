// Package sfnrunner executes the project's state machines (Amazon States
// Language, statemachine/*.asl.json) without AWS: a long-lived Node process
// (runner.mjs, embedded here) interprets them with the npm package
// aws-local-stepfunctions, and every Task calls a Lambda-Invoke-compatible
// HTTP endpoint, normally local/taskbridge serving the real Go handlers.
//
// Tasks using the callback pattern (Resource
// arn:aws:states:::lambda:invoke.waitForTaskToken, "key.$": "$$.Task.Token"
// in the Parameters) get a new task token per attempt and wait, after the
// function's Invoke call, for SendTaskSuccess, SendTaskFailure or their
// TimeoutSeconds / HeartbeatSeconds (SendTaskHeartbeat), as in AWS.
//
// Node 22 or later is required (the package calls Promise.withResolvers); the
// project's package.json installs it as node_modules/.bin/node.
package sfnrunner

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

//go:embed runner.mjs
var runnerScript []byte

// Execution statuses, as Step Functions names them.
const (
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusTimedOut  = "TIMED_OUT"
	StatusAborted   = "ABORTED"
)

// Config says what to run and how.
type Config struct {
	// Machines maps a machine name ("unban") to its ASL text, ${…} left in.
	Machines map[string][]byte
	// Substitutions replace ${Key} in every definition before it is loaded,
	// like CDK's DefinitionSubstitutions. A Task's Resource must become a
	// Lambda function ARN (the validator requires an ARN): its function
	// name is the name under which the bridge serves the handler.
	Substitutions map[string]string

	// Defaults apply to every run; RunWith's overrides replace them field
	// by field.
	Defaults Overrides

	// Region and Account build the ARNs seen in the context object
	// ($$.Execution.Id); defaults "local" and "000000000000".
	Region, Account string

	// NodePath is the node executable (default <repo>/node_modules/.bin/node),
	// ModulesDir the node_modules holding aws-local-stepfunctions (default
	// <repo>/node_modules), where <repo> is found by RepoRoot.
	NodePath   string
	ModulesDir string
	// Stderr receives the Node process's stderr (default os.Stderr).
	Stderr io.Writer
}

// Overrides change how a run executes. Nil (zero) fields keep the
// definition's values (or Config.Defaults').
type Overrides struct {
	// BridgeURL is the base URL of a Lambda Invoke API endpoint
	// (POST /2015-03-31/functions/NAME/invocations), e.g. taskbridge.
	BridgeURL string `json:"bridge_url,omitempty"`
	// WaitMillis overrides Wait states' durations in milliseconds, by state
	// name or "*" for all. Tests use 0 or a few ms.
	WaitMillis map[string]int `json:"wait_ms,omitempty"`
	// RetryIntervalMillis overrides the delay before every retry, by state
	// name or "*" (instead of IntervalSeconds, BackoffRate and jitter).
	RetryIntervalMillis map[string]int `json:"retry_interval_ms,omitempty"`
	// TaskTimeoutSeconds overrides Tasks' TimeoutSeconds, by state name or
	// "*"; fractions are allowed, so timeout tests stay fast. The definition
	// is still validated as written.
	TaskTimeoutSeconds map[string]float64 `json:"task_timeout_seconds,omitempty"`
	// HeartbeatSeconds overrides callback Tasks' HeartbeatSeconds (the
	// longest gap between SendTaskHeartbeat calls), by state name or "*".
	HeartbeatSeconds map[string]float64 `json:"heartbeat_seconds,omitempty"`
	// ExecutionTimeoutSeconds, when > 0, replaces the machine's top-level
	// TimeoutSeconds.
	ExecutionTimeoutSeconds float64 `json:"execution_timeout_seconds,omitempty"`
	// Latency, if set, charges Standard Step Functions' own time: a
	// transition per state entered (paid before the next Task call) and,
	// when WaitMillis is unset, the definition's Wait seconds plus an
	// overshoot.
	Latency *Latency `json:"latency,omitempty"`
	// Redrive, if set, runs the execution the way RedriveExecution
	// continues a failed one: from the unsuccessful state, with the input
	// that state had, the states before it not run again.
	Redrive *Redrive `json:"redrive,omitempty"`
}

// Redrive is where a redriven execution continues. Its input is the run's
// input (Execution.Inputs[StartAt] of the failed run).
type Redrive struct {
	StartAt string `json:"start_at"`
	// StartMillis is the original execution's start (Execution.StartMillis):
	// a redriven execution keeps its $$.Execution.StartTime.
	StartMillis int64 `json:"start_ms"`
}

// Latency is the Step Functions part of a latency model, as [p50, p95]
// milliseconds of a log-normal (local/latency.Dist).
type Latency struct {
	TransitionMillis    [2]float64 `json:"transition_ms"`
	WaitOvershootMillis [2]float64 `json:"wait_overshoot_ms"`
	Seed                uint32     `json:"seed"`
}

// Execution is the outcome of one run.
type Execution struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
	Cause  string          `json:"cause,omitempty"`
	// Transitions is what Step Functions Standard bills: states entered plus
	// retries.
	Transitions int `json:"transitions"`
	// States lists the states entered, in order (repeats included), and
	// EnteredMillis when each was entered (Unix milliseconds).
	States        []string `json:"states"`
	EnteredMillis []int64  `json:"entered_ms"`
	Retries       int      `json:"retries"`
	// MaxStateBytes is the largest state output (JSON) of the run; Step
	// Functions fails an execution whose payload exceeds 256 KiB.
	MaxStateBytes int   `json:"max_state_bytes"`
	StartMillis   int64 `json:"start_ms"`
	StopMillis    int64 `json:"stop_ms"`
	// Inputs holds the input each state had when last entered: what a
	// redrive from that state starts with.
	Inputs map[string]json.RawMessage `json:"inputs,omitempty"`
}

// Start and Stop are the run's wall-clock bounds.
func (e Execution) Start() time.Time { return time.UnixMilli(e.StartMillis) }

// Stop is when the run ended.
func (e Execution) Stop() time.Time { return time.UnixMilli(e.StopMillis) }

// Entered reports how many times the named state was entered.
func (e Execution) Entered(state string) int {
	n := 0
	for _, s := range e.States {
		if s == state {
			n++
		}
	}
	return n
}

// Runner is a running Node interpreter. Its methods are safe for concurrent
// use: any number of executions may be in flight.
type Runner struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	script  string
	writeMu sync.Mutex

	mu      sync.Mutex
	pending map[string]chan Execution
	answers map[string]chan taskAnswer // callbacks awaiting their answer
	nextID  uint64
	err     error // set when the process is gone
	done    chan struct{}
}

// runnerConfig is the first line sent to runner.mjs.
type runnerConfig struct {
	Modules       string            `json:"modules"`
	Machines      map[string]string `json:"machines"`
	Substitutions map[string]string `json:"substitutions"`
	Defaults      Overrides         `json:"defaults"`
	Region        string            `json:"region,omitempty"`
	Account       string            `json:"account,omitempty"`
}

// Start launches the interpreter and loads (validates) every machine.
func Start(ctx context.Context, cfg Config) (*Runner, error) {
	var err error
	if cfg.NodePath, cfg.ModulesDir, err = NodeDefaults(cfg.NodePath, cfg.ModulesDir); err != nil {
		return nil, err
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	// The script is embedded so the runner works from any binary; it finds
	// the library through ModulesDir, not through its own location.
	f, err := os.CreateTemp("", "sfnrunner-*.mjs")
	if err != nil {
		return nil, err
	}
	script := f.Name()
	if _, err := f.Write(runnerScript); err != nil {
		f.Close()
		os.Remove(script)
		return nil, err
	}
	f.Close()

	rc := runnerConfig{
		Modules:       cfg.ModulesDir,
		Machines:      map[string]string{},
		Substitutions: cfg.Substitutions,
		Defaults:      cfg.Defaults,
		Region:        cfg.Region,
		Account:       cfg.Account,
	}
	for name, def := range cfg.Machines {
		rc.Machines[name] = string(def)
	}
	first, err := json.Marshal(rc)
	if err != nil {
		os.Remove(script)
		return nil, err
	}

	// Not exec.CommandContext: ctx bounds the start-up only; the process
	// lives until Close.
	cmd := exec.Command(cfg.NodePath, script)
	cmd.Stderr = cfg.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.Remove(script)
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.Remove(script)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.Remove(script)
		return nil, fmt.Errorf("sfnrunner: start %s: %w", cfg.NodePath, err)
	}
	r := &Runner{cmd: cmd, stdin: stdin, script: script, pending: map[string]chan Execution{}, answers: map[string]chan taskAnswer{}, done: make(chan struct{})}

	ready := make(chan error, 1)
	go r.read(stdout, ready)
	if err := r.write(append(first, '\n')); err != nil {
		r.Close()
		return nil, err
	}
	select {
	case err := <-ready:
		if err != nil {
			r.Close()
			return nil, err
		}
	case <-ctx.Done():
		r.Close()
		return nil, ctx.Err()
	}
	return r, nil
}

type message struct {
	Type  string `json:"type"`
	Fatal string `json:"fatal"`
	Execution
	// A task_answer's code ("" when accepted) and message.
	Code    string `json:"code"`
	Message string `json:"message"`
}

type taskAnswer struct{ code, message string }

// read dispatches the process's output lines until it exits.
func (r *Runner) read(stdout io.Reader, ready chan<- error) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20) // an execution output may be large
	started := false
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not ours (a library printing to stdout)
		}
		switch m.Type {
		case "ready":
			started = true
			ready <- nil
		case "fatal":
			if !started {
				started = true
				ready <- fmt.Errorf("sfnrunner: %s", m.Fatal)
			}
		case "result":
			deliver(&r.mu, r.pending, m.ID, m.Execution)
		case "task_answer":
			deliver(&r.mu, r.answers, m.ID, taskAnswer{m.Code, m.Message})
		}
	}
	err := r.cmd.Wait()
	if err == nil {
		err = errors.New("exited")
	}
	err = fmt.Errorf("sfnrunner: node process: %w", err)
	if !started {
		ready <- err
	}
	r.mu.Lock()
	r.err = err
	r.pending = nil
	r.answers = nil
	r.mu.Unlock()
	close(r.done)
}

// deliver hands v to the caller waiting under id, if any. Only read calls
// it, the one goroutine that also sets the maps to nil.
func deliver[T any](mu *sync.Mutex, waiting map[string]chan T, id string, v T) {
	mu.Lock()
	ch := waiting[id]
	delete(waiting, id)
	mu.Unlock()
	if ch != nil {
		ch <- v
	}
}

func (r *Runner) write(line []byte) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	_, err := r.stdin.Write(line)
	return err
}

// Run executes machine with input under the execution name (the context
// object's $$.Execution.Name; empty: an id is used) and waits for the
// end. Cancelling ctx aborts the execution (status ABORTED is not awaited:
// Run returns ctx.Err()).
func (r *Runner) Run(ctx context.Context, machine, name string, input []byte) (Execution, error) {
	return r.RunWith(ctx, Overrides{}, machine, name, input)
}

// RunWith is Run with overrides for this run only (its own task bridge,
// shorter timeouts…), so that one runner serves isolated environments.
func (r *Runner) RunWith(ctx context.Context, o Overrides, machine, name string, input []byte) (Execution, error) {
	if len(input) == 0 {
		input = []byte("{}")
	}
	if !json.Valid(input) {
		return Execution{}, errors.New("sfnrunner: input is not JSON")
	}
	ch := make(chan Execution, 1)
	r.mu.Lock()
	if r.pending == nil {
		err := r.err
		r.mu.Unlock()
		return Execution{}, err
	}
	r.nextID++
	id := strconv.FormatUint(r.nextID, 10)
	r.pending[id] = ch
	r.mu.Unlock()

	req := struct {
		Type      string          `json:"type"`
		ID        string          `json:"id"`
		Machine   string          `json:"machine"`
		Name      string          `json:"name,omitempty"`
		Input     json.RawMessage `json:"input"`
		Overrides Overrides       `json:"overrides"`
	}{"run", id, machine, name, input, o}
	line, err := json.Marshal(req)
	if err != nil {
		r.forget(id)
		return Execution{}, err
	}
	if err := r.write(append(line, '\n')); err != nil {
		r.forget(id)
		return Execution{}, fmt.Errorf("sfnrunner: %w", err)
	}
	select {
	case e := <-ch:
		return e, nil
	case <-r.done:
		return Execution{}, r.err
	case <-ctx.Done():
		r.forget(id)
		stop, _ := json.Marshal(map[string]string{"type": "stop", "id": id})
		_ = r.write(append(stop, '\n'))
		return Execution{}, ctx.Err()
	}
}

// TaskError is a callback the interpreter refused; Code is the Step
// Functions API error (InvalidToken, TaskDoesNotExist, TaskTimedOut,
// InvalidOutput). Compare with errors.Is against ErrInvalidToken….
type TaskError struct {
	Code    string
	Message string
}

func (e *TaskError) Error() string { return "sfnrunner: " + e.Code + ": " + e.Message }

// Is matches any TaskError of the same Code.
func (e *TaskError) Is(target error) bool {
	t, ok := target.(*TaskError)
	return ok && t.Code == e.Code
}

// The callback errors, as Step Functions names them.
var (
	// ErrInvalidToken: not the form of a task token.
	ErrInvalidToken = &TaskError{Code: "InvalidToken", Message: "Invalid Token"}
	// ErrTaskDoesNotExist: no task was ever given this token.
	ErrTaskDoesNotExist = &TaskError{Code: "TaskDoesNotExist", Message: "Task Does Not Exist"}
	// ErrTaskTimedOut: the token's task is closed: already answered, timed
	// out, or its execution ended (a second SendTaskSuccess gets this).
	ErrTaskTimedOut = &TaskError{Code: "TaskTimedOut", Message: "Task Timed Out: 'Provided task does not exist anymore'"}
	// ErrInvalidOutput: SendTaskSuccess with an output that is not JSON.
	ErrInvalidOutput = &TaskError{Code: "InvalidOutput", Message: "Invalid Output: not JSON"}
)

// SendTaskSuccess completes the callback Task holding token: output (any
// JSON value) becomes its result.
func (r *Runner) SendTaskSuccess(ctx context.Context, token string, output json.RawMessage) error {
	if !json.Valid(output) {
		return ErrInvalidOutput
	}
	return r.callback(ctx, map[string]any{"type": "task_success", "token": token, "output": output})
}

// SendTaskFailure fails the callback Task holding token with errName and
// cause: its Retry and Catch match errName.
func (r *Runner) SendTaskFailure(ctx context.Context, token, errName, cause string) error {
	return r.callback(ctx, map[string]any{"type": "task_failure", "token": token, "error": errName, "cause": cause})
}

// SendTaskHeartbeat restarts the HeartbeatSeconds clock of the callback
// Task holding token (its TimeoutSeconds still counts from its start).
func (r *Runner) SendTaskHeartbeat(ctx context.Context, token string) error {
	return r.callback(ctx, map[string]any{"type": "task_heartbeat", "token": token})
}

func (r *Runner) callback(ctx context.Context, req map[string]any) error {
	ch := make(chan taskAnswer, 1)
	r.mu.Lock()
	if r.answers == nil {
		err := r.err
		r.mu.Unlock()
		return err
	}
	r.nextID++
	id := "cb-" + strconv.FormatUint(r.nextID, 10)
	r.answers[id] = ch
	r.mu.Unlock()
	req["id"] = id
	line, err := json.Marshal(req)
	if err == nil {
		err = r.write(append(line, '\n'))
	}
	if err != nil {
		r.forgetAnswer(id)
		return fmt.Errorf("sfnrunner: %w", err)
	}
	select {
	case a := <-ch:
		if a.code == "" {
			return nil
		}
		return &TaskError{Code: a.code, Message: a.message}
	case <-r.done:
		return r.err
	case <-ctx.Done():
		r.forgetAnswer(id)
		return ctx.Err()
	}
}

func (r *Runner) forgetAnswer(id string) {
	r.mu.Lock()
	if r.answers != nil {
		delete(r.answers, id)
	}
	r.mu.Unlock()
}

// Bound is a Runner with fixed overrides; it satisfies sfnfake.Runner and
// sfnfake.Callbacks, so an sfnfake endpoint can run on a test's own task
// bridge.
type Bound struct {
	Runner    *Runner
	Overrides Overrides
}

// Run runs with b's overrides.
func (b Bound) Run(ctx context.Context, machine, name string, input []byte) (Execution, error) {
	return b.Runner.RunWith(ctx, b.Overrides, machine, name, input)
}

// SendTaskSuccess is Runner.SendTaskSuccess (tokens are the runner's).
func (b Bound) SendTaskSuccess(ctx context.Context, token string, output json.RawMessage) error {
	return b.Runner.SendTaskSuccess(ctx, token, output)
}

// SendTaskFailure is Runner.SendTaskFailure.
func (b Bound) SendTaskFailure(ctx context.Context, token, errName, cause string) error {
	return b.Runner.SendTaskFailure(ctx, token, errName, cause)
}

// SendTaskHeartbeat is Runner.SendTaskHeartbeat.
func (b Bound) SendTaskHeartbeat(ctx context.Context, token string) error {
	return b.Runner.SendTaskHeartbeat(ctx, token)
}

func (r *Runner) forget(id string) {
	r.mu.Lock()
	if r.pending != nil {
		delete(r.pending, id)
	}
	r.mu.Unlock()
}

// Close ends the interpreter; executions still running are abandoned.
func (r *Runner) Close() error {
	r.writeMu.Lock()
	err := r.stdin.Close()
	r.writeMu.Unlock()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	os.Remove(r.script)
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}

// Installed reports whether the npm packages the runner needs are in the
// repository's node_modules (npm ci at its root), so that tests can skip
// when they are not.
func Installed() error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "aws-local-stepfunctions")); err != nil {
		return errors.New("npm packages not installed: run npm ci (make deps) at the repository root")
	}
	return nil
}

// NodeDefaults fills an empty node path or node_modules directory with the
// repository's own (package.json installs Node 22 into node_modules):
// <repo>/node_modules/.bin/node and <repo>/node_modules.
func NodeDefaults(node, modules string) (string, string, error) {
	if node != "" && modules != "" {
		return node, modules, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	if node == "" {
		node = filepath.Join(root, "node_modules", ".bin", "node")
	}
	if modules == "" {
		modules = filepath.Join(root, "node_modules")
	}
	return node, modules, nil
}

// RepoRoot finds the project's root: the closest directory, from the
// working directory up, whose go.mod declares module sshguard-unban; failing
// that, the root of the source tree this package was compiled from.
func RepoRoot() (string, error) {
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module sshguard-unban"))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRoot(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..", "..")
		if isRoot(dir) {
			return filepath.Clean(dir), nil
		}
	}
	return "", errors.New("sfnrunner: cannot find the repository root (go.mod of module sshguard-unban); set Config.NodePath and Config.ModulesDir")
}
