// Package webhook is the Chatwork webhook Lambda behind API Gateway (HTTP
// API, payload 2.0). It verifies the signature, filters events, and starts
// one unban execution per Chatwork message; all real work happens in the
// state machine, so Chatwork gets its 200 at once.
package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/secrets"
	"sshguard-unban/shared/signature"
	"sshguard-unban/shared/workflow"
)

// MaxBody is the largest body accepted. Chatwork messages are far smaller;
// the bound keeps a hostile client from making us hash megabytes.
const MaxBody = 64 << 10

// MaxInputBody is the most of a message body the execution gets.
const MaxInputBody = 16 << 10

// FailureLogPattern is the CloudWatch Logs filter pattern of the webhook's
// failure alarm (cdk/alarms.go). A 500 is answered as a response, not
// returned as an error, so Lambda's Errors metric never counts it; every
// 500 logs exactly one line at level ERROR instead (fail), and nothing else
// the webhook logs is at that level.
const FailureLogPattern = `{ $.level = "ERROR" }`

// StartExecutionAPI is the one Step Functions call the webhook makes.
type StartExecutionAPI interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, opts ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
}

// TokenSource yields the Chatwork tokens (Secrets Manager, cached).
type TokenSource interface {
	Chatwork(ctx context.Context) (secrets.Chatwork, error)
}

// Config is the webhook's environment.
type Config struct {
	StateMachineARN string
	BotAccountID    string
	// AllowedRooms lists the rooms the bot serves; "*" allows every room.
	// Empty allows none: a forgotten setting must not open the bot to all.
	AllowedRooms []string
	// MaxAge bounds how old an event may be (by its signed
	// webhook_event_time, else send_time): a captured delivery replayed
	// later is acknowledged and ignored. Default DefaultMaxAge.
	MaxAge time.Duration
	Now    func() time.Time
}

// DefaultMaxAge: Chatwork delivers at once and never resends, so a genuine
// event is seconds old; ten minutes leaves room for clock skew.
const DefaultMaxAge = 10 * time.Minute

// Handler handles one API Gateway request.
type Handler struct {
	SFN    StartExecutionAPI
	Tokens TokenSource
	Cfg    Config
	Log    *slog.Logger
}

// New returns a Handler; log nil means slog.Default().
func New(sfnClient StartExecutionAPI, tokens TokenSource, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{SFN: sfnClient, Tokens: tokens, Cfg: cfg, Log: log}
}

// event is the part of a webhook body the bot reads. Ids are json.Number:
// Chatwork sends numbers (and message_id as a string); float64 would lose
// digits above 2^53.
type event struct {
	Type      string `json:"webhook_event_type"`
	EventTime int64  `json:"webhook_event_time"`
	Event     struct {
		FromAccountID json.Number `json:"from_account_id"` // mention_to_me
		AccountID     json.Number `json:"account_id"`      // message_created
		RoomID        json.Number `json:"room_id"`
		MessageID     json.Number `json:"message_id"`
		Body          string      `json:"body"`
		SendTime      int64       `json:"send_time"`
		UpdateTime    int64       `json:"update_time"`
	} `json:"webhook_event"`
}

var numericID = regexp.MustCompile(`^[0-9]{1,20}$`)

// Handle verifies and dispatches one webhook request.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	body, status := rawBody(req)
	if status != 0 {
		return reply(status), nil
	}
	sig := signatureOf(req)
	if !signature.WellFormed(sig) {
		// Before any call: a flood that found the path costs one
		// invocation each and nothing else.
		return h.unauthorized(ctx, req)
	}
	tokens, err := h.Tokens.Chatwork(ctx)
	if err != nil {
		return h.fail(ctx, "cannot read chatwork secret", "error", err)
	}
	v, err := signature.New(tokens.WebhookToken)
	if err != nil {
		return h.fail(ctx, "webhook token in the secret is not base64")
	}
	if !v.Verify(body, sig) {
		return h.unauthorized(ctx, req)
	}

	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		return reply(http.StatusBadRequest), nil
	}
	r, why := h.accept(ev)
	if why != "" {
		h.Log.InfoContext(ctx, "ignored webhook event", "reason", why, "type", ev.Type, "room_id", ev.Event.RoomID.String())
		return reply(http.StatusOK), nil
	}

	if len(r.Body) > MaxInputBody {
		// Even unescaped, JSON writes a control character as six bytes:
		// capped, the input stays under Step Functions' 256 KiB whatever the
		// body holds. A request is in its first lines.
		h.Log.InfoContext(ctx, "message body capped", "bytes", len(r.Body), "kept", MaxInputBody)
		r.Body = capUTF8(r.Body, MaxInputBody)
	}
	input, err := executionInput(r)
	if err != nil {
		return h.fail(ctx, "cannot encode execution input", "error", err)
	}
	name := ExecutionName(r.RoomID, r.MessageID)
	out, err := h.SFN.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(h.Cfg.StateMachineARN),
		Name:            aws.String(name),
		Input:           aws.String(string(input)),
	})
	var exists *types.ExecutionAlreadyExists
	switch {
	case errors.As(err, &exists):
		// A redelivered webhook: the first delivery already started it.
		h.Log.InfoContext(ctx, "execution already exists", "execution", name)
	case err != nil:
		// Chatwork does not resend: the request is lost unless someone
		// looks, hence the alarm (fail). A retry by hand is safe: the
		// execution name dedups it.
		return h.fail(ctx, "cannot start execution", append([]any{"execution", name}, startError(err)...)...)
	default:
		h.Log.InfoContext(ctx, "started execution", "execution", name, "arn", aws.ToString(out.ExecutionArn), "room_id", r.RoomID, "account_id", r.AccountID)
	}
	return reply(http.StatusOK), nil
}

