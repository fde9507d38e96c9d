package app

import (
	"slices"
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

// The webhook's route on the HTTP API (cdk/api.go; local/system serves the
// same through local/apigw): POST WebhookPathPrefix + a key only the
// deployment and Chatwork's webhook setting know. A flood on any other path
// gets API Gateway's 404 and never touches the route's throttle, so it
// cannot starve Chatwork's deliveries, which are never resent.
const (
	WebhookPathPrefix = "/chatwork/"
	// WebhookPathKeyPattern: at least 128 random bits, as `openssl rand
	// -hex 16` prints, in characters a path segment keeps as they are.
	WebhookPathKeyPattern = `^[A-Za-z0-9_-]{32,128}$`
	// Each route's throttle (the stage's default route throttling).
	// Chatwork delivers one request per mention: 200 people asking within
	// 10 s is 20 a second.
	DefaultAPIRateLimit  = 25
	DefaultAPIBurstLimit = 50
)

// Defaults of the settings a deployment may change; the code falls back to
// the same values when a variable is unset, and cdk/ uses them as its
// context defaults (a test in cdk/ checks the template against them).
var (
	DefaultFreshness      = lookup.DefaultFreshness
	DefaultCommandTimeout = ssmcmd.DefaultCommandTimeout
	// DefaultPolicy is the policy a deployment starts from: 5 addresses an
	// hour and 20 a day per asker, 3 unbans a day per address, approval for
	// an address the lists show blocked on 10 hosts or more.
	DefaultPolicy = Policy{AccountPerHour: 5, AccountPerDay: 20, AddressPerDay: 3, ManyHosts: 10}
)

// ApprovalWait is how long an approval request waits for an SRE: the
// TimeoutSeconds of AskSREsToApprove in statemachine/unban.asl.json (a test
// there checks the two agree).
const ApprovalWait = time.Hour

// Policy is who may unban what (lambdas/policy). Zero quotas mean none.
type Policy struct {
	AllowedAccounts      []string // may always ask
	AllowedOrganizations []string // Chatwork organization ids whose members may ask
	SREAccounts          []string // may approve and deny, in the SRE room
	AccountPerHour       int
	AccountPerDay        int
	AddressPerDay        int
	ManyHosts            int
	NeverSelfService     []string // prefixes that always need approval
}

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
	PolicyTable string // the DynamoDB table of quotas, approvals, member cache, request history
	Policy      Policy
	// PublicURL is the HTTP API's base URL ("https://…/"): notify links
	// to its /ip page and signs links to its /bans page. Empty: replies
	// name a public what-is-my-IP page and the bot gives no page links.
	PublicURL string
	// PageSecretID is the secret whose SecretString signs the ban-list
	// page's links (read by notify and the page).
	PageSecretID string
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
	chatworkAPI := func() {
		set("CHATWORK_API_SECRET_ID", d.APISecretID)
		if d.ChatworkAPIURL != "" {
			set("CHATWORK_API_URL", d.ChatworkAPIURL)
		}
	}
	list := func(l []string) string { return strings.Join(l, ",") }
	switch handler {
	case functions.Webhook:
		// The SRE room too: SREs answer approval requests there.
		rooms := d.AllowedRooms
		if d.SRERoomID != "" && !slices.Contains(rooms, d.SRERoomID) {
			rooms = append(slices.Clone(rooms), d.SRERoomID)
		}
		set("STATE_MACHINE_ARN", d.StateMachineARN, "BOT_ACCOUNT_ID", d.BotAccountID,
			"ALLOWED_ROOMS", list(rooms), "CHATWORK_WEBHOOK_SECRET_ID", d.WebhookSecretID)
	case functions.Policy:
		p := d.Policy
		set("POLICY_TABLE", d.PolicyTable, "SRE_ROOM_ID", d.SRERoomID,
			"ALLOWED_ACCOUNTS", list(p.AllowedAccounts), "ALLOWED_ORGANIZATIONS", list(p.AllowedOrganizations),
			"SRE_ACCOUNTS", list(p.SREAccounts), "NEVER_SELF_SERVICE", list(p.NeverSelfService),
			"QUOTA_ACCOUNT_PER_HOUR", strconv.Itoa(p.AccountPerHour), "QUOTA_ACCOUNT_PER_DAY", strconv.Itoa(p.AccountPerDay),
			"QUOTA_ADDRESS_PER_DAY", strconv.Itoa(p.AddressPerDay), "APPROVAL_MANY_HOSTS", strconv.Itoa(p.ManyHosts))
		chatworkAPI()
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
			"BANLIST_BUCKET", d.Bucket, "REPLY_MARK_PREFIX", ReplyMarkPrefix,
			"BOT_ACCOUNT_ID", d.BotAccountID, "POLICY_TABLE", d.PolicyTable,
			"PUBLIC_URL", d.PublicURL, "PAGE_SECRET_ID", d.PageSecretID)
		chatworkAPI()
		s3()
	case functions.Page:
		set("BANLIST_BUCKET", d.Bucket, "BANLIST_PREFIX", BanlistPrefix,
			"FRESHNESS_SECONDS", secs(d.Freshness, DefaultFreshness),
			"POLICY_TABLE", d.PolicyTable, "STATE_MACHINE_ARN", d.StateMachineARN,
			"SRE_ACCOUNTS", list(d.Policy.SREAccounts), "LOCALE", d.Locale, "PAGE_SECRET_ID", d.PageSecretID)
		s3()
	default:
		return nil
	}
	return vars
}
