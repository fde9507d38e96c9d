package statemachine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/lambdas/notify"
	"sshguard-unban/local/awsapi"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/dynalite"
	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/local/s3local"
	"sshguard-unban/local/secretsfake"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/sfnrunner/sfnrunnertest"
	"sshguard-unban/local/simhost"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/shared/workflow"
	"sshguard-unban/statemachine"
)

// The end-to-end tests run the real definitions (statemachine/*.asl.json)
// in aws-local-stepfunctions (one Node process for the whole package,
// local/sfnrunner) and every Task on the real Go handlers (local/taskbridge),
// which talk to local fakes of their AWS and Chatwork dependencies: an
// in-memory S3 (ban lists, notify's marks), an SSM Run Command endpoint whose
// instances are simulated sshguard hosts, and the Chatwork API. Each test
// gets its own fakes and bridge, so they run in parallel on the one
// interpreter.

const (
	bucket     = "sshguard-banlists"
	prefix     = app.BanlistPrefix
	unbanDoc   = "sshguard-unban"
	reportDoc  = "sshguard-report"
	tagKey     = "sshguard-unban"
	tagValue   = "enabled"
	askerRoom  = "1001"
	asker      = "4242"
	sreRoom    = "9001"
	noticeRoom = "9002"
	apiToken   = "chatwork-test-token"
)

// shared is the package's interpreter, with both machines.
var shared = sfnrunnertest.Shared{Config: func() (sfnrunner.Config, error) {
	return sfnrunner.Config{
		Machines:      map[string][]byte{"unban": []byte(statemachine.Unban), "refresh": []byte(statemachine.Refresh)},
		Substitutions: statemachine.LocalSubstitutions("local", "000000000000"),
	}, nil
}}

