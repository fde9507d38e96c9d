package waitforcommand_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sshguard-unban/lambdas/unban"
	"sshguard-unban/lambdas/waitforcommand"
	"sshguard-unban/local/fakeenv"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func id(n int) string { return fmt.Sprintf("i-%017x", n) }

func unbanJSON(host string, blocked bool, n int) string {
	u := hostreport.Unban{Host: host, Backend: "nft-sets"}
	for i := range n {
		r := hostreport.AddressResult{Address: fmt.Sprintf("192.0.2.%d", i%250+1), Removed: []string{}}
		if blocked {
			r.WasBlocked = true
			r.Removed = []string{r.Address}
		}
		u.Results = append(u.Results, r)
	}
	b, _ := json.Marshal(u)
	return string(b)
}

// send issues the unban command through the unban handler (as in the state
// machine) and waits until every invocation has finished running.
func send(t *testing.T, e *fakeenv.Env, req workflow.CommandRequest) workflow.CommandRef {
	t.Helper()
	h := unban.New(e.SSMClient, unban.Config{
		UnbanDocument: fakeenv.UnbanDocument,
		Delivery: ssmcmd.Delivery{TagKey: fakeenv.TagKey, TagValue: fakeenv.TagValue,
			CommandTimeout: time.Minute, OutputBucket: fakeenv.OutputBucket, OutputPrefix: fakeenv.OutputPrefix},
		Now: func() time.Time { return now },
	}, nil)
	ref, err := h.Handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	e.WaitAll(t, ref.CommandIDs...)
	return ref
}

func checker(e *fakeenv.Env, at time.Time, withS3 bool) *waitforcommand.Handler {
	cfg := waitforcommand.Config{StepName: fakeenv.UnbanStep, Now: func() time.Time { return at }}
	var s3 banlist.ObjectGetter
	if withS3 {
		cfg.OutputBucket, cfg.OutputPrefix = fakeenv.OutputBucket, fakeenv.OutputPrefix
		s3 = e.S3Client
	}
	return waitforcommand.New(e.SSMClient, s3, cfg, nil)
}

func statuses(r workflow.CheckResult) string {
	var parts []string
	for _, h := range r.Hosts {
		parts = append(parts, h.InstanceID[len(h.InstanceID)-2:]+"="+h.Status)
	}
	return fmt.Sprintf("done=%v %s", r.Done, strings.Join(parts, " "))
}

