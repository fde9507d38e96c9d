// Package app builds each Lambda's handler from its environment variables and
// an aws.Config. The production entry point (lambdas/bootstrap) and the local
// mode call the same function: only the environment (endpoints, credentials,
// names) differs, never the code path.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"sshguard-unban/lambdas/lookup"
	"sshguard-unban/lambdas/notify"
	"sshguard-unban/lambdas/page"
	"sshguard-unban/lambdas/parse"
	"sshguard-unban/lambdas/policy"
	"sshguard-unban/lambdas/refreshlist"
	"sshguard-unban/lambdas/unban"
	"sshguard-unban/lambdas/waitforcommand"
	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/coalesce"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/pagelink"
	"sshguard-unban/shared/secrets"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/ssmdoc"
)

// DefaultForgetAfter is how long a silent host stays in the ban-list index.
const DefaultForgetAfter = 24 * time.Hour

// Names lists the handlers, by the Lambda handler name CDK gives each
// function (shared/functions is the table).
var Names = functions.Handlers()

// Getenv reads one environment variable (os.Getenv in production).
type Getenv func(string) string

// LogLevel is the functions' log level from LOG_LEVEL ("debug" or the
// default, info); lambdas/bootstrap reads it before building the handler.
func LogLevel(getenv Getenv) slog.Level {
	if getenv("LOG_LEVEL") == "debug" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// NewHandler builds the named handler.
func NewHandler(ctx context.Context, name string, getenv Getenv, cfg aws.Config) (lambda.Handler, error) {
	e := env{get: getenv}
	log := slog.Default().With("function", name)
	var h any
	switch name {
	case functions.Webhook:
		h = webhook.New(sfn.NewFromConfig(cfg), secretSource(&e, cfg, "CHATWORK_WEBHOOK_SECRET_ID", secrets.WebhookTokenKey), webhook.Config{
			StateMachineARN: e.need("STATE_MACHINE_ARN"),
			BotAccountID:    e.need("BOT_ACCOUNT_ID"),
			AllowedRooms:    e.list("ALLOWED_ROOMS"),
		}, log).Handle
	case functions.Parse:
		h = parse.New(log).Handle
	case functions.Lookup:
		h = lookup.New(s3Client(&e, cfg), lookup.Config{
			Bucket:    e.need("BANLIST_BUCKET"),
			Prefix:    e.get("BANLIST_PREFIX"),
			Freshness: e.seconds("FRESHNESS_SECONDS"),
		}, log).Handle
	case functions.Unban:
		h = unban.New(ssm.NewFromConfig(cfg), coalesceStore(&e, cfg), unban.Config{
			UnbanDocument: e.need("UNBAN_DOCUMENT"),
			Delivery:      delivery(&e),
		}, log).Handle
	case functions.WaitForCommand:
		h = waitforcommand.New(ssm.NewFromConfig(cfg), s3Client(&e, cfg), coalesceStore(&e, cfg), waitforcommand.Config{
			StepName:      ssmdoc.UnbanStep,
			OutputBucket:  e.get("COMMAND_OUTPUT_BUCKET"),
			OutputPrefix:  e.get("COMMAND_OUTPUT_PREFIX"),
			TagKey:        e.need("TARGET_TAG_KEY"),
			TagValue:      e.need("TARGET_TAG_VALUE"),
			Bucket:        e.need("BANLIST_BUCKET"),
			OutcomePrefix: CommandOutcomePrefix,
			LeasePrefix:   CommandLeasePrefix,
		}, log).Handle
	case functions.RefreshList:
		h = refreshlist.New(ssm.NewFromConfig(cfg), s3Client(&e, cfg), refreshlist.Config{
			ReportDocument: e.need("REPORT_DOCUMENT"),
			StepName:       ssmdoc.ReportStep,
			Delivery:       delivery(&e),
			Bucket:         e.need("BANLIST_BUCKET"),
			Prefix:         e.get("BANLIST_PREFIX"),
			// A host that has not reported for this long (terminated,
			// untagged) leaves the index; otherwise it would keep every
			// lookup on the slow all-hosts path forever.
			ForgetAfter: e.secondsOr("FORGET_AFTER_SECONDS", DefaultForgetAfter),
		}, log).Handle
	case functions.Notify:
		n := notify.New(chatworkClient(&e, cfg), s3Client(&e, cfg), notify.Config{
			NotifyRoomID: e.get("NOTIFY_ROOM_ID"),
			SRERoomID:    e.get("SRE_ROOM_ID"),
			Locale:       e.get("LOCALE"),
			Bucket:       e.need("BANLIST_BUCKET"),
			MarkPrefix:   e.get("REPLY_MARK_PREFIX"),
			OutboxPrefix: OutboxPrefix,
			BotAccountID: e.get("BOT_ACCOUNT_ID"),
			ApprovalWait: ApprovalWait,
		}, log)
		n.Approvals = approvals{policyStore(&e, cfg)}
		n.History = historyStore(&e, cfg)
		n.Cfg.PublicURL = publicURL(&e)
		if id := e.get("PAGE_SECRET_ID"); id != "" && n.Cfg.PublicURL != "" {
			key := secrets.NewString(secretsmanager.NewFromConfig(cfg), id, pagelink.MinKeyLen)
			n.PageLinks = pagelink.Signer{Key: key.Value, BaseURL: n.Cfg.PublicURL}
		}
		h = n.Handle
	case functions.Page:
		key := secrets.NewString(secretsmanager.NewFromConfig(cfg), e.need("PAGE_SECRET_ID"), pagelink.MinKeyLen)
		h = page.New(s3Client(&e, cfg), historyStore(&e, cfg), key.Value, page.Config{
			Bucket:          e.need("BANLIST_BUCKET"),
			Prefix:          e.get("BANLIST_PREFIX"),
			Freshness:       e.seconds("FRESHNESS_SECONDS"),
			SREAccounts:     e.list("SRE_ACCOUNTS"),
			StateMachineARN: e.get("STATE_MACHINE_ARN"),
			Locale:          e.get("LOCALE"),
		}, log).Handle
	case functions.Policy:
		store := policyStore(&e, cfg)
		never, err := policy.ParsePrefixes(e.list("NEVER_SELF_SERVICE"))
		if err != nil {
			e.bad = append(e.bad, "NEVER_SELF_SERVICE")
		}
		h = policy.New(chatworkClient(&e, cfg), store, approvals{store}, sfn.NewFromConfig(cfg), policy.Config{
			AllowedAccounts:      e.list("ALLOWED_ACCOUNTS"),
			AllowedOrganizations: e.list("ALLOWED_ORGANIZATIONS"),
			SREAccounts:          e.list("SRE_ACCOUNTS"),
			SRERoomID:            e.get("SRE_ROOM_ID"),
			AccountPerHour:       e.count("QUOTA_ACCOUNT_PER_HOUR"),
			AccountPerDay:        e.count("QUOTA_ACCOUNT_PER_DAY"),
			AddressPerDay:        e.count("QUOTA_ADDRESS_PER_DAY"),
			ManyHosts:            e.count("APPROVAL_MANY_HOSTS"),
			NeverSelfService:     never,
			NewCode:              newCode,
		}, log).Handle
	default:
		return nil, fmt.Errorf("app: no handler named %q (want one of %s)", name, strings.Join(Names, ", "))
	}
	if len(e.missing) > 0 {
		return nil, fmt.Errorf("app: %s: missing environment variables %s", name, strings.Join(e.missing, ", "))
	}
	if len(e.bad) > 0 {
		return nil, fmt.Errorf("app: %s: bad values in %s", name, strings.Join(e.bad, ", "))
	}
	return lambda.NewHandler(h), nil
}

// publicURL is PUBLIC_URL, the API's base URL, if it is one.
func publicURL(e *env) string {
	v := e.get("PUBLIC_URL")
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		e.bad = append(e.bad, "PUBLIC_URL")
		return ""
	}
	return strings.TrimSuffix(v, "/") + "/"
}

