package ssmfake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"sshguard-unban/local/s3local"
	"sshguard-unban/local/ssmfake"
)

type env struct {
	fake   *ssmfake.Server
	client *ssm.Client
	s3     *s3.Client
	url    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	s3srv := httptest.NewServer(s3local.New("out"))
	f := ssmfake.New()
	f.S3 = s3local.NewClient(s3srv.URL)
	f.AddDocument(ssmfake.Document{Name: "doc", StepName: "step",
		Parameters: map[string]*regexp.Regexp{"addresses": regexp.MustCompile(`^[0-9a-f:.]+$`)}})
	hs := httptest.NewServer(f)
	t.Cleanup(func() { hs.Close(); f.Close(); s3srv.Close() })
	return &env{fake: f, client: ssmfake.NewClient(hs.URL, 1), s3: f.S3.(*s3.Client), url: hs.URL}
}

func id(n int) string { return fmt.Sprintf("i-%017x", n) }

func (e *env) add(n int, r ssmfake.Runner, f ssmfake.Fault, tags map[string]string) string {
	e.fake.AddInstance(ssmfake.Instance{ID: id(n), Name: fmt.Sprintf("web-%d", n), Tags: tags, Runner: r, Fault: f})
	return id(n)
}

func (e *env) send(t *testing.T, in *ssm.SendCommandInput) string {
	t.Helper()
	if in.DocumentName == nil {
		in.DocumentName = aws.String("doc")
	}
	out, err := e.client.SendCommand(context.Background(), in)
	if err != nil {
		t.Fatalf("SendCommand: %v", err)
	}
	return aws.ToString(out.Command.CommandId)
}

func (e *env) wait(t *testing.T, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.fake.Wait(ctx, cmd); err != nil {
		t.Fatal(err)
	}
}

func (e *env) list(t *testing.T, cmd string) []types.CommandInvocation {
	t.Helper()
	var all []types.CommandInvocation
	p := ssm.NewListCommandInvocationsPaginator(e.client, &ssm.ListCommandInvocationsInput{
		CommandId: aws.String(cmd), Details: true, MaxResults: aws.Int32(7)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.CommandInvocations...)
	}
	return all
}

func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestSendCommandErrors(t *testing.T) {
	e := newEnv(t)
	known := e.add(1, ssmfake.Canned{}, ssmfake.Fault{}, nil)
	many := make([]string, 51)
	for i := range many {
		many[i] = id(100 + i)
	}
	cases := []struct {
		name string
		in   ssm.SendCommandInput
		code string
	}{
		{"unknown document", ssm.SendCommandInput{DocumentName: aws.String("nope"), InstanceIds: []string{known}}, "InvalidDocument"},
		{"unknown instance", ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{known, id(2)}}, "InvalidInstanceId"},
		{"more than 50 ids", ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: many}, "ValidationException"},
		{"undeclared parameter", ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{known},
			Parameters: map[string][]string{"commands": {"rm -rf /"}}}, "InvalidParameters"},
		{"value against pattern", ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{known},
			Parameters: map[string][]string{"addresses": {"1.2.3.4; reboot"}}}, "InvalidParameters"},
		{"no targets", ssm.SendCommandInput{DocumentName: aws.String("doc")}, "InvalidParameters"},
		{"bad max errors", ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{known}, MaxErrors: aws.String("101%")}, "ValidationException"},
		{"timeout too short", ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{known}, TimeoutSeconds: aws.Int32(5)}, "ValidationException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			_, err := e.client.SendCommand(context.Background(), &in)
			if got := errCode(err); got != c.code {
				t.Fatalf("error code %q (%v), want %q", got, err, c.code)
			}
		})
	}
	if n := len(e.fake.Sent()); n != 0 {
		t.Fatalf("%d commands recorded, want none", n)
	}
}

