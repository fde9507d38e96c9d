package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/shared/secrets"
	"sshguard-unban/shared/signature"
	"sshguard-unban/shared/workflow"
)

const (
	webhookToken = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5"
	bot          = "1234567"
	machineARN   = "arn:aws:states:ap-northeast-1:123456789012:stateMachine:unban"
)

// sfnEndpoint speaks the Step Functions JSON 1.0 protocol for StartExecution,
// so the real aws-sdk-go-v2 client is what the handler talks to.
type sfnEndpoint struct {
	mu      sync.Mutex
	started map[string]string // name → input
	calls   int
	fail    bool
	// reject answers a ValidationException that quotes the input, as AWS
	// validation messages may quote the offending value.
	reject bool
}

func (e *sfnEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if r.Header.Get("X-Amz-Target") != "AWSStepFunctions.StartExecution" || r.Header.Get("Authorization") == "" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	var in struct{ StateMachineArn, Name, Input string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if e.fail {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"__type":"ServiceUnavailable","message":"try later"}`)
		return
	}
	if e.reject {
		w.WriteHeader(http.StatusBadRequest)
		msg, _ := json.Marshal("1 validation error detected: Value '" + in.Input + "' at 'input' failed to satisfy constraint")
		fmt.Fprintf(w, `{"__type":"ValidationException","message":%s}`, msg)
		return
	}
	if prev, ok := e.started[in.Name]; ok && prev != in.Input {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"ExecutionAlreadyExists","message":"Execution Already Exists"}`)
		return
	}
	e.started[in.Name] = in.Input
	fmt.Fprintf(w, `{"executionArn":"%s:%s","startDate":1.7324e9}`, strings.Replace(in.StateMachineArn, ":stateMachine:", ":execution:", 1), in.Name)
}

type staticTokens struct{ err error }

func (s staticTokens) Chatwork(context.Context) (secrets.Chatwork, error) {
	return secrets.Chatwork{APIToken: "api", WebhookToken: webhookToken}, s.err
}