func TestMain(m *testing.M) {
	// Handlers without a logger of their own (parse) log through the
	// default one: keep test output readable unless E2E_LOG is set.
	if os.Getenv("E2E_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// runner is the package's interpreter, started on first use.
func runner(t testing.TB) *sfnrunner.Runner { return shared.Runner(t) }

// hostSpec is one simulated production host.
type hostSpec struct {
	id, name string
	blocks   []string
	fault    ssmfake.Fault
}

// threeHosts: 192.0.2.12 is blocked on web-1 and web-2 (web-2 through a
// /24 range), not on db-1.
func threeHosts() []hostSpec {
	return []hostSpec{
		{id: "i-0aaaaaaaaaaaaaaa1", name: "web-1", blocks: []string{"192.0.2.12", "198.51.100.7"}},
		{id: "i-0aaaaaaaaaaaaaaa2", name: "web-2", blocks: []string{"192.0.2.0/24"}},
		{id: "i-0aaaaaaaaaaaaaaa3", name: "db-1", blocks: []string{"203.0.113.9"}},
	}
}

type env struct {
	t    testing.TB
	aws  *httptest.Server // the one AWS endpoint (S3, SSM, Secrets Manager)
	ssm  *ssmfake.Server
	chat *chatworkfake.Server
	// chatURL is the served Chatwork API base.
	chatURL string
	bridge  *taskbridge.Bridge
	hosts   map[string]*simhost.Host // by instance id
	// over is what every run of this env uses; tests set TaskTimeoutSeconds.
	over sfnrunner.Overrides
	log  *slog.Logger
	// table is this env's policy table, in the package's one dynalite.
	table string
}

// tableSeq names each env's policy table in the test binary's one dynalite.
var tableSeq atomic.Int64

// policyTable creates a fresh policy table and returns the handler that
// serves DynamoDB requests (a proxy to the shared dynalite).
func policyTable(t testing.TB) (http.Handler, string) {
	t.Helper()
	srv := dynalitetest.Shared(t)
	table := fmt.Sprintf("policy-%d", tableSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dynalite.CreateTable(ctx, srv.Client(), table); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u), table
}

// newEnv starts the fakes and the bridge; opts adjust the bridge before it
// serves.
func newEnv(t testing.TB, hosts []hostSpec, opts ...func(*taskbridge.Bridge)) *env {
	t.Helper()
	e := &env{t: t, hosts: map[string]*simhost.Host{}}
	e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("E2E_LOG") != "" {
		e.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}

	// One endpoint for every AWS service, as an aws.Config has one
	// BaseEndpoint (parallel tests cannot use the process-wide
	// AWS_ENDPOINT_URL_<SERVICE> variables).
	e.ssm = ssmfake.New()
	secrets := secretsfake.New(map[string]string{"chatwork-api": `{"api_token":"` + apiToken + `"}`, "page-key": pageKey})
	dynamo, table := policyTable(t)
	e.table = table
	e.aws = httptest.NewServer(awsapi.Router{SSM: e.ssm, SecretsManager: secrets, DynamoDB: dynamo, S3: s3local.New(bucket)})
	t.Cleanup(e.aws.Close)

	// The documents as cdk/ defines them (shared/ssmdoc); command output
	// goes to S3 as in production.
	e.ssm.S3 = s3local.NewClient(e.aws.URL)
	e.ssm.AddDocument(ssmfake.Document{Name: unbanDoc, StepName: ssmdoc.UnbanStep, Parameters: map[string]*regexp.Regexp{
		ssmdoc.AddressesParam:         regexp.MustCompile(ssmdoc.AddressItemPattern),
		ssmdoc.RemoveBlacklistedParam: regexp.MustCompile(ssmdoc.RemoveBlacklistedPattern),
	}})
	e.ssm.AddDocument(ssmfake.Document{Name: reportDoc, StepName: ssmdoc.ReportStep, Parameters: map[string]*regexp.Regexp{}})
	for _, h := range hosts {
		sh := &simhost.Host{Name: h.name, Documents: map[string]string{unbanDoc: "unban", reportDoc: "report"}}
		for _, b := range h.blocks {
			if err := sh.Block(b); err != nil {
				t.Fatal(err)
			}
		}
		e.hosts[h.id] = sh
		e.ssm.AddInstance(ssmfake.Instance{ID: h.id, Name: h.name, Tags: map[string]string{tagKey: tagValue}, Runner: sh, Fault: h.fault})
	}
	t.Cleanup(e.ssm.Close)

	e.chat = chatworkfake.New(apiToken)
	chatSrv := httptest.NewServer(e.chat)
	t.Cleanup(chatSrv.Close)
	e.chatURL = chatSrv.URL + chatworkfake.BasePath

	handlers, err := buildHandlers(e)
	if err != nil {
		t.Fatal(err)
	}
	e.bridge = taskbridge.New(handlers)
	for _, o := range opts {
		o(e.bridge)
	}
	bridgeSrv := httptest.NewServer(e.bridge)
	t.Cleanup(func() { bridgeSrv.Close(); e.bridge.Idle() })

	e.over = sfnrunner.Overrides{
		BridgeURL: bridgeSrv.URL,
		// A few milliseconds instead of seconds: the fake hosts answer at
		// once, and the loop still goes round when they do not.
		WaitMillis:          map[string]int{"*": 3},
		RetryIntervalMillis: map[string]int{"*": 0},
	}
	return e
}

// request is the execution input the webhook would send.
func request(id, body string) []byte {
	in := struct {
		Request workflow.Request `json:"request"`
	}{workflow.Request{RoomID: askerRoom, MessageID: id, AccountID: asker, Body: body, SentAt: time.Now().Unix()}}
	b, _ := json.Marshal(in)
	return b
}

// run executes a machine in this env and waits until late task calls
// (a Task that timed out still runs its handler) have finished.
func (e *env) run(machine, name string, input []byte) sfnrunner.Execution {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	x, err := runner(e.t).RunWith(ctx, e.over, machine, name, input)
	if err != nil {
		e.t.Fatal(err)
	}
	e.bridge.Idle()
	return x
}

// unban runs the unban machine on a message from the asker.
func (e *env) unban(name, body string) sfnrunner.Execution {
	e.t.Helper()
	return e.run("unban", name, request(name, body))
}

// refresh runs the scheduled refresh machine and requires success, so that
// fresh lists are stored.
func (e *env) refresh(name string) sfnrunner.Execution {
	e.t.Helper()
	x := e.run("refresh", name, []byte(`{}`))
	if x.Status != sfnrunner.StatusSucceeded {
		e.t.Fatalf("refresh %s: %s %s %s", name, x.Status, x.Error, x.Cause)
	}
	return x
}

// replies are the answers in the asker's room: a progress message counts
// once it has been edited into the answer, not while it still says
// "Checking…" (progress lists those).
func (e *env) replies() []chatworkfake.Message {
	var out []chatworkfake.Message
	for _, m := range e.chat.RoomMessages(askerRoom) {
		if !notify.IsProgress(m.Body) {
			out = append(out, m)
		}
	}
	return out
}

// progress are the progress messages never turned into an answer.
func (e *env) progress() []chatworkfake.Message {
	var out []chatworkfake.Message
	for _, m := range e.chat.RoomMessages(askerRoom) {
		if notify.IsProgress(m.Body) {
			out = append(out, m)
		}
	}
	return out
}

// alerts are the SRE room's messages but its record of unbans (audits).
func (e *env) alerts() []chatworkfake.Message {
	var out []chatworkfake.Message
	for _, m := range e.chat.RoomMessages(sreRoom) {
		if !strings.Contains(m.Body, auditTitle) {
			out = append(out, m)
		}
	}
	return out
}

// audits are the SRE room's record of unbans.
func (e *env) audits() []chatworkfake.Message {
	var out []chatworkfake.Message
	for _, m := range e.chat.RoomMessages(sreRoom) {
		if strings.Contains(m.Body, auditTitle) {
			out = append(out, m)
		}
	}
	return out
}

const auditTitle = "[title]unban record[/title]"

func (e *env) notices() []chatworkfake.Message { return e.chat.RoomMessages(noticeRoom) }

// sent lists the documents of the SSM commands sent so far.
func (e *env) sent(doc string) []ssmfake.SentCommand {
	var out []ssmfake.SentCommand
	for _, c := range e.ssm.Sent() {
		if c.DocumentName == doc {
			out = append(out, c)
		}
	}
	return out
}

// state decodes an execution's output (the final state document).
func finalState(t testing.TB, x sfnrunner.Execution) workflow.State {
	t.Helper()
	var st workflow.State
	if len(x.Output) > 0 {
		if err := json.Unmarshal(x.Output, &st); err != nil {
			t.Fatalf("output %s: %v", x.Output, err)
		}
	}
	return st
}

func bodies(ms []chatworkfake.Message) string {
	var b []string
	for _, m := range ms {
		b = append(b, m.Body)
	}
	return strings.Join(b, "\n---\n")
}
