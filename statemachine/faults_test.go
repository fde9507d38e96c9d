package statemachine_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/workflow"
)

// Fault injection, for every Task of the unban machine: a transient error
// (must recover through Retry), a permanent error and a timeout (the Task's
// TimeoutSeconds passes on every attempt; the late calls still run, as a
// Lambda keeps running after Step Functions gave up on it). Whatever fails,
// the asker gets exactly one message and a failed execution exactly one SRE
// alert — except where the failing task is the one that posts them.

// target selects the calls of one state: its function, and the input that
// tells it from the other states served by the same function.
type target struct {
	state, function string
	match           func(in []byte) bool
	// path is where a permanent failure or timeout leads: "main" (reply
	// failure, alert, execution fails), "refresh" (reply with the unban
	// result, alert, execution succeeds), or the reply states themselves.
	path string
}

func field(key string, want any) func([]byte) bool {
	return func(in []byte) bool {
		var m map[string]any
		if json.Unmarshal(in, &m) != nil {
			return false
		}
		return fmt.Sprint(m[key]) == fmt.Sprint(want)
	}
}

var targets = []target{
	{"ReadTheMessage", "parse", nil, "main"},
	{"LookUpBanLists", "lookup", nil, "main"},
	{"RemoveBlockOnHosts", "unban", nil, "main"},
	{"CheckUnbanCommand", "wait-for-command", field("parse_unban", true), "main"},
	{"RequestFreshBanLists", "refresh-list", field("action", "request"), "refresh"},
	{"CheckReportCommand", "wait-for-command", field("parse_unban", false), "refresh"},
	{"StoreBanLists", "refresh-list", field("action", "store"), "refresh"},
	{"ReplyToUser", "notify", field("kind", workflow.NotifyReply), "reply"},
	// Runs after the reply when the list refresh found new blocks: the
	// tests block a new address on web-1 after the initial refresh.
	{"AnnounceNewBans", "notify", field("kind", workflow.NotifyBans), "announce"},
	// These two only run after a failure: the tests break LookUpBanLists too.
	{"ReplyFailure", "notify", field("kind", workflow.NotifyFailure), "failure-reply"},
	{"AlertSREs", "notify", field("kind", workflow.NotifyAlert), "alert"},
}

const (
	taskTimeout = 0.3 // seconds, the faulted state's TimeoutSeconds in these tests
	lateBy      = 500 * time.Millisecond
)

type outcome struct {
	status          string
	replies, alerts int
	replyHas        string // a substring of the reply
	errorName       string // the execution's error when it fails
}

func expected(tg target, kind string) outcome {
	ok := outcome{status: sfnrunner.StatusSucceeded, replies: 1, alerts: 0, replyHas: "Unblock result"}
	failed := outcome{status: sfnrunner.StatusFailed, replies: 1, alerts: 1, replyHas: "Could not finish the unblock"}
	errName := map[string]string{taskbridge.Permanent: "errorString", taskbridge.Delay: "States.Timeout"}[kind]
	switch tg.path {
	case "failure-reply", "alert":
		// LookUpBanLists fails permanently in these tests.
		failed.errorName = "errorString"
		if kind == taskbridge.Transient {
			return failed
		}
		if tg.path == "failure-reply" && kind == taskbridge.Permanent {
			// Nothing can reach the asker when the failure reply itself
			// cannot be posted; the SREs are still told.
			failed.replies, failed.replyHas = 0, ""
		}
		if tg.path == "alert" && kind == taskbridge.Permanent {
			failed.alerts = 0 // the alert is what failed
		}
		// A timed-out notify still posts, late, once.
		return failed
	}
	if kind == taskbridge.Transient {
		return ok
	}
	switch tg.path {
	case "main":
		failed.errorName = errName
		return failed
	case "refresh":
		// The unban is done: the asker gets its result, with a note, and
		// the SREs an alert; the execution succeeds.
		return outcome{status: sfnrunner.StatusSucceeded, replies: 1, alerts: 1, replyHas: "Refreshing the block lists failed"}
	case "announce":
		// The asker already has the unban result; the SREs hear that the
		// announcement failed, and the execution fails (the alarm fires).
		return outcome{status: sfnrunner.StatusFailed, replies: 1, alerts: 1, replyHas: "Unblock result", errorName: errName}
	case "reply":
		failed.errorName = errName
		if kind == taskbridge.Delay {
			// The late first attempt posts the real reply; ReplyFailure then
			// finds it posted and stays silent.
			failed.replyHas = "Unblock result"
		}
		return failed
	}
	panic(tg.path)
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		for _, kind := range []string{taskbridge.Transient, taskbridge.Permanent, taskbridge.Delay} {
			name := tg.state + "/" + map[string]string{taskbridge.Transient: "transient", taskbridge.Permanent: "permanent", taskbridge.Delay: "timeout"}[kind]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, threeHosts())
				e.refresh("initial-refresh")
				if tg.path == "announce" {
					if err := e.hosts["i-0aaaaaaaaaaaaaaa1"].Block("198.51.100.99"); err != nil {
						t.Fatal(err)
					}
				}
				want := expected(tg, kind)
				if tg.path == "failure-reply" || tg.path == "alert" {
					e.bridge.Inject("lookup", taskbridge.Fault{Kind: taskbridge.Permanent})
				}
				f := taskbridge.Fault{Kind: kind, Match: tg.match}
				switch kind {
				case taskbridge.Transient:
					f.Times = 2 // two retries, then success
				case taskbridge.Delay:
					f.Delay = lateBy
					e.over.TaskTimeoutSeconds = map[string]float64{tg.state: taskTimeout}
				}
				e.bridge.Inject(tg.function, f)

				x := e.unban("exec-1", "please unban 192.0.2.12")
				if x.Status != want.status {
					t.Fatalf("status %s (%s: %s), want %s\nstates: %v", x.Status, x.Error, x.Cause, want.status, x.States)
				}
				if want.errorName != "" && x.Error != want.errorName {
					t.Errorf("error %s, want %s", x.Error, want.errorName)
				}
				checkMessages(t, e, want.replies, want.alerts)
				if want.replyHas != "" {
					if r := bodies(e.replies()); !strings.Contains(r, want.replyHas) {
						t.Errorf("reply lacks %q:\n%s", want.replyHas, r)
					}
				}
				if tg.path == "announce" && kind == taskbridge.Transient {
					if n := e.notices(); len(n) != 1 || !strings.Contains(n[0].Body, "198.51.100.99") {
						t.Errorf("ban notices after the unban: %s", bodies(n))
					}
				}
				if kind == taskbridge.Transient && x.Retries < 2 {
					t.Errorf("%d retries, want the 2 injected errors retried", x.Retries)
				}
				if kind == taskbridge.Delay && tg.path != "failure-reply" && tg.path != "alert" {
					// Every attempt timed out: 1 + the States.Timeout
					// retrier's MaxAttempts (2).
					if n := len(e.bridge.Calls(tg.function)); n == 0 {
						t.Error("no call")
					}
				}
			})
		}
	}
}

