package waitforcommand_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"sshguard-unban/lambdas/unban"
	"sshguard-unban/lambdas/waitforcommand"
	"sshguard-unban/local/fakeenv"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/shared/coalesce"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

func id(n int) string { return fmt.Sprintf("i-%017x", n) }

// unbanJSON is what the unban script prints: the per-address results, then
// the host's report (entries more than the inline output holds).
func unbanJSON(host string, blocked bool, entries int) string {
	u := hostreport.Unban{Host: host, Backend: "nft-sets",
		Results: []hostreport.AddressResult{{Address: "203.0.113.5", WasBlocked: blocked, Removed: []string{}}},
		Report:  &hostreport.Report{Host: host, Time: "2026-12-01T10:00:00Z", Backend: "nft-sets", Entries: []hostreport.Entry{}}}
	if blocked {
		u.Results[0].Removed = []string{"203.0.113.5"}
	}
	for i := range entries {
		u.Report.Entries = append(u.Report.Entries, hostreport.Entry{Entry: fmt.Sprintf("198.51.%d.%d", i/250, i%250+1), Family: 4})
	}
	b, _ := json.Marshal(u)
	return string(b)
}

type env struct {
	*fakeenv.Env
	commands *coalesce.Store
}

func setup(t *testing.T) env {
	e := fakeenv.Start(t)
	return env{Env: e, commands: &coalesce.Store{S3: e.S3Client, Bucket: fakeenv.ListBucket, Prefix: "commands/coalesce/", Poll: 5 * time.Millisecond}}
}

func (e env) host(n int, r ssmfake.Runner, f ssmfake.Fault) string {
	e.SSM.AddInstance(ssmfake.Instance{ID: id(n), Name: fmt.Sprintf("host-%d", n), Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue}, Runner: r, Fault: f})
	return id(n)
}

// send gets the unban command out through the unban handler, as the state
// machine does.
func (e env) send(t *testing.T, execution string) workflow.UnbanCommand {
	t.Helper()
	h := unban.New(e.SSMClient, e.commands, unban.Config{
		UnbanDocument: fakeenv.UnbanDocument,
		Delivery: ssmcmd.Delivery{TagKey: fakeenv.TagKey, TagValue: fakeenv.TagValue,
			CommandTimeout: time.Minute, OutputBucket: fakeenv.OutputBucket, OutputPrefix: fakeenv.OutputPrefix},
	}, nil)
	c, err := h.Handle(context.Background(), workflow.UnbanInput{Addresses: []string{"203.0.113.5"},
		Started: time.Now().UTC().Format(time.RFC3339Nano), Execution: execution})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e env) checker(mod func(*waitforcommand.Config)) *waitforcommand.Handler {
	cfg := waitforcommand.Config{
		StepName: fakeenv.UnbanStep, OutputBucket: fakeenv.OutputBucket, OutputPrefix: fakeenv.OutputPrefix,
		TagKey: fakeenv.TagKey, TagValue: fakeenv.TagValue, Bucket: fakeenv.ListBucket,
		OutcomePrefix: "commands/outcome/", LeasePrefix: "commands/lease/",
		PollInterval: 10 * time.Millisecond, PickupBound: 300 * time.Millisecond, RunBound: 2 * time.Second, Budget: 5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	return waitforcommand.New(e.SSMClient, e.S3Client, e.commands, cfg, nil)
}

func check(t *testing.T, h *waitforcommand.Handler, c workflow.UnbanCommand, mode string) workflow.CheckResult {
	t.Helper()
	r, err := h.Handle(context.Background(), workflow.CheckInput{Mode: mode, Unban: &c})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func names(hs []workflow.HostOutcome) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Host+"="+h.Status)
	}
	return strings.Join(out, " ")
}

