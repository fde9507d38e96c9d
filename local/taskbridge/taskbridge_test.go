package taskbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/taskerr"
)

type in struct {
	Mode string `json:"mode"`
}

type out struct {
	Got string `json:"got"`
}

type customError struct{}

func (customError) Error() string { return "custom" }

func handler(ctx context.Context, i in) (out, error) {
	switch i.Mode {
	case "transient":
		return out{}, taskerr.Transient(errors.New("try later"))
	case "wrapped":
		// fmt.Errorf hides the type: Lambda reports "wrapError", and the
		// ASL does not retry it. The bridge must show the same.
		return out{}, fmt.Errorf("ctx: %w", taskerr.Transient(errors.New("try later")))
	case "custom":
		return out{}, customError{}
	case "invoke-error":
		return out{}, messages.InvokeResponse_Error{Type: "Custom.Type", Message: "chosen type"}
	case "panic":
		panic("boom")
	case "deadline":
		<-ctx.Done()
		return out{}, ctx.Err()
	}
	return out{Got: i.Mode}, nil
}

type response struct {
	status   int
	fnError  string
	body     []byte
	errType  string
	errorMsg string
}

func invoke(t *testing.T, url, function, payload string) response {
	t.Helper()
	res, err := http.Post(url+"/2015-03-31/functions/"+function+"/invocations", "application/json", bytes.NewBufferString(payload))
	if err != nil {
		t.Error(err) // not Fatal: also called from goroutines
		return response{}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, fnError: res.Header.Get("X-Amz-Function-Error"), body: body}
	if r.fnError != "" {
		var e struct{ ErrorType, ErrorMessage string }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("error body %s: %v", body, err)
		}
		r.errType, r.errorMsg = e.ErrorType, e.ErrorMessage
	}
	return r
}

func TestErrorsLikeTheLambdaService(t *testing.T) {
	b := taskbridge.New(map[string]lambda.Handler{"fn": lambda.NewHandler(handler)})
	b.FunctionTimeout = 50 * time.Millisecond
	url := serve(t, b)

	if r := invoke(t, url, "fn", `{"mode":"ok"}`); r.status != 200 || r.fnError != "" || string(r.body) != `{"got":"ok"}` {
		t.Errorf("ok: %+v %s", r, r.body)
	}
	// Qualified names and ARNs address the same function.
	if r := invoke(t, url, "arn:aws:lambda:local:000000000000:function:fn:live", `{"mode":"ok"}`); r.status != 200 || r.fnError != "" {
		t.Errorf("arn: %+v", r)
	}
	for mode, want := range map[string]string{
		"transient":    "TransientError",
		"wrapped":      "wrapError",
		"custom":       "customError",
		"invoke-error": "Custom.Type",
		"panic":        "string",
		// Past FunctionTimeout the Lambda service answers, whatever the
		// handler would have returned.
		"deadline": "Sandbox.Timedout",
	} {
		r := invoke(t, url, "fn", fmt.Sprintf(`{"mode":%q}`, mode))
		if r.status != 200 || r.fnError != "Unhandled" || r.errType != want {
			t.Errorf("%s: %+v, want errorType %s", mode, r, want)
		}
	}
	if r := invoke(t, url, "fn", `not json`); r.fnError == "" {
		t.Errorf("bad payload accepted: %+v", r)
	}
	if r := invoke(t, url, "nope", `{}`); r.status != 404 {
		t.Errorf("unknown function: %+v", r)
	}
}

