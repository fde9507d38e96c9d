package main

import (
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/lambdas/policy"
)

// Config is everything an operator may change without touching code. Every
// field comes from CDK context (cdk.json or `-c key=value`); Defaults holds
// the values used when a key is absent. No field is account-specific, so the
// repository's cdk.json works in any account.
type Config struct {
	// Chatwork side.
	BotAccountID string   // botAccountId: the bot's Chatwork account id
	AllowedRooms []string // allowedRooms: room ids the bot answers in
	NotifyRoomID string   // notifyRoomId: room for "new ban" notices
	SRERoomID    string   // sreRoomId: room for failure alerts
	Locale       string   // locale: "ja" or "en"

	// Hosts.
	TargetTagKey   string // targetTagKey: EC2 tag that marks hosts the bot may touch
	TargetTagValue string // targetTagValue

	// Timing.
	RefreshSchedule       string // refreshSchedule: EventBridge Scheduler expression
	FreshnessSeconds      int    // freshnessSeconds: a ban list older than this is stale
	CommandTimeoutSeconds int    // commandTimeoutSeconds: SSM command timeout

	// Operations.
	LogRetentionDays           int     // logRetentionDays: every log group and the access-log bucket
	LogLevel                   string  // logLevel: LOG_LEVEL of every function
	WebhookSecretName          string  // webhookSecretName: use this existing secret for the webhook token
	APISecretName              string  // apiSecretName: use this existing secret for the API token
	AlarmEmail                 string  // alarmEmail: optional e-mail subscription to the alarm topic
	APIRateLimit               float64 // apiRateLimit: steady-state requests/second on the HTTP API
	APIBurstLimit              int     // apiBurstLimit: burst on the HTTP API
	WebhookReservedConcurrency int     // webhookReservedConcurrency: 0 = no reservation

	// Policy (README, "Policy"): who may unban what.
	AllowedAccounts      []string // allowedAccounts: account ids that may always ask
	AllowedOrganizations []string // allowedOrganizations: Chatwork organization ids whose members may ask
	SREAccounts          []string // sreAccounts: account ids that may approve and deny
	QuotaAccountPerHour  int      // quotaAccountPerHour: addresses per asker per hour (0 = none)
	QuotaAccountPerDay   int      // quotaAccountPerDay
	QuotaAddressPerDay   int      // quotaAddressPerDay: unbans of one address per day
	ApprovalManyHosts    int      // approvalManyHosts: approval when the lists show it on this many hosts (0 = never)
	NeverSelfService     []string // neverSelfService: prefixes that always need an SRE's approval
}

// Defaults are the values used for context keys that are not set. cdk.json
// holds none of them (only CDK feature flags), so this is the one place.
// The refresh runs every 5 minutes, not every minute: the lists are only
// recorded next to the live answers, and at one minute its S3 requests
// alone cost about $4.5 a month (README, "Monthly cost estimate"); a list
// is stale after three periods. The command timeout is the one the
// function code falls back to.
var Defaults = Config{
	TargetTagKey:               "sshguard-unban",
	TargetTagValue:             "enabled",
	RefreshSchedule:            "rate(5 minutes)",
	Locale:                     "ja",
	FreshnessSeconds:           900,
	CommandTimeoutSeconds:      int(app.DefaultCommandTimeout / time.Second),
	LogRetentionDays:           90,
	LogLevel:                   "info",
	APIRateLimit:               app.DefaultAPIRateLimit,
	APIBurstLimit:              app.DefaultAPIBurstLimit,
	WebhookReservedConcurrency: 5,
	QuotaAccountPerHour:        app.DefaultPolicy.AccountPerHour,
	QuotaAccountPerDay:         app.DefaultPolicy.AccountPerDay,
	QuotaAddressPerDay:         app.DefaultPolicy.AddressPerDay,
	ApprovalManyHosts:          app.DefaultPolicy.ManyHosts,
}