// The employee was blocked on two of three hosts a moment ago. One call
// waits, inside the invocation, until every host has answered; the reply
// names the two that freed it and counts the third. The hosts' reports are
// larger than the inline output: the results, printed first, are read from
// it all the same.
func TestReplyWhenEveryHostAnswered(t *testing.T) {
	e := setup(t)
	e.host(1, ssmfake.Canned{Stdout: unbanJSON("web-1", true, 400)}, ssmfake.Fault{})
	e.host(2, ssmfake.Canned{Stdout: unbanJSON("git-1", true, 2)}, ssmfake.Fault{SlowFor: 150 * time.Millisecond})
	e.host(3, ssmfake.Canned{Stdout: unbanJSON("db-1", false, 2)}, ssmfake.Fault{})
	c := e.send(t, "exec-1")
	e.SSM.HiddenPolls = 2 // not listed at first, as right after SendCommand
	r := check(t, e.checker(nil), c, workflow.CheckReply)
	if !r.Done || r.Targeted != 3 || r.Answered != 3 || r.NotBlocked != 1 || len(r.Silent) != 0 {
		t.Fatalf("%+v", r)
	}
	if got := names(r.Named); got != "web-1=succeeded git-1=succeeded" {
		t.Fatalf("named %s", got)
	}
	for _, h := range r.Named {
		if h.Unban == nil || h.Unban.Report != nil || !h.Unban.Results[0].WasBlocked {
			t.Errorf("%s: %+v (results kept, report left out of the state)", h.Host, h.Unban)
		}
	}
	if r.OutcomeKey == "" || r.CheckedAt == "" {
		t.Errorf("outcome %q checked %q", r.OutcomeKey, r.CheckedAt)
	}
}

// A host whose agent lost its connection (a stopped host) does not hold
// the reply back: it is named silent at once, from SSM's view of the
// agent. When it comes back before the command's deadline, the final check
// sees what it did.
func TestSilentHostDoesNotHoldTheReply(t *testing.T) {
	e := setup(t)
	e.host(1, ssmfake.Canned{Stdout: unbanJSON("web-1", true, 1)}, ssmfake.Fault{})
	down := e.host(2, ssmfake.Canned{Stdout: unbanJSON("db-1", true, 1)}, ssmfake.Fault{Disconnected: true})
	c := e.send(t, "exec-1")
	h := e.checker(func(c *waitforcommand.Config) { c.PickupBound = time.Minute })
	begin := time.Now()
	r := check(t, h, c, workflow.CheckReply)
	if !r.Done || len(r.Silent) != 1 || r.Silent[0].InstanceID != down || r.Silent[0].Status != workflow.HostSilent {
		t.Fatalf("%+v", r)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("the reply waited %v for a disconnected host", took)
	}
	if !strings.Contains(r.Silent[0].Detail, "ConnectionLost") {
		t.Errorf("silent detail %q", r.Silent[0].Detail)
	}
	e.SSM.SetFault(down, ssmfake.Fault{}) // the host is back
	late := check(t, h, c, workflow.CheckFinal)
	if !late.Done || len(late.Silent) != 0 || names(late.Named) != "web-1=succeeded db-1=succeeded" {
		t.Fatalf("final: %+v", late)
	}
}

// Without a connection status to go by (no tag configured), a host that
// has not picked the command up within the pickup bound is silent.
func TestPickupBound(t *testing.T) {
	e := setup(t)
	e.host(1, ssmfake.Canned{Stdout: unbanJSON("web-1", false, 1)}, ssmfake.Fault{})
	e.host(2, ssmfake.Canned{Stdout: unbanJSON("db-1", false, 1)}, ssmfake.Fault{Disconnected: true})
	c := e.send(t, "exec-1")
	r := check(t, e.checker(func(c *waitforcommand.Config) { c.TagKey = "" }), c, workflow.CheckReply)
	if !r.Done || len(r.Silent) != 1 || !strings.Contains(r.Silent[0].Detail, "did not pick the command up") {
		t.Fatalf("%+v", r)
	}
}

// The deadline passes with a host still away: the final check ends with it
// timed out (the command's own delivery timeout would say the same).
func TestDeadline(t *testing.T) {
	e := setup(t)
	e.host(1, ssmfake.Canned{Stdout: unbanJSON("web-1", false, 1)}, ssmfake.Fault{})
	e.host(2, ssmfake.Canned{}, ssmfake.Fault{Disconnected: true})
	c := e.send(t, "exec-1")
	c.Deadline = time.Now().Add(time.Second).UTC().Format(time.RFC3339)
	r := check(t, e.checker(nil), c, workflow.CheckFinal)
	if !r.Done || len(r.Silent) != 0 || names(r.Named) != "host-2=timed_out" || r.NotBlocked != 1 {
		t.Fatalf("%+v", r)
	}
}