// unauthorized answers 401 with no details: a prober learns nothing.
func (h *Handler) unauthorized(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	h.Log.WarnContext(ctx, "rejected webhook: bad or missing signature", "source_ip", req.RequestContext.HTTP.SourceIP)
	return reply(http.StatusUnauthorized), nil
}

// fail answers 500 and logs the one ERROR line the failure alarm counts
// (FailureLogPattern).
func (h *Handler) fail(ctx context.Context, msg string, args ...any) (events.APIGatewayV2HTTPResponse, error) {
	h.Log.ErrorContext(ctx, msg, args...)
	return reply(http.StatusInternalServerError), nil
}

// startError describes a failed StartExecution for the log: for a service
// error only its code, as AWS validation messages may quote the input (the
// message body); a network or SDK error as it is.
func startError(err error) []any {
	if code := awserr.Code(err); code != "" {
		return []any{"error_code", code}
	}
	return []any{"error", err}
}

// accept turns an event into a Request, or says why it is ignored.
func (h *Handler) accept(ev event) (workflow.Request, string) {
	e := ev.Event
	r := workflow.Request{RoomID: e.RoomID.String(), MessageID: e.MessageID.String(), Body: e.Body, SentAt: e.SendTime}
	switch ev.Type {
	case "mention_to_me":
		// Chatwork sends it for a [To:] or a reply to the bot anywhere in
		// the body, quotes included: a quoted mention is not a request.
		r.AccountID = e.FromAccountID.String()
		if h.Cfg.BotAccountID != "" && hasBotTag(e.Body, h.Cfg.BotAccountID) && !message.MentionsBot(e.Body, h.Cfg.BotAccountID) {
			return r, "the bot is mentioned only inside a quote"
		}
	case "message_created":
		r.AccountID = e.AccountID.String()
		if !message.MentionsBot(e.Body, h.Cfg.BotAccountID) {
			return r, "room message does not mention the bot"
		}
	default:
		return r, "event type not handled"
	}
	at := ev.EventTime
	if at == 0 {
		at = e.SendTime
	}
	switch age := h.Cfg.Now().Sub(time.Unix(at, 0)); {
	case at == 0:
		return r, "event without a time"
	case age > h.Cfg.MaxAge:
		return r, "event older than " + h.Cfg.MaxAge.String() + " (a replayed delivery?)"
	case age < -h.Cfg.MaxAge:
		return r, "event dated more than " + h.Cfg.MaxAge.String() + " ahead"
	}
	switch {
	case !numericID.MatchString(r.RoomID) || !numericID.MatchString(r.MessageID) || !numericID.MatchString(r.AccountID):
		return r, "event lacks numeric ids"
	case r.AccountID == h.Cfg.BotAccountID:
		return r, "message from the bot itself"
	case e.UpdateTime != 0:
		return r, "edited message"
	case !h.roomAllowed(r.RoomID):
		return r, "room not on the allowlist"
	}
	return r, ""
}

func (h *Handler) roomAllowed(room string) bool {
	for _, a := range h.Cfg.AllowedRooms {
		if a == "*" || a == room {
			return true
		}
	}
	return false
}

// hasBotTag: the body holds the bot's id in a mention or reply tag, live
// or quoted (message.MentionsBot tells which).
func hasBotTag(body, bot string) bool {
	return strings.Contains(body, "[To:"+bot+"]") || strings.Contains(body, "aid="+bot)
}

// ExecutionName derives the execution name from the message, so a webhook
// delivered twice maps to one execution. Step Functions allows 80 characters
// of [A-Za-z0-9_-]; the ids are digits only (checked before).
func ExecutionName(roomID, messageID string) string {
	return "chatwork-" + roomID + "-" + messageID
}

// rawBody returns the exact bytes Chatwork signed, or an error status.
func rawBody(req events.APIGatewayV2HTTPRequest) ([]byte, int) {
	// Base64 is 4/3 the size: reject before decoding anything huge.
	if len(req.Body) > MaxBody*4/3+4 {
		return nil, http.StatusRequestEntityTooLarge
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(req.Body)
		if err != nil {
			return nil, http.StatusBadRequest
		}
		body = b
	}
	if len(body) > MaxBody {
		return nil, http.StatusRequestEntityTooLarge
	}
	return body, 0
}

// signatureOf reads the signature header (any case) or query parameter.
func signatureOf(req events.APIGatewayV2HTTPRequest) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, "X-ChatWorkWebhookSignature") {
			return v
		}
	}
	return req.QueryStringParameters["chatwork_webhook_signature"]
}

func reply(status int) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "text/plain; charset=utf-8"},
		Body:       http.StatusText(status),
	}
}

// executionInput encodes the request without HTML escaping: json.Marshal
// writes each & < > as six bytes, and a 64 KiB body of & would pass Step
// Functions' 256 KiB input limit.
func executionInput(r workflow.Request) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]workflow.Request{"request": r}); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// capUTF8 cuts s to at most n bytes at a character boundary.
func capUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