// TestTimeoutOnceRecovers: an idempotent task that times out once is
// retried; its late first attempt runs too and must not cause a second
// message (notify's per-execution mark).
func TestTimeoutOnceRecovers(t *testing.T) {
	t.Parallel()
	for _, tg := range []target{targets[1], targets[2], targets[6], targets[7]} {
		t.Run(tg.state, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, threeHosts())
			e.refresh("initial-refresh")
			e.over.TaskTimeoutSeconds = map[string]float64{tg.state: taskTimeout}
			e.bridge.Inject(tg.function, taskbridge.Fault{Kind: taskbridge.Delay, Delay: lateBy, Times: 1, Match: tg.match})
			x := e.unban("exec-1", "please unban 192.0.2.12")
			if x.Status != sfnrunner.StatusSucceeded || x.Retries != 1 {
				t.Fatalf("status %s (%s: %s), %d retries\nstates: %v", x.Status, x.Error, x.Cause, x.Retries, x.States)
			}
			checkMessages(t, e, 1, 0)
			if r := bodies(e.replies()); !strings.Contains(r, "unblocked 192.0.2.12") {
				t.Errorf("reply:\n%s", r)
			}
		})
	}
}

// TestLambdaTimeoutRetried: the function's own timeout (the Lambda service
// answers Sandbox.Timedout) is retried like the Task's on tasks safe to
// repeat.
func TestLambdaTimeoutRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts(), func(b *taskbridge.Bridge) { b.FunctionTimeout = 200 * time.Millisecond })
	e.refresh("initial-refresh")
	e.bridge.Inject("lookup", taskbridge.Fault{Kind: taskbridge.Delay, Delay: time.Second, Times: 1})
	x := e.unban("exec-1", "please unban 192.0.2.12")
	if x.Status != sfnrunner.StatusSucceeded || x.Retries != 1 {
		t.Fatalf("status %s (%s: %s), %d retries", x.Status, x.Error, x.Cause, x.Retries)
	}
	if c := e.bridge.Calls("lookup"); len(c) != 2 || c[0].Error != "Sandbox.Timedout" {
		t.Errorf("lookup calls %+v", c)
	}
	checkMessages(t, e, 1, 0)
}

// TestRealDependencyFailures injects the failures at the fakes instead of
// the bridge, so the handlers' own error classification is what the Retry
// sees: throttled SSM and a Chatwork 5xx are transient and recover; a
// Chatwork 403 (a revoked token) is not.
func TestRealDependencyFailures(t *testing.T) {
	t.Parallel()
	recovered := outcome{status: sfnrunner.StatusSucceeded, replies: 1, replyHas: "unblocked 192.0.2.12"}
	cases := []struct {
		name   string
		inject func(e *env)
		want   outcome
		// stateRetry: the failure outlasts the client's own retries and
		// must come back through the state machine's Retry.
		stateRetry bool
	}{
		{"ssm throttled", func(e *env) {
			e.ssm.InjectError("SendCommand", "ThrottlingException", 400, 2)
		}, recovered, true},
		{"ssm internal error while polling", func(e *env) {
			e.ssm.InjectError("ListCommandInvocations", "InternalServerError", 500, 2)
		}, recovered, true},
		{"chatwork 503 once: the client retries", func(e *env) {
			e.chat.FailNext(503, 1)
		}, recovered, false},
		{"chatwork 503 beyond the client's attempts", func(e *env) {
			e.chat.FailNext(503, 5)
		}, recovered, true},
		{"chatwork 429", func(e *env) {
			e.chat.FailNext(429, 1)
		}, recovered, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, threeHosts())
			e.refresh("initial-refresh")
			c.inject(e)
			x := e.unban("exec-1", "please unban 192.0.2.12")
			if x.Status != c.want.status {
				t.Fatalf("status %s (%s: %s), want %s\nstates: %v", x.Status, x.Error, x.Cause, c.want.status, x.States)
			}
			if c.stateRetry && x.Retries == 0 {
				t.Error("no retry: the failure did not reach the state machine as a TransientError")
			}
			checkMessages(t, e, c.want.replies, c.want.alerts)
			if r := bodies(e.replies()); !strings.Contains(r, c.want.replyHas) {
				t.Errorf("reply lacks %q:\n%s", c.want.replyHas, r)
			}
		})
	}
}
