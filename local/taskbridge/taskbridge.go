// Package taskbridge serves Go Lambda handlers over the Lambda Invoke API
// (POST /2015-03-31/functions/NAME/invocations) on 127.0.0.1, so that the
// local state machine interpreter (local/sfnrunner) calls the real task
// handlers the way Step Functions calls the deployed functions.
//
// A handler's error is answered like the Lambda service does: HTTP 200, the
// header X-Amz-Function-Error: Unhandled and {"errorType","errorMessage"},
// where errorType is the Go type name of the error (taskerr.Name, as
// aws-lambda-go computes it). The ASL's Retry and Catch match that name.
//
// For tests, Inject makes the next calls of a function fail (a transient or
// a permanent error, a Lambda service error) or answer late.
package taskbridge

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"sshguard-unban/local/lambdapool"
	"sshguard-unban/local/latency"
	"sshguard-unban/shared/taskerr"
)

// Fault kinds.
const (
	// Transient answers with errorType "TransientError" (what a handler
	// returns through taskerr.Transient), without calling the handler.
	Transient = "transient"
	// Permanent answers with a non-retryable error type ("errorString",
	// what errors.New gives), without calling the handler.
	Permanent = "permanent"
	// Delay holds the call for Fault.Delay and then runs the handler: a slow
	// Lambda whose work still happens after the Task has timed out.
	Delay = "delay"
	// Service answers like the Lambda service failing before the handler
	// ran: HTTP 500 (Lambda.ServiceException) or, with Status 429,
	// Lambda.TooManyRequestsException.
	Service = "service"
)

// Fault is an injected misbehaviour for the next Times calls of a function.
type Fault struct {
	Kind  string
	Times int // how many calls; <= 0 means every call from now on
	// Delay is the hold for Kind Delay.
	Delay time.Duration
	// ErrorType and Message override the error of Kind Transient or
	// Permanent (e.g. ErrorType "States.Timeout" is not allowed: that one
	// only the interpreter raises).
	ErrorType, Message string
	// Status is the HTTP status of Kind Service (default 500).
	Status int
	// Match, if set, limits the fault to calls whose input it accepts: one
	// function serves several states (notify is ReplyToUser, ReplyFailure
	// and AlertSREs), the input tells them apart. Calls it rejects are
	// served normally and do not count towards Times.
	Match func(input []byte) bool
}

// Call records one invocation, for assertions.
type Call struct {
	Function string
	// Execution is the execution name the local runner sends along
	// (X-Sfnrunner-Execution); empty for other callers.
	Execution string
	Input     json.RawMessage
	Output    json.RawMessage // nil on error
	Error     string          // errorType, "" on success
	Fault     string          // the injected fault kind, if any
	At        time.Time       // when the call ended
}

// Bridge is the HTTP server. Its methods are safe for concurrent use.
type Bridge struct {
	// FunctionTimeout is the Lambda function's timeout (0: none). Past it
	// the call answers errorType "Sandbox.Timedout", as the Lambda service
	// does, and the handler's context is cancelled (AWS stops the
	// environment). The caller going away cancels nothing: a Lambda keeps
	// running after the Task state has timed out.
	FunctionTimeout time.Duration
	// Latency, if set, applies a production latency model (local/latency)
	// to every call: the Invoke round trip, the Task state's own overhead,
	// and a cold start for each new instance of a function.
	Latency *latency.Profile
	Sampler *latency.Sampler // default: seeded with 2

	samplerOnce sync.Once
	mu          sync.Mutex
	handlers    map[string]*lambdapool.Pool
	faults      map[string][]*Fault
	calls       []Call
	inflight    sync.WaitGroup
}

// invoke runs the handler on one instance of the function (lambdapool),
// after the modelled Invoke and cold-start time.
func (b *Bridge) invoke(ctx context.Context, f *lambdapool.Pool, payload []byte) ([]byte, error) {
	in, err := f.Acquire()
	if err != nil {
		return nil, err
	}
	defer f.Release(in)
	if p := b.Latency; p != nil {
		s := b.sampler()
		d := s.Sample(p.LambdaInvoke) + s.Sample(p.SFNTaskOverhead)
		if !in.Warm {
			d += s.Sample(p.LambdaColdStart)
		}
		time.Sleep(d)
	}
	return invoke(ctx, in, payload)
}