// chatworkClient posts with the API token of CHATWORK_API_SECRET_ID.
func chatworkClient(e *env, cfg aws.Config) *chatwork.Client {
	src := secretSource(e, cfg, "CHATWORK_API_SECRET_ID", secrets.APITokenKey)
	return &chatwork.Client{
		BaseURL: e.get("CHATWORK_API_URL"), // empty: the real API
		Token: func(ctx context.Context) (string, error) {
			c, err := src.Chatwork(ctx)
			return c.APIToken, err
		},
		HTTP: &http.Client{Timeout: 10 * time.Second},
	}
}

// delivery is how both documents reach the tagged hosts.
func delivery(e *env) ssmcmd.Delivery {
	return ssmcmd.Delivery{
		TagKey:         e.need("TARGET_TAG_KEY"),
		TagValue:       e.need("TARGET_TAG_VALUE"),
		CommandTimeout: e.seconds("COMMAND_TIMEOUT_SECONDS"),
		OutputBucket:   e.get("COMMAND_OUTPUT_BUCKET"),
		OutputPrefix:   e.get("COMMAND_OUTPUT_PREFIX"),
	}
}

// coalesceStore is where requests for the same addresses share commands.
func coalesceStore(e *env, cfg aws.Config) *coalesce.Store {
	return &coalesce.Store{S3: s3Client(e, cfg), Bucket: e.need("BANLIST_BUCKET"), Prefix: CoalescePrefix}
}

// secretSource reads one token from the secret named by variable k.
func secretSource(e *env, cfg aws.Config, k string, need secrets.Key) *secrets.Source {
	return secrets.New(secretsmanager.NewFromConfig(cfg), e.need(k), need)
}

// s3Client honours S3_FORCE_PATH_STYLE, which S3-compatible servers without
// virtual-host buckets (the local mode's) need.
func s3Client(e *env, cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = e.get("S3_FORCE_PATH_STYLE") == "true"
	})
}

// env reads variables and collects what is missing or malformed, so one
// error names every problem of a misconfigured function.
type env struct {
	get     Getenv
	missing []string
	bad     []string
}

func (e *env) need(k string) string {
	v := e.get(k)
	if v == "" {
		e.missing = append(e.missing, k)
	}
	return v
}

func (e *env) list(k string) []string {
	var out []string
	for _, s := range strings.Split(e.get(k), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// count reads an optional whole number (0 when unset: none).
func (e *env) count(k string) int {
	v := e.get(k)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.bad = append(e.bad, k)
		return 0
	}
	return n
}

// seconds reads an optional duration in whole seconds (0 = the handler's
// default).
func (e *env) seconds(k string) time.Duration { return e.secondsOr(k, 0) }

// secondsOr reads an optional duration in whole seconds.
func (e *env) secondsOr(k string, def time.Duration) time.Duration {
	v := e.get(k)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.bad = append(e.bad, k)
		return 0
	}
	return time.Duration(n) * time.Second
}
