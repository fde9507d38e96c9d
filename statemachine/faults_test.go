package statemachine_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/ssmfake"
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
	{"RemoveBlockOnHosts", "unban", nil, "main"},
	// The lookup decides nothing: a failure only loses its record.
	{"LookUpBanLists", "lookup", nil, "lookup"},
	{"CheckUnbanCommand", "wait-for-command", field("mode", workflow.CheckReply), "main"},
	{"ReplyToUser", "notify", field("kind", workflow.NotifyReply), "reply"},
	// After the reply; these two run when a host was silent: the tests
	// disconnect db-1 (which blocks the address too) until the reply is out.
	{"WaitForLateHosts", "wait-for-command", field("mode", workflow.CheckFinal), "late"},
	{"FollowUp", "notify", field("kind", workflow.NotifyFollowUp), "follow-up"},
	{"StoreBanLists", "refresh-list", field("action", "store_unban"), "after-reply"},
	// Runs after the reply when the hosts' reports show new blocks: the
	// tests block a new address on web-1 after the initial refresh.
	{"AnnounceNewBans", "notify", field("kind", workflow.NotifyBans), "after-reply"},
	// These two only run after a failure: the tests break RemoveBlockOnHosts too.
	{"ReplyFailure", "notify", field("kind", workflow.NotifyFailure), "failure-reply"},
	{"AlertSREs", "notify", field("kind", workflow.NotifyAlert), "alert"},
}

const (
	// taskTimeout leaves a healthy attempt room on a loaded CI machine
	// (0.3 s was too little once the browser tests ran alongside: a
	// retried lookup timed out too); lateBy is surely past it.
	taskTimeout = 1.0 // seconds, the faulted state's TimeoutSeconds in these tests
	lateBy      = 1500 * time.Millisecond
)

type outcome struct {
	status          string
	replies, alerts int
	replyHas        string // a substring of the reply
	errorName       string // the execution's error when it fails
}

func expected(tg target, kind string) outcome {
	const result = "192.0.2.12: unblocked on"
	ok := outcome{status: sfnrunner.StatusSucceeded, replies: 1, replyHas: result}
	failed := outcome{status: sfnrunner.StatusFailed, replies: 1, alerts: 1, replyHas: "Could not finish the unblock"}
	errName := map[string]string{taskbridge.Permanent: "errorString", taskbridge.Delay: "States.Timeout"}[kind]
	silentHost := tg.path == "late" || tg.path == "follow-up"
	if silentHost {
		// db-1 was silent: the reply names it and the SREs hear of it once;
		// it answers later and the follow-up says it freed the address.
		ok.replies, ok.alerts = 2, 1
	}
	switch tg.path {
	case "failure-reply", "alert":
		// RemoveBlockOnHosts fails permanently in these tests.
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
	if kind == taskbridge.Transient || tg.path == "lookup" {
		return ok
	}
	switch tg.path {
	case "main":
		failed.errorName = errName
		return failed
	case "after-reply", "late", "follow-up":
		// The asker already has the result; the SREs hear that what came
		// after failed, and the execution fails (the alarm fires).
		out := outcome{status: sfnrunner.StatusFailed, replies: 1, alerts: 1, replyHas: result, errorName: errName}
		if silentHost {
			out.alerts = 2 // the silent host, then the failure
		}
		if tg.path == "follow-up" && kind == taskbridge.Delay {
			out.replies = 2 // the late first attempt posts the follow-up, once
		}
		return out
	case "reply":
		failed.errorName = errName
		if kind == taskbridge.Delay {
			// The late first attempt posts the real reply; ReplyFailure then
			// finds it posted and stays silent.
			failed.replyHas = result
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
				if tg.state == "AnnounceNewBans" {
					if err := e.hosts["i-0aaaaaaaaaaaaaaa1"].Block("198.51.100.99"); err != nil {
						t.Fatal(err)
					}
				}
				if tg.path == "late" || tg.path == "follow-up" {
					e.silentUntilReplied("i-0aaaaaaaaaaaaaaa3", "192.0.2.12")
				}
				want := expected(tg, kind)
				if tg.path == "failure-reply" || tg.path == "alert" {
					e.bridge.Inject("unban", taskbridge.Fault{Kind: taskbridge.Permanent})
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
				if tg.state == "AnnounceNewBans" && kind == taskbridge.Transient {
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
	for _, tg := range targets {
		switch tg.state {
		case "RemoveBlockOnHosts", "LookUpBanLists", "CheckUnbanCommand", "ReplyToUser", "StoreBanLists":
		default:
			continue
		}
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
			if r := bodies(e.replies()); !strings.Contains(r, "192.0.2.12: unblocked on web-1 and web-2.") {
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
	recovered := outcome{status: sfnrunner.StatusSucceeded, replies: 1, replyHas: "192.0.2.12: unblocked on web-1 and web-2."}
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
			// From the moment the progress message is out: the answer's
			// edit and then its fallback post each use up the client's
			// 4 attempts.
			go func() {
				for len(e.chat.RoomMessages(askerRoom)) == 0 {
					time.Sleep(time.Millisecond)
				}
				e.chat.FailNext(503, 8)
			}()
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

// silentUntilReplied blocks addr on the host and keeps its SSM agent
// disconnected until the first reply is out: a host that was down when the
// employee asked and comes back moments later.
func (e *env) silentUntilReplied(id, addr string) {
	e.t.Helper()
	if err := e.hosts[id].Block(addr); err != nil {
		e.t.Fatal(err)
	}
	e.ssm.SetFault(id, ssmfake.Fault{Disconnected: true})
	done := make(chan struct{})
	e.t.Cleanup(func() { close(done) })
	go func() {
		for len(e.replies()) == 0 {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		e.ssm.SetFault(id, ssmfake.Fault{})
	}()
}
