package statemachine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/local/awsapi"
	"sshguard-unban/local/secretsfake"
	"sshguard-unban/local/sfnfake"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/signature"
	"sshguard-unban/shared/workflow"
)

// TestDuplicateExecution goes through the Step Functions API (sfnfake, the
// unchanged SDK client) as the webhook does: Chatwork redelivers a webhook,
// the webhook starts the execution again under the same name.
func TestDuplicateExecution(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	e.refresh("initial-refresh")
	fake := sfnfake.New(sfnrunner.Bound{Runner: runner(t), Overrides: e.over}, sfnfake.Options{})
	defer fake.Close()
	sfnSrv := httptest.NewServer(fake)
	defer sfnSrv.Close()
	client := sfn.New(sfn.Options{Region: "local", BaseEndpoint: aws.String(sfnSrv.URL), Credentials: aws.AnonymousCredentials{}})
	ctx := context.Background()

	// Keep the execution open long enough for the duplicates to meet it.
	e.bridge.Inject("parse", taskbridge.Fault{Kind: taskbridge.Delay, Delay: 300 * time.Millisecond, Times: 1})
	name := "room-1001-msg-777"
	input := string(request("777", "please unban 192.0.2.12"))
	start := func() (*sfn.StartExecutionOutput, error) {
		return client.StartExecution(ctx, &sfn.StartExecutionInput{
			StateMachineArn: aws.String("arn:aws:states:local:000000000000:stateMachine:unban"),
			Name:            aws.String(name),
			Input:           aws.String(input),
		})
	}
	var wg sync.WaitGroup
	arns := make([]string, 5)
	errs := make([]error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := start()
			errs[i] = err
			if err == nil {
				arns[i] = aws.ToString(out.ExecutionArn)
			}
		}()
	}
	wg.Wait()
	for i := range 5 {
		if errs[i] != nil || arns[i] != arns[0] {
			t.Fatalf("start %d: %v %s (first %s)", i, errs[i], arns[i], arns[0])
		}
	}
	x, err := fake.WaitFor(ctx, arns[0])
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("%+v", x)
	}
	// Once closed, the name is taken for good.
	var exists *types.ExecutionAlreadyExists
	if _, err := start(); !errors.As(err, &exists) {
		t.Errorf("start after the end: %v", err)
	}
	d, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arns[0])})
	if err != nil || d.Status != types.ExecutionStatusSucceeded {
		t.Fatalf("describe: %v %+v", err, d)
	}
	e.bridge.Idle()
	if n := len(fake.Executions()); n != 1 {
		t.Errorf("%d executions", n)
	}
	if n := len(e.bridge.Calls("parse")); n != 1 {
		t.Errorf("parse called %d times", n)
	}
	checkMessages(t, e, 1, 0)
	if n := len(e.sent(unbanDoc)); n != 1 {
		t.Errorf("%d unban commands", n)
	}
}

// TestTransitionsPerUnban records what a successful unban costs in state
// transitions (Step Functions Standard bills each one): 15 when the hosts
// answer within one polling invocation (one more, AnnounceNewBans, when the
// reports showed new blocks; 4 more with a silent host: WaitForLateHosts,
// AreLateHostsDone, FollowUp and the Choice; each further polling
// invocation adds 2, a retried task 1 per retry).
func TestTransitionsPerUnban(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	e.refresh("initial-refresh")
	// Long enough for the simulated hosts; short for a test.
	e.over.WaitMillis = map[string]int{"*": 100}
	x := e.unban("exec-1", "please unban 192.0.2.12")
	if x.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("%s %s", x.Status, x.Error)
	}
	t.Logf("successful unban: %d transitions (%d states entered, %d retries), largest state %d bytes: %v",
		x.Transitions, len(x.States), x.Retries, x.MaxStateBytes, x.States)
	if x.Transitions != 15 {
		t.Errorf("%d transitions, want 15", x.Transitions)
	}
	help := e.unban("exec-2", "hello")
	t.Logf("help/thanks/refused reply: %d transitions", help.Transitions)
	if help.Transitions != 5 {
		t.Errorf("help: %d transitions, want 5 (%v)", help.Transitions, help.States)
	}
}

// BenchmarkUnban reports transitions per successful unban next to the
// local wall time per execution (dominated by the fakes and the
// interpreter, not by anything Step Functions would bill).
func BenchmarkUnban(b *testing.B) {
	e := newEnv(b, threeHosts())
	e.over.WaitMillis = map[string]int{"*": 20}
	e.refresh("initial-refresh")
	total := 0
	b.ResetTimer()
	for i := range b.N {
		// The address is blocked again each round so every run unbans.
		for _, id := range []string{"i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"} {
			if err := e.hosts[id].Block("192.0.2.12"); err != nil {
				b.Fatal(err)
			}
		}
		e.refresh(fmt.Sprintf("refresh-%d", i))
		x := e.unban(fmt.Sprintf("exec-%d", i), "please unban 192.0.2.12")
		if x.Status != sfnrunner.StatusSucceeded {
			b.Fatalf("%s %s", x.Status, x.Error)
		}
		total += x.Transitions
	}
	b.ReportMetric(float64(total)/float64(b.N), "transitions/op")
}