func newHandler(t testing.TB, ep *sfnEndpoint, tokens webhook.TokenSource) *webhook.Handler {
	t.Helper()
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
	client := sfn.New(sfn.Options{
		Region:           "ap-northeast-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local", ""),
		RetryMaxAttempts: 1,
	})
	cfg := webhook.Config{StateMachineARN: machineARN, BotAccountID: bot, AllowedRooms: []string{"567890123"}, Now: eventClock}
	return webhook.New(client, tokens, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

// eventClock is the handler's clock: five seconds after the events below.
func eventClock() time.Time { return time.Unix(1732400005, 0) }

func mention(from, room, msg, body string, update int64) string {
	b, _ := json.Marshal(map[string]any{
		"webhook_setting_id": "12345", "webhook_event_type": "mention_to_me", "webhook_event_time": 1732400000,
		"webhook_event": map[string]any{
			"from_account_id": json.Number(from), "to_account_id": json.Number(bot), "room_id": json.Number(room),
			"message_id": msg, "body": body, "send_time": 1732399999, "update_time": update,
		},
	})
	return string(b)
}

// at moves an event's times by d from the handler's clock.
func at(body string, d time.Duration) string {
	t := eventClock().Add(d).Unix()
	out := strings.Replace(body, `"webhook_event_time":1732400000`, fmt.Sprintf(`"webhook_event_time":%d`, t), 1)
	out = strings.Replace(out, `"send_time":1732399999`, fmt.Sprintf(`"send_time":%d`, t-1), 1)
	if out == body {
		panic("at: the event's times were not found")
	}
	return out
}

func roomMessage(from, body string) string {
	b, _ := json.Marshal(map[string]any{
		"webhook_setting_id": "777", "webhook_event_type": "message_created", "webhook_event_time": 1732400000,
		"webhook_event": map[string]any{
			"account_id": json.Number(from), "room_id": json.Number("567890123"),
			"message_id": "1790000000000000002", "body": body, "send_time": 1732399999, "update_time": 0,
		},
	})
	return string(b)
}

func signed(body string) events.APIGatewayV2HTTPRequest {
	v, _ := signature.New(webhookToken)
	return events.APIGatewayV2HTTPRequest{
		Body:    body,
		Headers: map[string]string{"x-chatworkwebhooksignature": v.Sign([]byte(body)), "content-type": "application/json"},
	}
}

func TestHandle(t *testing.T) {
	good := mention("123456", "567890123", "1790000000000000000", "[To:1234567]unbanbot さん\n203.0.113.5", 0)
	v, _ := signature.New(webhookToken)
	tests := []struct {
		name      string
		req       events.APIGatewayV2HTTPRequest
		status    int
		wantStart string // expected execution name, "" for none
	}{
		{name: "mention starts an execution", req: signed(good), status: 200, wantStart: "chatwork-567890123-1790000000000000000"},
		{name: "signature in query parameter", req: events.APIGatewayV2HTTPRequest{Body: good, QueryStringParameters: map[string]string{"chatwork_webhook_signature": v.Sign([]byte(good))}}, status: 200, wantStart: "chatwork-567890123-1790000000000000000"},
		{name: "header name in original case", req: events.APIGatewayV2HTTPRequest{Body: good, Headers: map[string]string{"X-ChatWorkWebhookSignature": v.Sign([]byte(good))}}, status: 200, wantStart: "chatwork-567890123-1790000000000000000"},
		{name: "base64 body from API Gateway", req: func() events.APIGatewayV2HTTPRequest {
			r := signed(good)
			r.Body, r.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(good)), true
			return r
		}(), status: 200, wantStart: "chatwork-567890123-1790000000000000000"},
		{name: "missing signature", req: events.APIGatewayV2HTTPRequest{Body: good}, status: 401},
		{name: "forged signature", req: func() events.APIGatewayV2HTTPRequest {
			r := signed(good)
			r.Body = strings.Replace(good, "203.0.113.5", "203.0.113.6", 1)
			return r
		}(), status: 401},
		{name: "oversized body", req: signed(strings.Repeat(" ", webhook.MaxBody+1)), status: 413},
		{name: "bad base64", req: events.APIGatewayV2HTTPRequest{Body: "%%%", IsBase64Encoded: true}, status: 400},
		{name: "malformed JSON, signed", req: signed(`{"webhook_event_type":`), status: 400},
		{name: "the bot's own message", req: signed(mention(bot, "567890123", "1790000000000000001", "hi", 0)), status: 200},
		{name: "edited message", req: signed(mention("123456", "567890123", "1790000000000000001", "203.0.113.5", 1732400001)), status: 200},
		{name: "room not allowed", req: signed(mention("123456", "999", "1790000000000000001", "203.0.113.5", 0)), status: 200},
		{name: "room message mentioning the bot", req: signed(roomMessage("123456", "[To:1234567]bot\n203.0.113.5")), status: 200, wantStart: "chatwork-567890123-1790000000000000002"},
		{name: "room message replying to the bot", req: signed(roomMessage("123456", "[rp aid=1234567 to=567890123-1]bot\n203.0.113.5")), status: 200, wantStart: "chatwork-567890123-1790000000000000002"},
		{name: "room message without mention", req: signed(roomMessage("123456", "203.0.113.5")), status: 200},
		{name: "other event type", req: signed(`{"webhook_event_type":"mention_to_room","webhook_event":{}}`), status: 200},
		{name: "non-numeric ids", req: signed(mention("123456", "567890123", "abc", "203.0.113.5", 0)), status: 400},
		// Someone quotes an earlier request to the bot (Chatwork's quote
		// keeps the [To:] inside [qt]) to ask a colleague about it: not a
		// request, though Chatwork fires mention_to_me.
		{name: "mention only inside a quote", req: signed(mention("123456", "567890123", "1790000000000000003",
			"[qt][qtmeta aid=7654321 time=1732390000][To:1234567]unbanbot さん\n203.0.113.5 お願いします[/qt]これ攻撃ですよね？", 0)), status: 200},
		{name: "quote, then a live mention", req: signed(mention("123456", "567890123", "1790000000000000003",
			"[qt][qtmeta aid=7654321 time=1732390000][To:1234567]unbanbot 203.0.113.5[/qt][To:1234567]unbanbot 私も同じです", 0)), status: 200, wantStart: "chatwork-567890123-1790000000000000003"},
		{name: "room message with the mention only quoted", req: signed(roomMessage("123456", "[qt][qtmeta aid=7654321 time=1732390000][To:1234567]bot 203.0.113.5[/qt]")), status: 200},
		// A captured delivery sent again later: signed, but stale.
		{name: "replayed 11 minutes later", req: signed(at(good, -11*time.Minute)), status: 200},
		{name: "dated 11 minutes ahead", req: signed(at(good, 11*time.Minute)), status: 200},
		{name: "9 minutes old (clock skew)", req: signed(at(good, -9*time.Minute)), status: 200, wantStart: "chatwork-567890123-1790000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := &sfnEndpoint{started: map[string]string{}}
			h := newHandler(t, ep, staticTokens{})
			resp, err := h.Handle(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.wantStart == "" {
				if len(ep.started) != 0 {
					t.Fatalf("started %v, want nothing", ep.started)
				}
				return
			}
			input, ok := ep.started[tt.wantStart]
			if !ok || len(ep.started) != 1 {
				t.Fatalf("started %v, want %s", ep.started, tt.wantStart)
			}
			var in struct{ Request workflow.Request }
			if err := json.Unmarshal([]byte(input), &in); err != nil {
				t.Fatal(err)
			}
			if in.Request.RoomID != "567890123" || in.Request.AccountID != "123456" || !strings.Contains(in.Request.Body, "203.0.113.5") {
				t.Fatalf("input %s", input)
			}
		})
	}
}