// Colleagues sharing one command share its polling: however many wait,
// SSM is polled by one of them at a time (ListCommandInvocations throttles
// callers that poll fast), and they all get the same answer.
func TestSharedPolling(t *testing.T) {
	e := setup(t)
	for n := range 3 {
		e.host(n, ssmfake.Canned{Stdout: unbanJSON(fmt.Sprintf("h-%d", n), n == 0, 1)}, ssmfake.Fault{SlowFor: 400 * time.Millisecond})
	}
	c := e.send(t, "exec-1")
	h := e.checker(nil)
	var wg sync.WaitGroup
	results := make([]workflow.CheckResult, 20)
	for i := range results {
		wg.Go(func() { results[i] = check(t, h, c, workflow.CheckReply) })
	}
	wg.Wait()
	for i, r := range results {
		if !r.Done || names(r.Named) != "h-0=succeeded" || r.NotBlocked != 2 {
			t.Errorf("waiter %d: %+v", i, r)
		}
	}
	// One poller every 10 ms for about 0.4 s: ~40 polls; 20 pollers each
	// would be ~800.
	if n := e.SSM.Calls("ListCommandInvocations"); n > 120 {
		t.Errorf("%d ListCommandInvocations for 20 waiters of one command", n)
	}
	t.Logf("%d ListCommandInvocations, %d DescribeInstanceInformation", e.SSM.Calls("ListCommandInvocations"), e.SSM.Calls("DescribeInstanceInformation"))
}

// The budget runs out before the hosts answer: Done false, and the state
// machine calls again at once.
func TestBudget(t *testing.T) {
	e := setup(t)
	e.host(1, ssmfake.Canned{Stdout: unbanJSON("web-1", true, 1)}, ssmfake.Fault{SlowFor: time.Second})
	c := e.send(t, "exec-1")
	h := e.checker(func(c *waitforcommand.Config) { c.Budget = 100 * time.Millisecond })
	if r := check(t, h, c, workflow.CheckReply); r.Done {
		t.Fatalf("done before the host answered: %+v", r)
	}
	h.Cfg.Budget = 5 * time.Second
	if r := check(t, h, c, workflow.CheckReply); !r.Done || len(r.Named) != 1 {
		t.Fatalf("%+v", r)
	}
}

// A host whose script failed, or printed no JSON, is named failed with the
// reason; an SSM outage is a TransientError for the state machine's Retry.
func TestFailuresAndErrors(t *testing.T) {
	e := setup(t)
	e.host(1, ssmfake.Canned{Stdout: `{"host":"web-1","backend":"","results":[],"error":"sshguard config /etc/sshguard/sshguard.conf does not exist","code":"no_config"}`, ExitCode: 4}, ssmfake.Fault{})
	e.host(2, ssmfake.Canned{Stdout: "sh: 1: syntax error"}, ssmfake.Fault{})
	c := e.send(t, "exec-1")
	r := check(t, e.checker(nil), c, workflow.CheckReply)
	if names(r.Named) != "web-1=failed host-2=failed" || !strings.Contains(r.Named[0].Detail, "no_config") {
		t.Fatalf("%+v", r)
	}
	e.SSM.InjectError("ListCommandInvocations", "ThrottlingException", 400, 1)
	c2 := e.send(t, "exec-2")
	_ = e.commands.Done(context.Background(), c.Key, c.CommandID)
	_, err := e.checker(nil).Handle(context.Background(), workflow.CheckInput{Mode: workflow.CheckReply, Unban: &c2})
	if !taskerr.IsTransient(err) {
		t.Fatalf("throttled: %v", err)
	}
	var inv *taskerr.InvalidInputError
	if _, err := e.checker(nil).Handle(context.Background(), workflow.CheckInput{Mode: "soon", Unban: &c}); !errors.As(err, &inv) {
		t.Fatalf("bad mode: %v", err)
	}
}

// The refresh machine's report command: one poll per call.
func TestReportCommand(t *testing.T) {
	e := setup(t)
	e.AddHosts(ssmfake.Canned{Stdout: `{}`}, id(1))
	e.SSM.AddInstance(ssmfake.Instance{ID: id(2), Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue}, Runner: ssmfake.Canned{}, Fault: ssmfake.Fault{Offline: true}})
	sent, err := ssmcmd.Send(context.Background(), e.SSMClient, ssmcmd.Spec{Document: fakeenv.ReportDocument, AllHosts: true, TagKey: fakeenv.TagKey, TagValue: fakeenv.TagValue}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := sent.CommandIDs[0]
	e.WaitAll(t, cmd)
	ref := workflow.CommandRef{CommandIDs: []string{cmd}, Deadline: time.Now().Add(time.Minute).UTC().Format(time.RFC3339), Skipped: []string{id(9)}}
	r, err := e.checker(nil).Handle(context.Background(), workflow.CheckInput{CommandRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range r.Hosts {
		got = append(got, h.InstanceID[len(h.InstanceID)-1:]+"="+h.Status)
	}
	if !r.Done || strings.Join(got, " ") != "2=offline 9=offline" || r.Targeted != 3 || r.Answered != 3 {
		t.Fatalf("%+v %v", r, got)
	}
}