func TestFaults(t *testing.T) {
	b := taskbridge.New(map[string]lambda.Handler{"fn": lambda.NewHandler(handler)})
	url := serve(t, b)

	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Transient, Times: 2})
	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Permanent, Times: 1})
	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Service, Status: 429, Times: 1})
	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Delay, Delay: 100 * time.Millisecond, Times: 1})
	var got []string
	for range 6 {
		r := invoke(t, url, "fn", `{"mode":"ok"}`)
		switch {
		case r.fnError != "":
			got = append(got, r.errType)
		case r.status != 200:
			got = append(got, fmt.Sprint(r.status))
		default:
			got = append(got, string(r.body))
		}
	}
	want := []string{"TransientError", "TransientError", "errorString", "429", `{"got":"ok"}`, `{"got":"ok"}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	calls := b.Calls("fn")
	if len(calls) != 6 || calls[4].Fault != taskbridge.Delay || calls[5].Fault != "" {
		t.Errorf("calls %+v", calls)
	}

	// Times <= 0: every call until cleared.
	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Permanent, ErrorType: "Chosen", Message: "m"})
	for range 3 {
		if r := invoke(t, url, "fn", `{}`); r.errType != "Chosen" || r.errorMsg != "m" {
			t.Fatalf("%+v", r)
		}
	}
	b.ClearFaults()
	if r := invoke(t, url, "fn", `{"mode":"x"}`); r.fnError != "" {
		t.Errorf("fault not cleared: %+v", r)
	}
}

func TestFaultMatch(t *testing.T) {
	b := taskbridge.New(map[string]lambda.Handler{"fn": lambda.NewHandler(handler)})
	url := serve(t, b)
	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Permanent, Times: 1, Match: func(in []byte) bool {
		return bytes.Contains(in, []byte(`"b"`))
	}})
	if r := invoke(t, url, "fn", `{"mode":"a"}`); r.fnError != "" {
		t.Errorf("unmatched call failed: %+v", r)
	}
	if r := invoke(t, url, "fn", `{"mode":"b"}`); r.errType != "errorString" {
		t.Errorf("matched call: %+v", r)
	}
	if r := invoke(t, url, "fn", `{"mode":"b"}`); r.fnError != "" {
		t.Errorf("fault used up, call failed: %+v", r)
	}
}

// TestConcurrentCalls: handlers from lambda.NewHandler reuse their output
// buffer, so concurrent calls of one function must not see each other's
// results.
func TestConcurrentCalls(t *testing.T) {
	b := taskbridge.New(map[string]lambda.Handler{"fn": lambda.NewHandler(handler)})
	url := serve(t, b)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mode := fmt.Sprintf("m%03d-%s", i, strings.Repeat("x", i*50))
			r := invoke(t, url, "fn", fmt.Sprintf(`{"mode":%q}`, mode))
			var o out
			if err := json.Unmarshal(r.body, &o); err != nil || o.Got != mode {
				t.Errorf("call %d got %.40s (%v)", i, r.body, err)
			}
		}()
	}
	wg.Wait()
}

func TestFunctionTimeoutCoversDelay(t *testing.T) {
	b := taskbridge.New(map[string]lambda.Handler{"fn": lambda.NewHandler(handler)})
	b.FunctionTimeout = 50 * time.Millisecond
	url := serve(t, b)
	b.Inject("fn", taskbridge.Fault{Kind: taskbridge.Delay, Delay: time.Second, Times: 1})
	start := time.Now()
	if r := invoke(t, url, "fn", `{"mode":"ok"}`); r.errType != "Sandbox.Timedout" || time.Since(start) > 500*time.Millisecond {
		t.Errorf("%+v after %v", r, time.Since(start))
	}
	if c := b.Calls("fn"); len(c) != 1 || c[0].Error != "Sandbox.Timedout" {
		t.Errorf("calls %+v", c)
	}
}

// serve serves the bridge with httptest for the test's lifetime; at the end
// it waits for calls still running past their timeout.
func serve(t *testing.T, b *taskbridge.Bridge) string {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(func() { srv.Close(); b.Idle() })
	return srv.URL
}

// Concurrent calls of a function with a factory run side by side on new
// instances, as Lambda scales out (a notify waiting for a merged reply must
// not hold up the others); a function with one instance serves them in turn.
func TestInstancesScaleOut(t *testing.T) {
	var running, peak, made atomic.Int32
	slow := func(ctx context.Context, i in) (out, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(50 * time.Millisecond)
		running.Add(-1)
		return out{Got: i.Mode}, nil
	}
	for _, tc := range []struct {
		name    string
		factory bool
		want    int32
	}{{"factory", true, 4}, {"single instance", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			running.Store(0)
			peak.Store(0)
			made.Store(0)
			b := taskbridge.New(nil)
			if tc.factory {
				b.HandleFactory("fn", func() (lambda.Handler, error) { made.Add(1); return lambda.NewHandler(slow), nil })
			} else {
				b.Handle("fn", lambda.NewHandler(slow))
			}
			url := serve(t, b)
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					if r := invoke(t, url, "fn", `{"mode":"x"}`); r.fnError != "" || string(r.body) != `{"got":"x"}` {
						t.Errorf("call: %+v", r)
					}
				})
			}
			wg.Wait()
			if peak.Load() != tc.want {
				t.Errorf("%d calls ran at once, want %d", peak.Load(), tc.want)
			}
			if tc.factory && made.Load() != 4 {
				t.Errorf("%d instances made, want 4", made.Load())
			}
		})
	}
}