func TestStatusesOutputsAndTargets(t *testing.T) {
	e := newEnv(t)
	tags := map[string]string{"role": "web"}
	long := strings.Repeat("x", 30000)
	ok := e.add(1, ssmfake.Canned{Stdout: `{"ok":true}`, Stderr: "warn"}, ssmfake.Fault{}, tags)
	big := e.add(2, ssmfake.Canned{Stdout: long}, ssmfake.Fault{}, tags)
	off := e.add(3, ssmfake.Canned{Stdout: "never"}, ssmfake.Fault{Offline: true}, tags)
	slow := e.add(4, ssmfake.Canned{Stdout: "slow"}, ssmfake.Fault{TimeOut: true}, tags)
	fail := e.add(5, ssmfake.Canned{Stdout: `{"error":"x"}`}, ssmfake.Fault{Fail: true}, tags)
	e.add(6, ssmfake.Canned{}, ssmfake.Fault{}, map[string]string{"role": "db"}) // not targeted

	cmd := e.send(t, &ssm.SendCommandInput{
		Targets:            []types.Target{{Key: aws.String("tag:role"), Values: []string{"web"}}},
		Parameters:         map[string][]string{"addresses": {"192.0.2.1"}},
		OutputS3BucketName: aws.String("out"), OutputS3KeyPrefix: aws.String("pfx"),
		MaxErrors: aws.String("100%"),
	})
	e.wait(t, cmd)
	sent := e.fake.Sent()
	if len(sent) != 1 || strings.Join(sent[0].Resolved, ",") != strings.Join([]string{ok, big, off, slow, fail}, ",") {
		t.Fatalf("resolved targets: %+v", sent)
	}
	if sent[0].Targets["tag:role"][0] != "web" || sent[0].Parameters["addresses"][0] != "192.0.2.1" {
		t.Fatalf("recorded %+v", sent[0])
	}
	got := map[string]types.CommandInvocation{}
	for _, inv := range e.list(t, cmd) {
		got[aws.ToString(inv.InstanceId)] = inv
	}
	want := map[string][2]string{
		ok:   {"Success", "Success"},
		big:  {"Success", "Success"},
		off:  {"Failed", "Undeliverable"},
		slow: {"TimedOut", "Execution Timed Out"},
		fail: {"Failed", "Failed"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d invocations, want %d", len(got), len(want))
	}
	for iid, w := range want {
		inv := got[iid]
		if string(inv.Status) != w[0] || aws.ToString(inv.StatusDetails) != w[1] {
			t.Errorf("%s: %s/%s, want %s/%s", iid, inv.Status, aws.ToString(inv.StatusDetails), w[0], w[1])
		}
	}
	if p := got[ok].CommandPlugins[0]; aws.ToString(p.Output) != "{\"ok\":true}\n----------ERROR-------\nwarn" || aws.ToString(p.Name) != "step" {
		t.Errorf("plugin output %q name %q", aws.ToString(p.Output), aws.ToString(p.Name))
	}
	if out := aws.ToString(got[big].CommandPlugins[0].Output); len(out) != 2400 || !strings.HasSuffix(out, "\n---Output truncated---") {
		t.Errorf("big plugin output: %d chars, suffix %q", len(out), out[len(out)-25:])
	}
	if c := got[off].CommandPlugins[0].ResponseCode; c != -1 {
		t.Errorf("offline response code %d", c)
	}
	if c := got[fail].CommandPlugins[0].ResponseCode; c != 1 {
		t.Errorf("failing response code %d", c)
	}

	// GetCommandInvocation: 24,000-character cap with the agent's suffix.
	gi, err := e.client.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{
		CommandId: aws.String(cmd), InstanceId: aws.String(big), PluginName: aws.String("step")})
	if err != nil {
		t.Fatal(err)
	}
	if c := aws.ToString(gi.StandardOutputContent); len(c) != 24000 || !strings.HasSuffix(c, "--output truncated--") {
		t.Errorf("StandardOutputContent %d chars", len(c))
	}
	wantURL := "https://s3.us-east-1.amazonaws.com/out/pfx/" + cmd + "/" + big + "/awsrunShellScript/step/stdout"
	if u := aws.ToString(gi.StandardOutputUrl); u != wantURL {
		t.Errorf("StandardOutputUrl %q, want %q", u, wantURL)
	}
	// Full output in S3 at the agent's key layout.
	obj, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String("out"), Key: aws.String("pfx/" + cmd + "/" + big + "/awsrunShellScript/step/stdout")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(body) != long {
		t.Errorf("S3 stdout %d bytes, want %d", len(body), len(long))
	}
	_, err = e.client.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{
		CommandId: aws.String(cmd), InstanceId: aws.String(big), PluginName: aws.String("other")})
	if errCode(err) != "InvalidPluginName" {
		t.Errorf("wrong plugin name: %v", err)
	}
}

func TestSlowHiddenAndMaxErrors(t *testing.T) {
	e := newEnv(t)
	e.fake.HiddenPolls = 1
	slow := e.add(1, ssmfake.Canned{Stdout: "done"}, ssmfake.Fault{SlowPolls: 2}, nil)
	cmd := e.send(t, &ssm.SendCommandInput{InstanceIds: []string{slow}})
	e.wait(t, cmd)
	if invs := e.list(t, cmd); len(invs) != 0 {
		t.Fatalf("first list shows %d invocations, want none (eventual consistency)", len(invs))
	}
	for i, want := range []string{"InProgress", "InProgress", "Success"} {
		invs := e.list(t, cmd)
		if len(invs) != 1 || string(invs[0].Status) != want {
			t.Fatalf("poll %d: %+v, want %s", i, invs, want)
		}
	}

	// MaxErrors 0 with concurrency 1: after the first failure the rest are
	// not started.
	e.fake.HiddenPolls = 0
	var ids []string
	for n := 10; n < 13; n++ {
		ids = append(ids, e.add(n, ssmfake.Canned{}, ssmfake.Fault{Fail: true}, nil))
	}
	cmd = e.send(t, &ssm.SendCommandInput{InstanceIds: ids, MaxConcurrency: aws.String("1"), MaxErrors: aws.String("0")})
	e.wait(t, cmd)
	var details []string
	for _, inv := range e.list(t, cmd) {
		details = append(details, aws.ToString(inv.StatusDetails))
	}
	slices.Sort(details)
	if strings.Join(details, ",") != "Failed,Terminated,Terminated" {
		t.Fatalf("details %v", details)
	}
}