// policy is the functions' view of the policy settings.
func (c Config) policy() app.Policy {
	return app.Policy{
		AllowedAccounts: c.AllowedAccounts, AllowedOrganizations: c.AllowedOrganizations, SREAccounts: c.SREAccounts,
		AccountPerHour: c.QuotaAccountPerHour, AccountPerDay: c.QuotaAccountPerDay, AddressPerDay: c.QuotaAddressPerDay,
		ManyHosts: c.ApprovalManyHosts, NeverSelfService: c.NeverSelfService,
	}
}

var (
	chatworkIDRe = regexp.MustCompile(`^[0-9]{1,20}$`)
	// Tag keys/values as EC2 accepts them, minus characters that would need
	// quoting in an IAM condition key or a SendCommand target.
	tagKeyRe   = regexp.MustCompile(`^[A-Za-z0-9 _.:/=+\-@]{1,128}$`)
	tagValueRe = regexp.MustCompile(`^[A-Za-z0-9 _.:/=+\-@]{0,256}$`)
	scheduleRe = regexp.MustCompile(`^(rate|cron)\(.+\)$`)
	// The secret name as Secrets Manager accepts it.
	secretNameRe = regexp.MustCompile(`^[A-Za-z0-9/_+=.@\-]{1,512}$`)
)

// retentionDays maps the day counts CloudWatch Logs accepts to CDK's enum
// (whose Go values are names, not numbers).
var retentionDays = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS,
	5: awslogs.RetentionDays_FIVE_DAYS, 7: awslogs.RetentionDays_ONE_WEEK,
	14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS,
	120: awslogs.RetentionDays_FOUR_MONTHS, 150: awslogs.RetentionDays_FIVE_MONTHS,
	180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS,
	731: awslogs.RetentionDays_TWO_YEARS, 1096: awslogs.RetentionDays_THREE_YEARS,
	1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS,
	3288: awslogs.RetentionDays_NINE_YEARS, 3653: awslogs.RetentionDays_TEN_YEARS,
}

// Retention is LogRetentionDays as CDK's enum.
func (c Config) Retention() awslogs.RetentionDays { return retentionDays[c.LogRetentionDays] }

// contextGetter is the part of constructs.Node the loader needs, so tests can
// feed a plain map.
type contextGetter interface {
	TryGetContext(key *string) interface{}
}

var _ contextGetter = constructs.Node(nil)