func (b *Bridge) sampler() *latency.Sampler {
	b.samplerOnce.Do(func() {
		if b.Sampler == nil {
			b.Sampler = latency.NewSampler(2)
		}
	})
	return b.Sampler
}

// New returns a bridge serving handlers by function name. It is an
// http.Handler: serve it with httptest.NewServer, and call Idle after
// closing the server (a timed-out call may still be running).
func New(handlers map[string]lambda.Handler) *Bridge {
	b := &Bridge{handlers: map[string]*lambdapool.Pool{}, faults: map[string][]*Fault{}}
	for name, h := range handlers {
		b.handlers[name] = lambdapool.Single(h)
	}
	return b
}

// Handle adds or replaces a function served by one instance: its calls
// queue for it.
func (b *Bridge) Handle(name string, h lambda.Handler) {
	b.mu.Lock()
	b.handlers[name] = lambdapool.Single(h)
	b.mu.Unlock()
}

// HandleFactory adds or replaces a function that scales out like Lambda:
// each call that finds no idle instance gets a new one from factory (a cold
// start under a latency model).
func (b *Bridge) HandleFactory(name string, factory func() (lambda.Handler, error)) {
	b.mu.Lock()
	b.handlers[name] = lambdapool.New(factory)
	b.mu.Unlock()
}

// Idle waits until no call is in flight: a call held by a Delay fault may
// still post a message after its execution has ended, so tests count side
// effects only once the bridge is idle.
func (b *Bridge) Idle() { b.inflight.Wait() }

// Inject queues a fault for the next calls of function; faults queued for
// the same function apply one after the other.
func (b *Bridge) Inject(function string, f Fault) {
	b.mu.Lock()
	ff := f
	b.faults[function] = append(b.faults[function], &ff)
	b.mu.Unlock()
}

// ClearFaults removes every queued fault.
func (b *Bridge) ClearFaults() {
	b.mu.Lock()
	b.faults = map[string][]*Fault{}
	b.mu.Unlock()
}

// Calls returns the invocations so far (all functions when function is "").
func (b *Bridge) Calls(function string) []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Call
	for _, c := range b.calls {
		if function == "" || c.Function == function {
			out = append(out, c)
		}
	}
	return out
}

// takeFault returns the fault applying to this call of function, if any:
// the first queued one whose Match accepts the input.
func (b *Bridge) takeFault(function string, input []byte) *Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.faults[function]
	for i, f := range q {
		if f.Match != nil && !f.Match(input) {
			continue
		}
		taken := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				b.faults[function] = append(q[:i:i], q[i+1:]...)
			}
		}
		return &taken
	}
	return nil
}

const invokePrefix = "/2015-03-31/functions/"

