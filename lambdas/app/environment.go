package app

import (
	"strconv"
	"strings"
	"time"

	"sshguard-unban/lambdas/lookup"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/ssmcmd"
)

// Key prefixes in the one data bucket. Each function is granted only the
// prefixes it uses (cdk/), and reads them from its environment.
const (
	BanlistPrefix       = "banlists/"
	CommandOutputPrefix = "command-output/"
	ReplyMarkPrefix     = "replies/"
	// CommandsPrefix holds the request path's shared state: the commands
	// requests share (coalesce), each unban command's outcome and its
	// poller's lease. It lives minutes; a lifecycle rule expires it.
	CommandsPrefix       = "commands/"
	CoalescePrefix       = CommandsPrefix + "coalesce/"
	CommandOutcomePrefix = CommandsPrefix + "outcome/"
	CommandLeasePrefix   = CommandsPrefix + "lease/"
	// OutboxPrefix holds replies waiting to be posted (merged per room).
	OutboxPrefix = "outbox/"
)

// Defaults of the settings a deployment may change; the code falls back to
// the same values when a variable is unset, and cdk/ uses them as its
// context defaults (a test in cdk/ checks the template against them).
var (
	DefaultFreshness      = lookup.DefaultFreshness
	DefaultCommandTimeout = ssmcmd.DefaultCommandTimeout
)

// Deployment is everything that differs between deployments of the
// functions: names and ids of the resources around them, and the settings an
// operator chooses. cdk/ fills it with CloudFormation tokens, the local mode
// with its local names; Environment turns it into each function's variables.
type Deployment struct {
	StateMachineARN string // the unban state machine (webhook)
	// The Chatwork tokens' secrets in Secrets Manager, one per token.
	WebhookSecretID string // read by the webhook only
	APISecretID     string // read by notify only
	ChatworkAPIURL  string // empty: the real Chatwork API
	BotAccountID    string
	AllowedRooms    []string
	NotifyRoomID    string
	SRERoomID       string
	Locale          string
	Bucket          string // the data bucket: ban lists, command output, reply marks
	UnbanDocument   string
	ReportDocument  string
	TagKey          string
	TagValue        string
	Freshness       time.Duration // 0: DefaultFreshness
	CommandTimeout  time.Duration // 0: DefaultCommandTimeout
	// S3PathStyle is for S3-compatible servers without virtual-host
	// buckets (the local mode's).
	S3PathStyle bool
}

// Environment is the one source of a function's environment variables: what
// each handler built by NewHandler reads, and nothing else. LOG_LEVEL
// (read by lambdas/bootstrap) is added by the caller.
func Environment(handler string, d Deployment) map[string]string {
	secs := func(v, def time.Duration) string {
		if v <= 0 {
			v = def
		}
		return strconv.Itoa(int(v / time.Second))
	}
	vars := map[string]string{}
	set := func(kv ...string) {
		for i := 0; i < len(kv); i += 2 {
			vars[kv[i]] = kv[i+1]
		}
	}
	s3 := func() {
		if d.S3PathStyle {
			set("S3_FORCE_PATH_STYLE", "true")
		}
	}
	delivery := func() {
		set("TARGET_TAG_KEY", d.TagKey, "TARGET_TAG_VALUE", d.TagValue,
			"COMMAND_OUTPUT_BUCKET", d.Bucket, "COMMAND_OUTPUT_PREFIX", CommandOutputPrefix,
			"COMMAND_TIMEOUT_SECONDS", secs(d.CommandTimeout, DefaultCommandTimeout))
	}
	switch handler {
	case functions.Webhook:
		set("STATE_MACHINE_ARN", d.StateMachineARN, "BOT_ACCOUNT_ID", d.BotAccountID,
			"ALLOWED_ROOMS", strings.Join(d.AllowedRooms, ","), "CHATWORK_WEBHOOK_SECRET_ID", d.WebhookSecretID)
	case functions.Parse:
	case functions.Lookup:
		set("BANLIST_BUCKET", d.Bucket, "BANLIST_PREFIX", BanlistPrefix,
			"FRESHNESS_SECONDS", secs(d.Freshness, DefaultFreshness))
		s3()
	case functions.Unban:
		set("UNBAN_DOCUMENT", d.UnbanDocument, "BANLIST_BUCKET", d.Bucket)
		delivery()
		s3()
	case functions.WaitForCommand:
		set("COMMAND_OUTPUT_BUCKET", d.Bucket, "COMMAND_OUTPUT_PREFIX", CommandOutputPrefix, "BANLIST_BUCKET", d.Bucket,
			"TARGET_TAG_KEY", d.TagKey, "TARGET_TAG_VALUE", d.TagValue)
		s3()
	case functions.RefreshList:
		set("REPORT_DOCUMENT", d.ReportDocument, "BANLIST_BUCKET", d.Bucket, "BANLIST_PREFIX", BanlistPrefix)
		delivery()
		s3()
	case functions.Notify:
		set("NOTIFY_ROOM_ID", d.NotifyRoomID, "SRE_ROOM_ID", d.SRERoomID, "LOCALE", d.Locale,
			"BANLIST_BUCKET", d.Bucket, "REPLY_MARK_PREFIX", ReplyMarkPrefix, "CHATWORK_API_SECRET_ID", d.APISecretID)
		if d.ChatworkAPIURL != "" {
			set("CHATWORK_API_URL", d.ChatworkAPIURL)
		}
		s3()
	default:
		return nil
	}
	return vars
}