// A body of 64 KiB of & (or of control characters, which JSON writes as
// six bytes each) still makes an execution input Step Functions accepts.
func TestHugeBodyStillStarts(t *testing.T) {
	for _, fill := range []string{"&", "\x01", "あ"} {
		ep := &sfnEndpoint{started: map[string]string{}}
		h := newHandler(t, ep, staticTokens{})
		// As many as the webhook accepts; Chatwork writes & as it is.
		var body string
		for n := webhook.MaxBody; ; n -= 256 {
			body = strings.ReplaceAll(mention("123456", "567890123", "1790000000000000009", "[To:1234567]bot 203.0.113.5 "+strings.Repeat(fill, n), 0), `\u0026`, "&")
			if len(body) <= webhook.MaxBody {
				break
			}
		}
		resp, err := h.Handle(context.Background(), signed(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%q: status %d, %v", fill, resp.StatusCode, err)
		}
		input, ok := ep.started["chatwork-567890123-1790000000000000009"]
		if !ok {
			t.Fatalf("%q: no execution started", fill)
		}
		if len(input) > 256<<10 {
			t.Errorf("%q: input is %d bytes, over Step Functions' limit", fill, len(input))
		}
		var in struct{ Request workflow.Request }
		if err := json.Unmarshal([]byte(input), &in); err != nil || !strings.Contains(in.Request.Body, "203.0.113.5") || !utf8.ValidString(in.Request.Body) {
			t.Errorf("%q: input %.200s (%v)", fill, input, err)
		}
	}
}

// A non-numeric message id makes an unusable execution name: the event is
// malformed, not merely ignored. (Covered above; here big ids survive intact.)
func TestLargeIDsKeepEveryDigit(t *testing.T) {
	ep := &sfnEndpoint{started: map[string]string{}}
	h := newHandler(t, ep, staticTokens{})
	body := mention("98765432109876543", "567890123", "9007199254740993123", "203.0.113.5", 0)
	if resp, _ := h.Handle(context.Background(), signed(body)); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	input := ep.started["chatwork-567890123-9007199254740993123"]
	if !strings.Contains(input, `"account_id":"98765432109876543"`) {
		t.Fatalf("input %q", input)
	}
}

func TestRedeliveryIsOneExecution(t *testing.T) {
	ep := &sfnEndpoint{started: map[string]string{}}
	h := newHandler(t, ep, staticTokens{})
	body := mention("123456", "567890123", "1790000000000000000", "203.0.113.5", 0)
	for range 3 {
		if resp, _ := h.Handle(context.Background(), signed(body)); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// A different body under the same message id makes the service answer
	// ExecutionAlreadyExists, which is success for the webhook too.
	ep.started["chatwork-567890123-1790000000000000000"] = "something else"
	if resp, _ := h.Handle(context.Background(), signed(body)); resp.StatusCode != 200 {
		t.Fatalf("status %d on ExecutionAlreadyExists", resp.StatusCode)
	}
	if len(ep.started) != 1 || ep.calls != 4 {
		t.Fatalf("started %d executions in %d calls", len(ep.started), ep.calls)
	}
}

func TestFailuresAnswer500(t *testing.T) {
	body := mention("123456", "567890123", "1790000000000000000", "203.0.113.5", 0)
	ep := &sfnEndpoint{started: map[string]string{}, fail: true}
	if resp, _ := newHandler(t, ep, staticTokens{}).Handle(context.Background(), signed(body)); resp.StatusCode != 500 {
		t.Fatalf("sfn down: status %d", resp.StatusCode)
	}
	ep = &sfnEndpoint{started: map[string]string{}}
	if resp, _ := newHandler(t, ep, staticTokens{err: fmt.Errorf("denied")}).Handle(context.Background(), signed(body)); resp.StatusCode != 500 || ep.calls != 0 {
		t.Fatalf("secret unreadable: status %d calls %d", resp.StatusCode, ep.calls)
	}
}

// Logs never carry the tokens or the signature.
func TestLogsCarryNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	ep := &sfnEndpoint{started: map[string]string{}}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	client := sfn.New(sfn.Options{Region: "ap-northeast-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("A", "B", "")})
	h := webhook.New(client, staticTokens{}, webhook.Config{StateMachineARN: machineARN, BotAccountID: bot, AllowedRooms: []string{"*"}, Now: eventClock}, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	body := mention("123456", "567890123", "1790000000000000000", "203.0.113.5", 0)
	req := signed(body)
	h.Handle(context.Background(), req)
	h.Handle(context.Background(), events.APIGatewayV2HTTPRequest{Body: body, Headers: map[string]string{"x-chatworkwebhooksignature": "forged"}})
	out := buf.String()
	if out == "" {
		t.Fatal("no logs at all")
	}
	for _, secret := range []string{webhookToken, req.Headers["x-chatworkwebhooksignature"], "forged"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains %q:\n%s", secret, out)
		}
	}
}

// Message bodies stay out of the webhook's logs on every path, at debug
// level too: started, capped, ignored, already started, and a StartExecution
// refused with a message that quotes the input. The execution history keeps
// the body (the audit); CloudWatch Logs does not.
func TestLogsCarryNoBody(t *testing.T) {
	const secret = "XYZZY 社外秘の本文"
	body := "[To:1234567]bot 203.0.113.5 " + secret
	cases := []struct {
		name string
		ep   *sfnEndpoint
		body string
	}{
		{"started", &sfnEndpoint{started: map[string]string{}}, mention("123456", "567890123", "1790000000000000000", body, 0)},
		{"capped", &sfnEndpoint{started: map[string]string{}}, mention("123456", "567890123", "1790000000000000000", body+strings.Repeat(" "+secret, webhook.MaxInputBody/20), 0)},
		{"ignored", &sfnEndpoint{started: map[string]string{}}, mention("123456", "567890123", "1790000000000000000", "[qt][qtmeta aid=7654321 time=1732390000]"+body+"[/qt]", 0)},
		{"already started", &sfnEndpoint{started: map[string]string{"chatwork-567890123-1790000000000000000": "other"}}, mention("123456", "567890123", "1790000000000000000", body, 0)},
		{"refused quoting the input", &sfnEndpoint{started: map[string]string{}, reject: true}, mention("123456", "567890123", "1790000000000000000", body, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := newHandler(t, c.ep, staticTokens{})
			h.Log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			if _, err := h.Handle(context.Background(), signed(c.body)); err != nil {
				t.Fatal(err)
			}
			if buf.Len() == 0 {
				t.Fatal("no log line at all")
			}
			if strings.Contains(buf.String(), "XYZZY") || strings.Contains(buf.String(), "社外秘") {
				t.Errorf("the log carries the message body:\n%s", buf.String())
			}
		})
	}
}

// BenchmarkHandle measures the acknowledgement path: verify, decode, start
// an execution over HTTP against a local Step Functions endpoint.
func BenchmarkHandle(b *testing.B) {
	ep := &sfnEndpoint{started: map[string]string{}}
	h := newHandler(b, ep, staticTokens{})
	reqs := make([]events.APIGatewayV2HTTPRequest, 0, 1024)
	for i := range 1024 {
		reqs = append(reqs, signed(mention("123456", "567890123", fmt.Sprint(1790000000000000000+i), "[To:1234567]bot\n203.0.113.5", 0)))
	}
	i := 0
	for b.Loop() {
		resp, _ := h.Handle(context.Background(), reqs[i%len(reqs)])
		if resp.StatusCode != 200 {
			b.Fatal(resp.StatusCode)
		}
		i++
	}
}

// matchesFilter evaluates a CloudWatch Logs JSON filter pattern of the one
// form FailureLogPattern has, { $.FIELD = "VALUE" }, against a log line.
// Any other form fails the test instead of being guessed at.
func matchesFilter(t *testing.T, pattern, line string) bool {
	t.Helper()
	m := regexp.MustCompile(`^\{ \$\.([A-Za-z_]+) = "([^"]*)" \}$`).FindStringSubmatch(pattern)
	if m == nil {
		t.Fatalf("filter pattern %q: not a form this test can evaluate", pattern)
	}
	var ev map[string]any
	if json.Unmarshal([]byte(line), &ev) != nil {
		return false // a JSON pattern never matches a non-JSON event
	}
	return ev[m[1]] == m[2]
}

// Every request the webhook answers 500 — Chatwork never resends it, so a
// genuine unban request is lost — writes exactly one log line that the
// WebhookFailedRequests metric filter (cdk/alarms.go) counts, because a 500
// returned as a response is no Lambda error and the Errors alarm never sees
// it. Nothing else counts: a flood of forged or ignored requests does not
// page anyone.
func TestEveryFailureIsOneAlarmedLogLine(t *testing.T) {
	good := mention("123456", "567890123", "1790000000000000000", "[To:1234567]bot 203.0.113.5", 0)
	cases := []struct {
		name   string
		ep     *sfnEndpoint
		tokens webhook.TokenSource
		req    events.APIGatewayV2HTTPRequest
		status int
	}{
		{"StartExecution fails", &sfnEndpoint{started: map[string]string{}, fail: true}, staticTokens{}, signed(good), 500},
		{"secret unreadable", &sfnEndpoint{started: map[string]string{}}, staticTokens{err: fmt.Errorf("AccessDenied")}, signed(good), 500},
		{"webhook token not base64", &sfnEndpoint{started: map[string]string{}}, badTokens{}, signed(good), 500},
		{"started", &sfnEndpoint{started: map[string]string{}}, staticTokens{}, signed(good), 200},
		{"forged", &sfnEndpoint{started: map[string]string{}}, staticTokens{}, events.APIGatewayV2HTTPRequest{Body: good, Headers: map[string]string{"x-chatworkwebhooksignature": "forged"}}, 401},
		{"oversized", &sfnEndpoint{started: map[string]string{}}, staticTokens{}, signed(strings.Repeat(" ", webhook.MaxBody+1)), 413},
		{"malformed", &sfnEndpoint{started: map[string]string{}}, staticTokens{}, signed(`{"webhook_event_type":`), 400},
		{"ignored", &sfnEndpoint{started: map[string]string{}}, staticTokens{}, signed(mention(bot, "567890123", "1790000000000000001", "hi", 0)), 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := newHandler(t, c.ep, c.tokens)
			h.Log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			resp, err := h.Handle(context.Background(), c.req)
			if err != nil || resp.StatusCode != c.status {
				t.Fatalf("status %d, %v; want %d", resp.StatusCode, err, c.status)
			}
			n := 0
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if matchesFilter(t, webhook.FailureLogPattern, line) {
					n++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[c.status >= 500]; n != want {
				t.Errorf("%d lines match %s, want %d:\n%s", n, webhook.FailureLogPattern, want, buf.String())
			}
		})
	}
}

type badTokens struct{}

func (badTokens) Chatwork(context.Context) (secrets.Chatwork, error) {
	return secrets.Chatwork{APIToken: "api", WebhookToken: "%%% not base64"}, nil
}

// countingTokens counts reads of the secret.
type countingTokens struct{ n int }

func (c *countingTokens) Chatwork(ctx context.Context) (secrets.Chatwork, error) {
	c.n++
	return staticTokens{}.Chatwork(ctx)
}

// TestUnsignedFloodMakesNoCall: requests that cannot carry a signature (a
// flood that found the path) are turned away before the secret is read or
// anything else is called; one with a signature of the right form is
// checked against the token.
func TestUnsignedFloodMakesNoCall(t *testing.T) {
	good := mention("123456", "567890123", "1790000000000000002", "[To:1234567]bot 203.0.113.5", 0)
	wrongKey := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cases := []struct {
		name      string
		headers   map[string]string
		query     map[string]string
		status    int
		readsKeys int
	}{
		{"no signature", nil, nil, 401, 0},
		{"empty header", map[string]string{"x-chatworkwebhooksignature": ""}, nil, 401, 0},
		{"not base64", map[string]string{"x-chatworkwebhooksignature": strings.Repeat("!", 44)}, nil, 401, 0},
		{"too short", map[string]string{"x-chatworkwebhooksignature": "c2ln"}, nil, 401, 0},
		{"unpadded", map[string]string{"x-chatworkwebhooksignature": strings.TrimSuffix(wrongKey, "=")}, nil, 401, 0},
		{"query, not base64", nil, map[string]string{"chatwork_webhook_signature": strings.Repeat("-", 44)}, 401, 0},
		{"well formed, wrong key", map[string]string{"x-chatworkwebhooksignature": wrongKey}, nil, 401, 1},
		{"genuine", signed(good).Headers, nil, 200, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep := &sfnEndpoint{started: map[string]string{}}
			tokens := &countingTokens{}
			resp, err := newHandler(t, ep, tokens).Handle(context.Background(), events.APIGatewayV2HTTPRequest{Body: good, Headers: c.headers, QueryStringParameters: c.query})
			if err != nil || resp.StatusCode != c.status {
				t.Fatalf("status %d, %v; want %d", resp.StatusCode, err, c.status)
			}
			if tokens.n != c.readsKeys || (c.status != 200 && ep.calls != 0) {
				t.Errorf("secret read %d times (want %d), Step Functions called %d times", tokens.n, c.readsKeys, ep.calls)
			}
		})
	}
}