// TestWebhookRedelivery is the whole front door: the real webhook handler
// (lambdas/app) verifies a signed Chatwork event and starts the execution
// through the Step Functions API (sfnfake). Chatwork delivers the same
// event again while it runs and once more after it ended: every delivery
// gets 200, one execution runs, the asker gets one reply.
func TestWebhookRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	e.refresh("initial-refresh")
	fake := sfnfake.New(sfnrunner.Bound{Runner: runner(t), Overrides: e.over}, sfnfake.Options{})
	defer fake.Close()
	const webhookToken = "d2ViaG9vaw==" // base64, as Chatwork issues it
	secrets := secretsfake.New(map[string]string{"chatwork-webhook": `{"webhook_token":"` + webhookToken + `"}`})
	endpoint := httptest.NewServer(awsapi.Router{StepFunctions: fake, SecretsManager: secrets})
	defer endpoint.Close()
	const bot = "1234"
	env := app.Environment(functions.Webhook, app.Deployment{
		StateMachineARN: "arn:aws:states:local:000000000000:stateMachine:unban",
		BotAccountID:    bot, AllowedRooms: []string{askerRoom}, WebhookSecretID: "chatwork-webhook",
	})
	webhook, err := app.NewHandler(context.Background(), "webhook", func(k string) string { return env[k] }, awsConfig(endpoint.URL))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"webhook_setting_id":"1","webhook_event_type":"mention_to_me","webhook_event_time":%d,`+
		`"webhook_event":{"from_account_id":%s,"to_account_id":%s,"room_id":%s,"message_id":"1790000000000000777",`+
		`"body":"[To:%s]bot\nplease unban 192.0.2.12","send_time":%d,"update_time":0}}`,
		time.Now().Unix(), asker, bot, askerRoom, bot, time.Now().Unix())
	v, err := signature.New(webhookToken)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(events.APIGatewayV2HTTPRequest{
		Body:    body,
		Headers: map[string]string{"x-chatworkwebhooksignature": v.Sign([]byte(body))},
	})
	deliver := func() {
		t.Helper()
		out, err := webhook.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		var res events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &res); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("webhook answered %s (%v)", out, err)
		}
	}

	e.bridge.Inject("parse", taskbridge.Fault{Kind: taskbridge.Delay, Delay: 300 * time.Millisecond, Times: 1})
	deliver()
	deliver() // while the execution runs: the same execution
	fake.Wait()
	deliver() // after it ended: ExecutionAlreadyExists, still 200
	fake.Wait()
	e.bridge.Idle()

	execs := fake.Executions()
	if len(execs) != 1 || execs[0].Status != sfnrunner.StatusSucceeded || execs[0].Name != "chatwork-"+askerRoom+"-1790000000000000777" {
		t.Fatalf("executions %+v", execs)
	}
	checkMessages(t, e, 1, 0)
	if r := bodies(e.replies()); !strings.Contains(r, "192.0.2.12: unblocked on web-1 and web-2.") {
		t.Errorf("reply:\n%s", r)
	}
}

// TestProgressThenAnswer: the asker sees "Checking…" before the hosts have
// answered, and that one message becomes the answer (an edit, no second
// message). The progress call is asynchronous: the hosts are asked without
// waiting for it.
func TestProgressThenAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	e.refresh("initial-refresh")
	x := e.unban("exec-1", "please unban 192.0.2.12")
	if x.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("%s %s %s", x.Status, x.Error, x.Cause)
	}
	msgs := e.chat.RoomMessages(askerRoom)
	if len(msgs) != 1 || !msgs[0].Updated || !strings.Contains(msgs[0].Body, "192.0.2.12: unblocked on web-1 and web-2.") {
		t.Fatalf("want the progress message edited into the answer, got %+v", msgs)
	}
	var progressDone, replyStarted time.Time
	for _, c := range e.bridge.Calls("notify") {
		var in workflow.NotifyInput
		_ = json.Unmarshal(c.Input, &in)
		if in.Kind == workflow.NotifyProgress && c.Error == "" {
			progressDone = c.At
		}
	}
	for i, st := range x.States {
		if st == "ReplyToUser" {
			replyStarted = time.UnixMilli(x.EnteredMillis[i])
		}
	}
	if progressDone.IsZero() || !progressDone.Before(replyStarted) {
		t.Errorf("progress done at %v, reply started at %v: the progress must come first", progressDone, replyStarted)
	}
	if i, j := slices.Index(x.States, "SayWeAreOnIt"), slices.Index(x.States, "LookUpBanLists"); i < 0 || j != i+1 {
		t.Errorf("states %v", x.States)
	}
}