// ServeHTTP implements the Lambda Invoke API: RequestResponse, and Event
// (asynchronous: answered 202 at once, the function runs after).
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.inflight.Add(1)
	defer b.inflight.Done()
	rest, ok := strings.CutPrefix(r.URL.Path, invokePrefix)
	function, ok2 := strings.CutSuffix(rest, "/invocations")
	if r.Method != http.MethodPost || !ok || !ok2 || function == "" {
		http.Error(w, `{"Type":"User","message":"not an Invoke call"}`, http.StatusNotFound)
		return
	}
	// The Invoke API accepts a name, an ARN or name:qualifier.
	if i := strings.LastIndex(function, ":function:"); i >= 0 {
		function = function[i+len(":function:"):]
	}
	function, _, _ = strings.Cut(function, ":")

	b.mu.Lock()
	h := b.handlers[function]
	b.mu.Unlock()
	if h == nil {
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"Type":"User","message":"Function not found: %s"}`, function)
		return
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	call := Call{Function: function, Execution: r.Header.Get("X-Sfnrunner-Execution"), Input: json.RawMessage(payload)}

	// Detached from the request: the caller (the Task) may give up, the
	// function runs on, as in AWS.
	ctx := context.WithoutCancel(r.Context())
	if b.FunctionTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.FunctionTimeout)
		defer cancel()
	}
	timedOut := func() {
		b.record(call, nil, "Sandbox.Timedout")
		writeFunctionError(w, "Sandbox.Timedout", fmt.Sprintf("Task timed out after %.2f seconds", b.FunctionTimeout.Seconds()))
	}

	fault := b.takeFault(function, payload)
	if r.Header.Get("X-Amz-Invocation-Type") == "Event" {
		b.event(ctx, w, h, call, fault)
		return
	}
	if fault != nil {
		call.Fault = fault.Kind
		switch fault.Kind {
		case Transient, Permanent:
			typ, msg := fault.ErrorType, fault.Message
			if typ == "" {
				typ = "TransientError"
				if fault.Kind == Permanent {
					typ = "errorString"
				}
			}
			if msg == "" {
				msg = "injected " + fault.Kind + " error"
			}
			b.record(call, nil, typ)
			writeFunctionError(w, typ, msg)
			return
		case Service:
			status := fault.Status
			if status == 0 {
				status = http.StatusInternalServerError
			}
			b.record(call, nil, fmt.Sprintf("HTTP %d", status))
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"Type":"Service","message":"injected service error %d"}`, status)
			return
		case Delay:
			// The slow part counts towards the function's timeout.
			t := time.NewTimer(fault.Delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				timedOut()
				return
			}
		}
	}

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	b.inflight.Add(1)
	go func() {
		defer b.inflight.Done()
		out, err := b.invoke(ctx, h, payload)
		done <- result{out, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		timedOut()
		return
	}
	out, err := res.out, res.err
	if err != nil {
		typ, msg := errorInfo(err)
		b.record(call, nil, typ)
		writeFunctionError(w, typ, msg)
		return
	}
	b.record(call, out, "")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	w.Write(out)
}

// event serves an asynchronous invocation as the Lambda service does: the
// event is accepted (202, no payload) unless the service itself refuses
// it (a Service fault), and the function runs afterwards; its result goes
// nowhere but the call record. A Delay fault holds the run (an event
// queued late); Transient and Permanent faults fail it.
func (b *Bridge) event(ctx context.Context, w http.ResponseWriter, h *lambdapool.Pool, call Call, fault *Fault) {
	if fault != nil {
		call.Fault = fault.Kind
		if fault.Kind == Service {
			status := cmp.Or(fault.Status, http.StatusInternalServerError)
			b.record(call, nil, fmt.Sprintf("HTTP %d", status))
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"Type":"Service","message":"injected service error %d"}`, status)
			return
		}
	}
	b.inflight.Add(1)
	go func() {
		defer b.inflight.Done()
		if fault != nil {
			switch fault.Kind {
			case Delay:
				time.Sleep(fault.Delay)
			case Transient, Permanent:
				b.record(call, nil, "injected "+fault.Kind)
				return
			}
		}
		ctx := context.WithoutCancel(ctx)
		if b.FunctionTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, b.FunctionTimeout)
			defer cancel()
		}
		out, err := b.invoke(ctx, h, call.Input)
		if err != nil {
			typ, _ := errorInfo(err)
			b.record(call, nil, typ)
			return
		}
		b.record(call, out, "")
	}()
	w.WriteHeader(http.StatusAccepted)
}

// invoke runs the handler, turning a panic into an error the way the Lambda
// runtime reports it (the function fails, the caller sees an error).
func invoke(ctx context.Context, h *lambdapool.Instance, payload []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			if pe, ok := p.(error); ok {
				err = pe
			} else {
				err = messages.InvokeResponse_Error{Type: fmt.Sprintf("%T", p), Message: fmt.Sprint(p)}
			}
		}
	}()
	return h.Invoke(ctx, payload)
}

// errorInfo gives the errorType and errorMessage the Lambda runtime reports
// for err (aws-lambda-go passes an InvokeResponse_Error through as is).
func errorInfo(err error) (string, string) {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return ive.Type, ive.Message
	}
	return taskerr.Name(err), err.Error()
}

func (b *Bridge) record(c Call, out []byte, errType string) {
	c.Output = out
	c.Error = errType
	c.At = time.Now()
	b.mu.Lock()
	b.calls = append(b.calls, c)
	b.mu.Unlock()
}

func writeFunctionError(w http.ResponseWriter, typ, msg string) {
	body, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{msg, typ})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Function-Error", "Unhandled")
	w.Write(body)
}