// LoadConfig reads the configuration from CDK context over Defaults and
// validates it. Values typed in cdk.json arrive as JSON (numbers, arrays);
// values given with `-c` always arrive as strings: both are accepted.
func LoadConfig(node contextGetter) (Config, error) {
	c := Defaults
	var errs []string
	str := func(key string, dst *string) {
		v := node.TryGetContext(&key)
		if v == nil {
			return
		}
		switch t := v.(type) {
		case string:
			*dst = strings.TrimSpace(t)
		case float64:
			*dst = strconv.FormatFloat(t, 'f', -1, 64)
		default:
			errs = append(errs, fmt.Sprintf("%s: want a string, got %T", key, v))
		}
	}
	num := func(key string, dst *float64) {
		v := node.TryGetContext(&key)
		if v == nil {
			return
		}
		switch t := v.(type) {
		case float64:
			*dst = t
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a number", key, t))
				return
			}
			*dst = f
		default:
			errs = append(errs, fmt.Sprintf("%s: want a number, got %T", key, v))
		}
	}
	integer := func(key string, dst *int) {
		f := float64(*dst)
		num(key, &f)
		if f != float64(int(f)) {
			errs = append(errs, fmt.Sprintf("%s: %v is not an integer", key, f))
			return
		}
		*dst = int(f)
	}

	str("botAccountId", &c.BotAccountID)
	str("notifyRoomId", &c.NotifyRoomID)
	str("sreRoomId", &c.SRERoomID)
	str("locale", &c.Locale)
	str("targetTagKey", &c.TargetTagKey)
	str("targetTagValue", &c.TargetTagValue)
	str("refreshSchedule", &c.RefreshSchedule)
	str("logLevel", &c.LogLevel)
	str("webhookSecretName", &c.WebhookSecretName)
	str("apiSecretName", &c.APISecretName)
	// One secret held both tokens before they were split: a deploy with the
	// old key must not silently switch to two new, empty secrets.
	var old string
	str("secretName", &old)
	if old != "" {
		errs = append(errs, "secretName: the tokens now live in two secrets; use webhookSecretName and apiSecretName (README, Configuration)")
	}
	str("alarmEmail", &c.AlarmEmail)
	integer("freshnessSeconds", &c.FreshnessSeconds)
	integer("commandTimeoutSeconds", &c.CommandTimeoutSeconds)
	integer("logRetentionDays", &c.LogRetentionDays)
	integer("apiBurstLimit", &c.APIBurstLimit)
	integer("webhookReservedConcurrency", &c.WebhookReservedConcurrency)
	num("apiRateLimit", &c.APIRateLimit)
	integer("quotaAccountPerHour", &c.QuotaAccountPerHour)
	integer("quotaAccountPerDay", &c.QuotaAccountPerDay)
	integer("quotaAddressPerDay", &c.QuotaAddressPerDay)
	integer("approvalManyHosts", &c.ApprovalManyHosts)
	// Lists of ids and prefixes: a JSON array in cdk.json (numbers are
	// ids too), or "1,2,3" from the command line.
	ids := func(key string, dst *[]string) {
		switch v := node.TryGetContext(&key).(type) {
		case nil:
		case string:
			*dst = splitList(v)
		case []interface{}:
			for _, e := range v {
				switch t := e.(type) {
				case string:
					*dst = append(*dst, strings.TrimSpace(t))
				case float64:
					*dst = append(*dst, strconv.FormatFloat(t, 'f', -1, 64))
				default:
					errs = append(errs, fmt.Sprintf("%s: element %v is not an id", key, e))
				}
			}
		default:
			errs = append(errs, fmt.Sprintf("%s: want a list or a comma-separated string, got %T", key, v))
		}
	}
	ids("allowedRooms", &c.AllowedRooms)
	ids("allowedAccounts", &c.AllowedAccounts)
	ids("allowedOrganizations", &c.AllowedOrganizations)
	ids("sreAccounts", &c.SREAccounts)
	ids("neverSelfService", &c.NeverSelfService)

	if err := c.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("invalid CDK context: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate rejects values that would deploy a broken or unsafe stack. Empty
// Chatwork ids are allowed (the repository's cdk.json has none): the stack
// then deploys but the bot answers nobody, and Missing lists what to set.
func (c Config) Validate() error {
	var errs []string
	id := func(name, v string) {
		if v != "" && !chatworkIDRe.MatchString(v) {
			errs = append(errs, fmt.Sprintf("%s: %q is not a Chatwork id (digits only)", name, v))
		}
	}
	id("botAccountId", c.BotAccountID)
	id("notifyRoomId", c.NotifyRoomID)
	id("sreRoomId", c.SRERoomID)
	for _, r := range c.AllowedRooms {
		id("allowedRooms", r)
	}
	for _, v := range c.AllowedAccounts {
		id("allowedAccounts", v)
	}
	for _, v := range c.AllowedOrganizations {
		id("allowedOrganizations", v)
	}
	for _, v := range c.SREAccounts {
		id("sreAccounts", v)
	}
	if _, err := policy.ParsePrefixes(c.NeverSelfService); err != nil {
		errs = append(errs, fmt.Sprintf("neverSelfService: %v", err))
	}
	for _, q := range []struct {
		key string
		n   int
	}{{"quotaAccountPerHour", c.QuotaAccountPerHour}, {"quotaAccountPerDay", c.QuotaAccountPerDay},
		{"quotaAddressPerDay", c.QuotaAddressPerDay}, {"approvalManyHosts", c.ApprovalManyHosts}} {
		if q.n < 0 {
			errs = append(errs, fmt.Sprintf("%s: %d is negative (0 means none)", q.key, q.n))
		}
	}
	if len(c.SREAccounts) > 0 && c.SRERoomID == "" {
		errs = append(errs, "sreAccounts: approvals are answered in the SRE room; set sreRoomId")
	}
	if c.Locale != "ja" && c.Locale != "en" {
		errs = append(errs, fmt.Sprintf("locale: %q is neither ja nor en", c.Locale))
	}
	if !tagKeyRe.MatchString(c.TargetTagKey) || strings.HasPrefix(strings.ToLower(c.TargetTagKey), "aws:") {
		errs = append(errs, fmt.Sprintf("targetTagKey: %q is not a usable EC2 tag key", c.TargetTagKey))
	}
	if c.TargetTagValue == "" || !tagValueRe.MatchString(c.TargetTagValue) {
		// An empty value would make the tag condition match any host
		// carrying the key with an empty value: require an explicit one.
		errs = append(errs, fmt.Sprintf("targetTagValue: %q is not a usable, non-empty EC2 tag value", c.TargetTagValue))
	}
	if !scheduleRe.MatchString(c.RefreshSchedule) {
		errs = append(errs, fmt.Sprintf("refreshSchedule: %q is not rate(...) or cron(...)", c.RefreshSchedule))
	}
	if c.FreshnessSeconds < 60 || c.FreshnessSeconds > 86400 {
		errs = append(errs, fmt.Sprintf("freshnessSeconds: %d is outside 60..86400", c.FreshnessSeconds))
	}
	// SendCommand's TimeoutSeconds accepts 30..2592000; the Express refresh
	// must wait for the report command and still store the lists within
	// its five minutes.
	if c.CommandTimeoutSeconds < 30 || c.CommandTimeoutSeconds > maxCommandTimeoutSeconds {
		errs = append(errs, fmt.Sprintf("commandTimeoutSeconds: %d is outside 30..%d (the refresh, an Express workflow, must end within 5 minutes)", c.CommandTimeoutSeconds, maxCommandTimeoutSeconds))
	}
	if _, ok := retentionDays[c.LogRetentionDays]; !ok {
		errs = append(errs, fmt.Sprintf("logRetentionDays: %d is not a CloudWatch Logs retention value", c.LogRetentionDays))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Sprintf("logLevel: %q is not debug, info, warn or error", c.LogLevel))
	}
	for k, v := range map[string]string{"webhookSecretName": c.WebhookSecretName, "apiSecretName": c.APISecretName} {
		if v != "" && !secretNameRe.MatchString(v) {
			errs = append(errs, fmt.Sprintf("%s: %q is not a Secrets Manager name", k, v))
		}
	}
	if c.WebhookSecretName != "" && c.WebhookSecretName == c.APISecretName {
		errs = append(errs, "webhookSecretName and apiSecretName name the same secret: each token needs its own")
	}
	if c.AlarmEmail != "" {
		if a, err := mail.ParseAddress(c.AlarmEmail); err != nil || a.Address != c.AlarmEmail {
			errs = append(errs, fmt.Sprintf("alarmEmail: %q is not a plain e-mail address", c.AlarmEmail))
		}
	}
	if c.APIRateLimit <= 0 || c.APIRateLimit > 1000 {
		errs = append(errs, fmt.Sprintf("apiRateLimit: %v is outside (0, 1000]", c.APIRateLimit))
	}
	if c.APIBurstLimit < 1 || c.APIBurstLimit > 5000 {
		errs = append(errs, fmt.Sprintf("apiBurstLimit: %d is outside 1..5000", c.APIBurstLimit))
	}
	if c.WebhookReservedConcurrency < 0 || c.WebhookReservedConcurrency > 100 {
		errs = append(errs, fmt.Sprintf("webhookReservedConcurrency: %d is outside 0..100", c.WebhookReservedConcurrency))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Missing names the context keys without which the bot cannot work; the app
// reports them as synth warnings rather than failing, so an offline synth of
// the repository's cdk.json still succeeds.
func (c Config) Missing() []string {
	var m []string
	if c.BotAccountID == "" {
		m = append(m, "botAccountId")
	}
	if len(c.AllowedRooms) == 0 {
		m = append(m, "allowedRooms")
	}
	if c.NotifyRoomID == "" {
		m = append(m, "notifyRoomId")
	}
	if c.SRERoomID == "" {
		m = append(m, "sreRoomId")
	}
	return m
}