func TestExecTimeoutAndInjectedErrors(t *testing.T) {
	e := newEnv(t)
	e.fake.ExecTimeout = 50 * time.Millisecond
	h := e.add(1, ssmfake.Canned{Stdout: "late", Delay: 5 * time.Second}, ssmfake.Fault{}, nil)
	cmd := e.send(t, &ssm.SendCommandInput{InstanceIds: []string{h}})
	e.wait(t, cmd)
	invs := e.list(t, cmd)
	if string(invs[0].Status) != "TimedOut" || aws.ToString(invs[0].StatusDetails) != "Execution Timed Out" {
		t.Fatalf("%s/%s", invs[0].Status, aws.ToString(invs[0].StatusDetails))
	}

	e.fake.InjectError("SendCommand", "ThrottlingException", 400, 1)
	_, err := e.client.SendCommand(context.Background(), &ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{h}})
	if errCode(err) != "ThrottlingException" {
		t.Fatalf("injected: %v", err)
	}
	if _, err := e.client.SendCommand(context.Background(), &ssm.SendCommandInput{DocumentName: aws.String("doc"), InstanceIds: []string{h}}); err != nil {
		t.Fatalf("after injection: %v", err)
	}
}

func TestProtocol(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, target, auth, ctype, body string
		status                          int
		code                            string
	}{
		{"no authorization", "AmazonSSM.ListCommandInvocations", "", "application/x-amz-json-1.1", `{}`, 400, "MissingAuthenticationTokenException"},
		{"unknown operation", "AmazonSSM.DeleteDocument", "AWS4-HMAC-SHA256 x", "application/x-amz-json-1.1", `{}`, 400, "UnknownOperationException"},
		{"bad json", "AmazonSSM.SendCommand", "AWS4-HMAC-SHA256 x", "application/x-amz-json-1.1", `{`, 400, "SerializationException"},
		{"ok", "AmazonSSM.ListCommandInvocations", "AWS4-HMAC-SHA256 x", "application/x-amz-json-1.1", `{}`, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/", strings.NewReader(c.body))
			req.Header.Set("X-Amz-Target", c.target)
			req.Header.Set("Content-Type", c.ctype)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d body %s", resp.StatusCode, body)
			}
			if c.code != "" && !strings.Contains(string(body), `"__type":"`+c.code+`"`) {
				t.Fatalf("body %s, want __type %s", body, c.code)
			}
		})
	}
}

// A host whose agent lost its connection (a stopped instance): SSM reports
// it ConnectionLost, its invocation stays Pending, and the agent runs it
// when it is back, as a reconnecting agent does; a host that stays away
// ends "Delivery Timed Out" at the command's timeout.
func TestDisconnectedAgent(t *testing.T) {
	e := newEnv(t)
	tags := map[string]string{"role": "web"}
	up := e.add(1, ssmfake.Canned{Stdout: "ran"}, ssmfake.Fault{}, tags)
	down := e.add(2, ssmfake.Canned{Stdout: "ran late"}, ssmfake.Fault{Disconnected: true}, tags)
	gone := e.add(3, ssmfake.Canned{Stdout: "never"}, ssmfake.Fault{Disconnected: true}, tags)

	info, err := e.client.DescribeInstanceInformation(context.Background(), &ssm.DescribeInstanceInformationInput{
		Filters: []types.InstanceInformationStringFilter{{Key: aws.String("tag:role"), Values: []string{"web"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ping := map[string]types.PingStatus{}
	for _, i := range info.InstanceInformationList {
		ping[aws.ToString(i.InstanceId)] = i.PingStatus
	}
	if ping[up] != types.PingStatusOnline || ping[down] != types.PingStatusConnectionLost || len(ping) != 3 {
		t.Fatalf("ping statuses %v", ping)
	}

	cmd := e.send(t, &ssm.SendCommandInput{Targets: []types.Target{{Key: aws.String("tag:role"), Values: []string{"web"}}}, TimeoutSeconds: aws.Int32(30)})
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := map[string]types.CommandInvocationStatus{}
		for _, inv := range e.list(t, cmd) {
			st[aws.ToString(inv.InstanceId)] = inv.Status
		}
		if st[up] == types.CommandInvocationStatusSuccess {
			if st[down] != types.CommandInvocationStatusPending || st[gone] != types.CommandInvocationStatusPending {
				t.Fatalf("disconnected hosts: %v, want Pending", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connected host never finished: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.fake.SetFault(down, ssmfake.Fault{}) // back online
	for {
		out, err := e.client.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{CommandId: aws.String(cmd), InstanceId: aws.String(down)})
		if err == nil && out.Status == types.CommandInvocationStatusSuccess {
			if aws.ToString(out.StandardOutputContent) != "ran late" {
				t.Fatalf("output %q", aws.ToString(out.StandardOutputContent))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconnected host never ran the command: %v %v", out, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