func TestPartialSuccessAcrossHosts(t *testing.T) {
	e := fakeenv.Start(t)
	add := func(n int, r ssmfake.Runner, f ssmfake.Fault) {
		e.SSM.AddInstance(ssmfake.Instance{ID: id(n), Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue}, Runner: r, Fault: f})
	}
	add(1, ssmfake.Canned{Stdout: unbanJSON("web-1", true, 1), Stderr: "nft: removed"}, ssmfake.Fault{})
	add(2, ssmfake.Canned{Stdout: unbanJSON("web-2", false, 1)}, ssmfake.Fault{})
	add(3, ssmfake.Canned{Stdout: `{"host":"web-3","results":[],"error":"cannot read sshguard.conf","code":"no_config"}`, ExitCode: 2}, ssmfake.Fault{})
	add(4, ssmfake.Canned{}, ssmfake.Fault{Offline: true})
	add(5, ssmfake.Canned{}, ssmfake.Fault{TimeOut: true})
	add(6, ssmfake.Canned{Stdout: "Traceback: something broke"}, ssmfake.Fault{})
	add(7, ssmfake.Canned{Stdout: "segfault"}, ssmfake.Fault{Fail: true})
	ref := send(t, e, workflow.CommandRequest{Addresses: []string{"192.0.2.1"}, AllHosts: true})

	res, err := checker(e, now.Add(10*time.Second), true).Handle(context.Background(),
		workflow.CheckInput{CommandRef: ref, ParseUnban: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "done=true 01=succeeded 02=succeeded 03=failed 04=offline 05=timed_out 06=failed 07=failed"
	if got := statuses(res); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	h := res.Hosts
	if h[0].Unban == nil || h[0].Host != "web-1" || !h[0].Unban.Results[0].WasBlocked {
		t.Errorf("host 1: %+v", h[0])
	}
	if h[1].Unban != nil || h[1].Host != "web-2" || h[1].Detail != "not blocked here" {
		t.Errorf("host 2 should be a short success: %+v", h[1])
	}
	if h[2].Unban == nil || h[2].Unban.Code != "no_config" || !strings.Contains(h[2].Detail, "no_config") {
		t.Errorf("host 3 should keep the script's error: %+v", h[2])
	}
	if !strings.Contains(h[3].Detail, "undeliverable") {
		t.Errorf("host 4 detail %q", h[3].Detail)
	}
	if !strings.Contains(h[5].Detail, "JSON") {
		t.Errorf("host 6 detail %q", h[5].Detail)
	}
	if len(mustJSON(t, res)) > 2000 {
		t.Errorf("result is %d bytes; keep it small", len(mustJSON(t, res)))
	}

	// Without ParseUnban (report commands): statuses only, no output read.
	res, err = checker(e, now.Add(10*time.Second), true).Handle(context.Background(), workflow.CheckInput{CommandRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "done=true 01=succeeded 02=succeeded 03=failed 04=offline 05=timed_out 06=succeeded 07=failed" {
		t.Fatalf("unparsed: %s", got)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPendingAndDeadline(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{Stdout: unbanJSON("fast", true, 1)}, id(1))
	e.SSM.AddInstance(ssmfake.Instance{ID: id(2), Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue},
		Runner: ssmfake.Canned{Stdout: unbanJSON("slow", true, 1)}, Fault: ssmfake.Fault{SlowPolls: 1000}})
	ref := send(t, e, workflow.CommandRequest{Addresses: []string{"192.0.2.1"}, InstanceIDs: []string{id(1), id(2)}})
	deadline, _ := time.Parse(time.RFC3339, ref.Deadline)
	cases := []struct {
		at   time.Time
		want string
	}{
		{deadline.Add(-time.Second), "done=false 01=succeeded 02=pending"},
		{deadline, "done=true 01=succeeded 02=timed_out"},
		{deadline.Add(time.Hour), "done=true 01=succeeded 02=timed_out"},
	}
	for _, c := range cases {
		res, err := checker(e, c.at, true).Handle(context.Background(), workflow.CheckInput{CommandRef: ref, ParseUnban: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(res); got != c.want {
			t.Errorf("at %s: got %s, want %s", c.at.Format(time.RFC3339), got, c.want)
		}
	}
}

func TestNotListedYet(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{Stdout: unbanJSON("a", true, 1)}, id(1))
	e.SSM.HiddenPolls = 2
	ref := send(t, e, workflow.CommandRequest{Addresses: []string{"192.0.2.1"}, AllHosts: true})
	deadline, _ := time.Parse(time.RFC3339, ref.Deadline)
	for i, c := range []struct {
		at   time.Time
		want string
	}{
		{now, "done=false "},                      // hidden: pending
		{deadline.Add(time.Second), "done=true "}, // still hidden, but the deadline passed
		{now, "done=true 01=succeeded"},           // listed now
	} {
		res, err := checker(e, c.at, true).Handle(context.Background(), workflow.CheckInput{CommandRef: ref, ParseUnban: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(res); got != c.want {
			t.Errorf("poll %d: got %q, want %q", i, got, c.want)
		}
	}
}

func TestTruncatedOutput(t *testing.T) {
	// ~40 KB of JSON: beyond both the 2,400-character inline plugin output
	// and GetCommandInvocation's 24,000 characters.
	huge := unbanJSON("big", true, 500)
	medium := unbanJSON("medium", true, 60) // between 2,400 and 24,000
	if len(huge) < 24000 || len(medium) < 2400 || len(medium) > 24000 {
		t.Fatalf("sizes %d %d", len(huge), len(medium))
	}
	cases := []struct {
		name   string
		stdout string
		withS3 bool
		want   string
	}{
		{"huge from S3", huge, true, "succeeded"},
		{"huge without S3", huge, false, "failed"},
		{"medium via GetCommandInvocation", medium, false, "succeeded"},
		{"medium from S3", medium, true, "succeeded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := fakeenv.Start(t)
			e.AddHosts(ssmfake.Canned{Stdout: c.stdout, Stderr: "some log line"}, id(1))
			ref := send(t, e, workflow.CommandRequest{Addresses: []string{"192.0.2.1"}, InstanceIDs: []string{id(1)}})
			res, err := checker(e, now, c.withS3).Handle(context.Background(), workflow.CheckInput{CommandRef: ref, ParseUnban: true})
			if err != nil {
				t.Fatal(err)
			}
			o := res.Hosts[0]
			if o.Status != c.want {
				t.Fatalf("status %s (%s), want %s", o.Status, o.Detail, c.want)
			}
			if c.want == "succeeded" && (o.Unban == nil || len(o.Unban.Results) == 0) {
				t.Fatalf("unban not parsed: %+v", o)
			}
			if c.want == "failed" && !strings.Contains(o.Detail, "truncated") {
				t.Fatalf("detail %q", o.Detail)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	e := fakeenv.Start(t)
	_, err := checker(e, now, true).Handle(context.Background(), workflow.CheckInput{CommandRef: workflow.CommandRef{CommandIDs: []string{}, Deadline: "soon"}})
	var inv *taskerr.InvalidInputError
	if !errors.As(err, &inv) {
		t.Fatalf("%v", err)
	}
	res, err := checker(e, now, true).Handle(context.Background(), workflow.CheckInput{CommandRef: workflow.CommandRef{CommandIDs: []string{}, Deadline: now.Format(time.RFC3339)}})
	if err != nil || !res.Done || len(res.Hosts) != 0 {
		t.Fatalf("no commands: %+v %v", res, err)
	}
}

// An instance SSM refuses (not registered, agent gone) is reported offline,
// not silently dropped from the reply.
func TestSkippedInstancesAreOffline(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{Stdout: unbanJSON("a", true, 1)}, id(1))
	ref := send(t, e, workflow.CommandRequest{Addresses: []string{"192.0.2.1"}, InstanceIDs: []string{id(1), id(2)}})
	if len(ref.Skipped) != 1 || ref.Skipped[0] != id(2) {
		t.Fatalf("skipped %v, want [%s]", ref.Skipped, id(2))
	}
	res, err := checker(e, now, true).Handle(context.Background(), workflow.CheckInput{CommandRef: ref, ParseUnban: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got != "done=true 01=succeeded 02=offline" {
		t.Fatalf("got %q", got)
	}
}
