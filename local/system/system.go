// Package system runs the whole product on one machine, on 127.0.0.1 only:
// the webhook Lambda behind a local HTTP endpoint, the task Lambdas served
// to the real ASL (executed by aws-local-stepfunctions), and local endpoints
// that speak the AWS wire protocols (Step Functions, SSM, Secrets Manager,
// S3) and the Chatwork API. Hosts are real sshguard instances in network
// namespaces when the machine allows it (root, sshguard installed), and
// clearly labelled simulated hosts otherwise.
//
// The production code does not know it runs here: every handler is built by
// lambdas/app from environment variables and an aws.Config, exactly as the
// Lambda bootstrap does; only the endpoint, the credentials and the names
// differ.
package system

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"sshguard-unban/host"
	"sshguard-unban/host/lab"
	"sshguard-unban/lambdas/app"
	"sshguard-unban/lambdas/notify"
	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/local/apigw"
	"sshguard-unban/local/awsapi"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/dynalite"
	"sshguard-unban/local/lambdapool"
	"sshguard-unban/local/latency"
	"sshguard-unban/local/s3local"
	"sshguard-unban/local/secretsfake"
	"sshguard-unban/local/sfnfake"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/simhost"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/pagelink"
	"sshguard-unban/shared/signature"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/statemachine"
)

// The local deployment's names and ids. Chatwork ids are numeric like the
// real ones.
const (
	Region          = "ap-northeast-1"
	Account         = "000000000000"
	Bucket          = "sshguard-unban-local"
	BotAccountID    = "1000001"
	AskRoomID       = "2000001" // where employees talk to the bot
	NotifyRoomID    = "2000002" // ban notifications
	SRERoomID       = "2000003" // alerts
	UnbanDocument   = "SshguardUnban-Unban"
	ReportDocument  = "SshguardUnban-Report"
	TagKey          = "sshguard-unban"
	TagValue        = "enabled"
	webhookSecretID = "sshguard-unban/chatwork-webhook"
	apiSecretID     = "sshguard-unban/chatwork-api"
	pageSecretID    = "sshguard-unban/page-key"
	PolicyTable     = "sshguard-unban-policy"
	// The company's Chatwork organization, a partner company's guest in
	// the asking room, and the SRE who answers approvals (in the SRE room).
	OrganizationID = "5000001"
	GuestAccountID = "4000001"
	SREAccountID   = "9000001"
	guestOrgID     = 7000001
)

// addressPattern is the unban document's allowedPattern.
var addressPattern = regexp.MustCompile(ssmdoc.AddressItemPattern)

// HostSpec describes one host.
type HostSpec struct {
	Name        string
	Backend     string // lab backend: "nft-sets", "iptables", "ipset"
	IPv4Subnet  int
	Blacklist   bool
	Blacklisted []string // on the blacklist before sshguard starts (Blacklist)
}

// DefaultHosts are three hosts with different firewall backends.
var DefaultHosts = []HostSpec{
	{Name: "web-1", Backend: "nft-sets"},
	{Name: "git-1", Backend: "iptables"},
	{Name: "db-1", Backend: "ipset"},
}

// Options configure Start.
type Options struct {
	Hosts []HostSpec // default DefaultHosts
	// Simulate forces simulated hosts; otherwise real ones are used when
	// lab.Available() and simulated ones when not (RequireReal turns that
	// into an error).
	Simulate, RequireReal bool
	Locale                string        // "ja" (default) or "en"
	Wait                  time.Duration // every Wait state (default 200 ms)
	RetryInterval         time.Duration // every Retry delay (default 200 ms)
	Freshness             time.Duration // ban-list freshness bound (default 5 min)
	// Latency, if set, makes every local endpoint take the time the model
	// gives its production counterpart (local/latency), and the state
	// machines use their own Wait and Retry settings (Wait and
	// RetryInterval are then ignored).
	Latency *latency.Profile
	// Policy replaces the local policy (default: app.DefaultPolicy for
	// members of OrganizationID, SREAccountID approving).
	Policy *app.Policy
	// ApprovalTimeout, if set, is how long AskSREsToApprove waits (the
	// ASL's hour otherwise), so a test can see a request no SRE answered.
	ApprovalTimeout time.Duration
	// OnMessage sees every Chatwork message the bot posts or edits.
	OnMessage func(chatworkfake.Message)
	// Log receives the components' structured logs (default: discarded).
	Log io.Writer
}

// Host is one local host.
type Host struct {
	InstanceID string
	Name       string
	Kind       string // "nft-sets", "iptables", "ipset" or "simulated"
	lab        *lab.Host
	sim        *simhost.Host
	mu         sync.Mutex
	outputs    []string // unban outputs, for the burst test's change count
}

// System is the running product.
type System struct {
	Hosts  []*Host
	Chat   *chatworkfake.Server
	SSM    *ssmfake.Server
	SFN    *sfnfake.Fake
	Bridge *taskbridge.Bridge
	S3     *s3local.Server
	// APIURL is the HTTP API's base (an apigw.Router, routed and throttled
	// as the stage in AWS); WebhookURL is the webhook's route on it, with
	// this run's unguessable key (app.WebhookPathPrefix).
	APIURL     string
	WebhookURL string
	// PublicURL is APIURL with a slash, as notify links to the pages
	// (ip, bans).
	PublicURL string
	AWSURL    string
	ChatURL   string // the Chatwork API base
	// Simulated is true when the hosts are simulated, with the reason.
	Simulated   bool
	SimulateWhy string

	deploy    app.Deployment
	awsCfg    aws.Config
	sfnClient *sfn.Client
	verifier  *signature.Verifier
	// The run's Chatwork tokens (random per run), kept for the test that
	// checks no log line carries them.
	apiToken, webhookToken string
	pageKey                []byte // signs the ban-list page's links
	runner                 *sfnrunner.Runner
	dynamo                 *dynalite.Server
	servers                []*httptest.Server
	membersMu              sync.Mutex
	members                map[string]map[string]int64 // room → account → organization
	nextMsg                atomic.Int64
	closeOnce              sync.Once
}

// Start brings everything up. Close it when done.
func Start(ctx context.Context, opts Options) (_ *System, err error) {
	s := &System{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if len(opts.Hosts) == 0 {
		opts.Hosts = DefaultHosts
	}
	logOut := opts.Log
	if logOut == nil {
		logOut = io.Discard
	}
	logger := slog.New(slog.NewJSONHandler(logOut, nil))
	s.nextMsg.Store(time.Now().UnixMilli() * 1_000_000) // 19 digits, like Chatwork's

	// Tokens are random per run: nothing secret is in the code.
	s.apiToken, s.webhookToken = randomToken(), base64.StdEncoding.EncodeToString([]byte(randomToken()))
	apiToken, webhookToken := s.apiToken, s.webhookToken
	if s.verifier, err = signature.New(webhookToken); err != nil {
		return nil, err
	}

	// S3, Secrets Manager, SSM and Step Functions behind one AWS endpoint
	// (served below, once the Step Functions fake exists).
	s.S3 = s3local.New(Bucket)
	// One secret per token, as cdk/ creates them.
	webhookJSON, _ := json.Marshal(map[string]string{"webhook_token": webhookToken})
	apiJSON, _ := json.Marshal(map[string]string{"api_token": apiToken})
	s.pageKey = []byte(randomToken() + randomToken())
	secretsSrv := secretsfake.New(map[string]string{webhookSecretID: string(webhookJSON), apiSecretID: string(apiJSON), pageSecretID: string(s.pageKey)})
	s.SSM = ssmfake.New()
	s.SSM.Region = Region
	s.SSM.Log = logger.With("component", "ssm")
	s.SSM.AddDocument(ssmfake.Document{Name: UnbanDocument, StepName: ssmdoc.UnbanStep, Parameters: map[string]*regexp.Regexp{
		ssmdoc.AddressesParam: addressPattern, ssmdoc.RemoveBlacklistedParam: regexp.MustCompile(ssmdoc.RemoveBlacklistedPattern)}})
	s.SSM.AddDocument(ssmfake.Document{Name: ReportDocument, StepName: ssmdoc.ReportStep, Parameters: map[string]*regexp.Regexp{}})

	sampler := latency.NewSampler(uint64(time.Now().UnixNano()))
	lat := func(d func(latency.Profile) latency.Dist) latency.Dist {
		if opts.Latency == nil {
			return latency.Dist{}
		}
		return d(*opts.Latency)
	}
	s.SSM.Latency, s.SSM.Sampler = opts.Latency, sampler

	s.Chat = chatworkfake.New(apiToken)
	s.Chat.OnMessage = opts.OnMessage
	// The guest is in the asking room from the start; employees join as
	// they first speak (Say), the SRE is in the SRE room.
	s.members = map[string]map[string]int64{}
	s.join(AskRoomID, GuestAccountID, guestOrgID)
	s.join(SRERoomID, SREAccountID, orgNumber(OrganizationID))

	// The policy table: npm dynalite in memory, behind the AWS endpoint.
	root, err := sfnrunner.RepoRoot()
	if err != nil {
		return nil, err
	}
	if s.dynamo, err = dynalite.Start(ctx, filepath.Join(root, "node_modules")); err != nil {
		return nil, err
	}
	if err := dynalite.CreateTable(ctx, s.dynamo.Client(), PolicyTable); err != nil {
		return nil, err
	}
	dynamoURL, err := url.Parse(s.dynamo.Endpoint())
	if err != nil {
		return nil, err
	}
	if opts.Latency != nil {
		s.Chat.Latency = sampler.Func(opts.Latency.ChatworkPost)
	}
	s.ChatURL = s.serve(s.Chat) + chatworkfake.BasePath

	if err := s.startHosts(ctx, opts); err != nil {
		return nil, err
	}

	// The Step Functions endpoint runs the real ASL (statemachine embeds the
	// files); its tasks call the bridge, which serves the handlers over the
	// Lambda Invoke API.
	s.Bridge = taskbridge.New(nil)
	s.Bridge.Latency, s.Bridge.Sampler = opts.Latency, sampler
	bridgeURL := s.serve(s.Bridge)
	defaults := sfnrunner.Overrides{BridgeURL: bridgeURL}
	if opts.ApprovalTimeout > 0 {
		defaults.TaskTimeoutSeconds = map[string]float64{"AskSREsToApprove": opts.ApprovalTimeout.Seconds()}
	}
	if opts.Latency != nil {
		defaults.Latency = opts.Latency.StepFunctions(uint32(time.Now().UnixNano()))
	} else {
		wait, retry := orDefault(opts.Wait, 200*time.Millisecond), orDefault(opts.RetryInterval, 200*time.Millisecond)
		defaults.WaitMillis = map[string]int{"*": int(wait.Milliseconds())}
		defaults.RetryIntervalMillis = map[string]int{"*": int(retry.Milliseconds())}
	}
	s.runner, err = sfnrunner.Start(ctx, sfnrunner.Config{
		Machines:      map[string][]byte{"unban": []byte(statemachine.Unban), "refresh": []byte(statemachine.Refresh)},
		Substitutions: statemachine.LocalSubstitutions(Region, Account),
		Region:        Region, Account: Account,
		Defaults: defaults,
		Stderr:   logOut,
	})
	if err != nil {
		return nil, err
	}
	s.SFN = sfnfake.New(s.runner, sfnfake.Options{})

	s.AWSURL = s.serve(awsapi.Router{
		SSM:            s.SSM,
		StepFunctions:  sampler.Delay(s.SFN, lat(func(p latency.Profile) latency.Dist { return p.SFNStartExecution })),
		SecretsManager: secretsSrv,
		DynamoDB:       sampler.Delay(httputil.NewSingleHostReverseProxy(dynamoURL), lat(func(p latency.Profile) latency.Dist { return p.S3Call })),
		S3:             sampler.Delay(s.S3, lat(func(p latency.Profile) latency.Dist { return p.S3Call })),
	})
	s.SSM.S3 = s.S3Client()

	// The API, routed and throttled as the stage in AWS: the webhook and
	// the two pages on one server (its URL goes into notify's environment,
	// so it is served first and routed once the functions are built).
	api := apigw.NewRouter(apigw.Throttle{Rate: app.DefaultAPIRateLimit, Burst: app.DefaultAPIBurstLimit})
	s.APIURL = s.serve(sampler.Delay(api, lat(func(p latency.Profile) latency.Dist { return p.APIGateway })))
	s.PublicURL = s.APIURL + "/"

	// The functions' variables come from the same lambdas/app.Environment
	// cdk/ uses; only the names and endpoints are local.
	s.deploy = app.Deployment{
		StateMachineARN: fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:unban", Region, Account),
		WebhookSecretID: webhookSecretID, APISecretID: apiSecretID, ChatworkAPIURL: s.ChatURL,
		BotAccountID: BotAccountID, AllowedRooms: []string{AskRoomID},
		NotifyRoomID: NotifyRoomID, SRERoomID: SRERoomID, Locale: opts.Locale,
		Bucket: Bucket, UnbanDocument: UnbanDocument, ReportDocument: ReportDocument,
		TagKey: TagKey, TagValue: TagValue,
		Freshness: orDefault(opts.Freshness, app.DefaultFreshness), CommandTimeout: app.DefaultCommandTimeout,
		S3PathStyle:  true,
		PolicyTable:  PolicyTable,
		Policy:       localPolicy(opts.Policy),
		PublicURL:    s.PublicURL,
		PageSecretID: pageSecretID,
	}
	s.awsCfg, err = config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithBaseEndpoint(s.AWSURL),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")),
		// Loopback only: no proxy, and connections kept for bursts.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.Proxy, tr.MaxIdleConnsPerHost = nil, 64
		})),
	)
	if err != nil {
		return nil, err
	}
	prev := slog.Default()
	slog.SetDefault(logger) // the handlers log through slog.Default, as in Lambda
	defer func() {
		if err != nil {
			slog.SetDefault(prev)
		}
	}()
	var hook, pages *lambdapool.Pool
	for _, name := range app.Names {
		env := app.Environment(name, s.deploy)
		build := func() (lambda.Handler, error) {
			return app.NewHandler(ctx, name, func(k string) string { return env[k] }, s.awsCfg)
		}
		if _, err := build(); err != nil { // fail at start on a bad environment, as Lambda's init does
			return nil, err
		}
		if name == functions.Webhook {
			hook = lambdapool.New(build)
			continue
		}
		if name == functions.Page {
			pages = lambdapool.New(build)
			continue
		}
		// Each concurrent call gets its own instance, as Lambda scales out.
		s.Bridge.HandleFactory(name, build)
	}
	webhookPath := app.WebhookPathPrefix + randomToken()
	api.Handle(http.MethodPost+" "+webhookPath, apigw.Handler(hook))
	api.Handle(http.MethodGet+" /ip", apigw.Handler(pages))
	api.Handle(http.MethodGet+" /bans", apigw.Handler(pages))
	s.WebhookURL = s.APIURL + webhookPath
	s.sfnClient = sfn.NewFromConfig(s.awsCfg)
	return s, nil
}

func (s *System) startHosts(ctx context.Context, opts Options) error {
	why := lab.Available()
	switch {
	case opts.Simulate:
		s.Simulated, s.SimulateWhy = true, "asked for simulated hosts"
	case why != nil && opts.RequireReal:
		return fmt.Errorf("system: real sshguard hosts unavailable: %w", why)
	case why != nil:
		s.Simulated, s.SimulateWhy = true, why.Error()
	}
	docs := map[string]string{UnbanDocument: "unban", ReportDocument: "report"}
	root, err := sfnrunner.RepoRoot()
	if err != nil {
		return err
	}
	for i, spec := range opts.Hosts {
		h := &Host{InstanceID: fmt.Sprintf("i-0%016x", 0x10ca1000+i), Name: spec.Name}
		if s.Simulated {
			// The lab's addresses, so both kinds of host report the same.
			h.Kind, h.sim = simhost.Backend, &simhost.Host{Name: spec.Name, Documents: docs,
				Addresses: []string{lab.HostAddr4.String(), lab.HostAddr6.String()}}
		} else {
			// With its network: the host has its own global addresses, which its
			// reports carry (someone may ask for one of them).
			lh, err := lab.Start(ctx, lab.Options{Name: spec.Name, Backend: spec.Backend, IPv4Subnet: spec.IPv4Subnet, Blacklist: spec.Blacklist, Blacklisted: spec.Blacklisted, Network: true})
			if err != nil {
				return err
			}
			h.Kind, h.lab = lh.Backend, lh
		}
		s.Hosts = append(s.Hosts, h)
		s.SSM.AddInstance(ssmfake.Instance{ID: h.InstanceID, Name: h.Name, Tags: map[string]string{TagKey: TagValue}, Runner: h.runner(root, docs)})
	}
	return nil
}

// runner runs the document's script on the host, as the SSM agent would.
func (h *Host) runner(root string, docs map[string]string) ssmfake.Runner {
	return ssmfake.RunnerFunc(func(ctx context.Context, document string, params map[string][]string) ([]byte, []byte, int, error) {
		var out, stderr []byte
		var code int
		var err error
		if h.sim != nil {
			out, stderr, code, err = h.sim.Run(ctx, document, params)
		} else {
			script := map[string]string{"unban": "sshguard-unban.sh", "report": "sshguard-report.sh"}[docs[document]]
			if script == "" {
				return nil, []byte("unknown document " + document), 1, nil
			}
			// The script as the SSM document carries it (host.Script), a copy
			// per run as the agent makes one: runs on one host overlap.
			dir, werr := os.MkdirTemp(h.lab.Dir, "run-")
			if werr != nil {
				return nil, nil, 0, werr
			}
			defer os.RemoveAll(dir)
			path, werr := host.WriteScript(dir, script)
			if werr != nil {
				return nil, nil, 0, werr
			}
			// Read by /bin/sh (its #! line) rather than executed: the file
			// was just written, and a child another goroutine forked in that
			// moment may still hold it open for writing (golang/go#22315):
			// exec would fail with ETXTBSY (exit 126), which the agent's run
			// would not.
			var r lab.Result
			// As the document's wrapper turns its parameters into the
			// script's arguments (cdk/sources.go).
			args := []string{path}
			if slices.Equal(params[ssmdoc.RemoveBlacklistedParam], []string{"true"}) {
				args = append(args, "--remove-blacklisted")
			}
			r, err = h.lab.RunEnv(ctx, nil, "/bin/sh", append(args, params[ssmdoc.AddressesParam]...)...)
			out, stderr, code = r.Stdout, r.Stderr, r.ExitCode
		}
		if docs[document] == "unban" {
			h.mu.Lock()
			h.outputs = append(h.outputs, string(out))
			h.mu.Unlock()
		}
		return out, stderr, code, err
	})
}

// Attack makes the host block addr, by feeding its sshguard failed logins
// (or, for a simulated host, by adding the block).
func (h *Host) Attack(ctx context.Context, addr string) error {
	if h.sim != nil {
		return h.sim.Block(addr)
	}
	return h.lab.Attack(ctx, addr)
}

// Blocked reads the host's firewall (the simulated host's memory).
func (h *Host) Blocked(ctx context.Context) ([]string, error) {
	if h.sim != nil {
		return h.sim.Blocked(), nil
	}
	return h.lab.Blocked(ctx)
}

// HostByName finds a host by its name (nil if there is none).
func (s *System) HostByName(name string) *Host {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// SetAgentConnected takes a host's SSM agent offline (as when the host is
// stopped: SSM reports ConnectionLost, commands wait for it) or brings it
// back (it then runs what waited).
func (s *System) SetAgentConnected(h *Host, connected bool) {
	s.SSM.SetFault(h.InstanceID, ssmfake.Fault{Disconnected: !connected})
}

// PageLink is a link to the ban-list page for account, valid for ttl from
// now (a negative ttl gives an expired one, for tests), signed with this
// run's page key as notify signs them.
func (s *System) PageLink(account string, ttl time.Duration) (string, error) {
	signer := pagelink.Signer{Key: func(context.Context) ([]byte, error) { return s.pageKey, nil }, BaseURL: s.PublicURL}
	link, _, err := signer.LinkUntil(context.Background(), account, time.Now().Add(ttl))
	return link, err
}

// WebhookToken is this run's Chatwork webhook token (base64, as Chatwork
// issues it), for signing requests by hand (unbanbot sign).
func (s *System) WebhookToken() string { return s.webhookToken }

// UnbanOutputs returns every unban script output the host printed.
func (h *Host) UnbanOutputs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.outputs...)
}

// Label names the host for people.
func (h *Host) Label() string {
	if h.sim != nil {
		return fmt.Sprintf("%s (%s, SIMULATED host)", h.Name, h.InstanceID)
	}
	return fmt.Sprintf("%s (%s, real sshguard, %s backend)", h.Name, h.InstanceID, h.Kind)
}

// Say posts a message from an employee as Chatwork would: a signed
// mention_to_me webhook. It returns the HTTP status and the message id.
// An account that was not in the room joins it first, as a member of the
// company's organization (the guest is already in it, as a guest).
func (s *System) Say(ctx context.Context, accountID, text string) (int, string, error) {
	return s.SayIn(ctx, AskRoomID, accountID, text)
}

// SayIn is Say in another room (the SRE room, for approve/deny).
func (s *System) SayIn(ctx context.Context, roomID, accountID, text string) (int, string, error) {
	id := strconv.FormatInt(s.nextMsg.Add(1), 10)
	body := MentionBody(accountID, roomID, id, "[To:"+BotAccountID+"]unbanbot さん\n"+text)
	status, err := s.Post(ctx, body, s.verifier.Sign(body))
	return status, id, err
}

// Join makes an employee a member of a room (before they speak: a whole
// office is in the room before it asks at once).
func (s *System) Join(roomID, accountID string) { s.join(roomID, accountID, orgNumber(OrganizationID)) }

// join adds an account to a room's members (Chatwork's member list) unless
// it is there already.
func (s *System) join(roomID, accountID string, org int64) {
	s.membersMu.Lock()
	defer s.membersMu.Unlock()
	room := s.members[roomID]
	if room == nil {
		room = map[string]int64{}
		s.members[roomID] = room
	}
	if _, ok := room[accountID]; ok {
		return
	}
	room[accountID] = org
	var ms []chatworkfake.Member
	for acct, o := range room {
		n, _ := strconv.ParseInt(acct, 10, 64)
		name := "社員 " + acct
		if o == guestOrgID {
			name = "Guest " + acct
		}
		ms = append(ms, chatworkfake.Member{AccountID: n, Role: "member", Name: name, OrganizationID: o})
	}
	s.Chat.SetMembers(roomID, ms...)
}

func orgNumber(id string) int64 {
	n, _ := strconv.ParseInt(id, 10, 64)
	return n
}

// LocalPolicy is the local deployment's policy: the default quotas and
// thresholds, the company's organization, the local SRE.
func LocalPolicy() app.Policy {
	out := app.DefaultPolicy
	out.AllowedOrganizations = []string{OrganizationID}
	out.SREAccounts = []string{SREAccountID}
	return out
}

func localPolicy(p *app.Policy) app.Policy {
	if p != nil {
		return *p
	}
	return LocalPolicy()
}

// Post sends a raw webhook body with the given signature. Its sender is
// then a member of its room, as anyone Chatwork delivers a message from is
// (of the company, unless it is the guest).
func (s *System) Post(ctx context.Context, body []byte, sig string) (int, error) {
	var ev struct {
		Event struct {
			From json.Number `json:"from_account_id"`
			Room json.Number `json:"room_id"`
		} `json:"webhook_event"`
	}
	if json.Unmarshal(body, &ev) == nil && ev.Event.From != "" && ev.Event.Room != "" {
		s.join(ev.Event.Room.String(), ev.Event.From.String(), orgNumber(OrganizationID))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.WebhookURL, strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-ChatWorkWebhookSignature", sig)
	resp, err := localClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Sign signs a body with the local webhook token.
func (s *System) Sign(body []byte) string { return s.verifier.Sign(body) }

var localClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}

// MentionBody is a mention_to_me webhook body.
func MentionBody(accountID, roomID, messageID, text string) []byte {
	b, _ := json.Marshal(map[string]any{
		"webhook_setting_id": "1", "webhook_event_type": "mention_to_me", "webhook_event_time": time.Now().Unix(),
		"webhook_event": map[string]any{
			"from_account_id": json.Number(accountID), "to_account_id": json.Number(BotAccountID),
			"room_id": json.Number(roomID), "message_id": messageID, "body": text,
			"send_time": time.Now().Unix(), "update_time": 0,
		},
	})
	return b
}

// ExecutionName is the unban execution a message starts.
func ExecutionName(messageID string) string { return webhook.ExecutionName(AskRoomID, messageID) }

// WaitExecution waits until the named unban execution ends.
func (s *System) WaitExecution(ctx context.Context, name string) (sfnfake.Execution, error) {
	arn := fmt.Sprintf("arn:aws:states:%s:%s:execution:unban:%s", Region, Account, name)
	for {
		if e, err := s.SFN.WaitFor(ctx, arn); err == nil {
			return e, nil
		} else if ctx.Err() != nil {
			return sfnfake.Execution{}, err
		}
		// Not started yet (the webhook was just acknowledged): look again.
		select {
		case <-ctx.Done():
			return sfnfake.Execution{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ReplyTo waits for the bot's reply to a message in the asking room: the
// answer, not the progress message before it (that one counts once it has
// been edited into the answer).
func (s *System) ReplyTo(ctx context.Context, messageID string) (chatworkfake.Message, error) {
	marker := "-" + messageID + "]"
	for {
		for _, m := range s.Chat.RoomMessages(AskRoomID) {
			if strings.HasPrefix(m.Body, "[rp ") && strings.Contains(m.Body[:strings.Index(m.Body, "]")+1], marker) && !notify.IsProgress(m.Body) {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return chatworkfake.Message{}, fmt.Errorf("no reply to message %s: %w", messageID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Refresh runs the refresh state machine once, as the schedule does, and
// waits for it.
func (s *System) Refresh(ctx context.Context) (sfnfake.Execution, error) {
	name := fmt.Sprintf("local-refresh-%d", time.Now().UnixNano())
	out, err := s.sfnClient.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:refresh", Region, Account)),
		Name:            aws.String(name),
		Input:           aws.String("{}"),
	})
	if err != nil {
		return sfnfake.Execution{}, err
	}
	return s.SFN.WaitFor(ctx, aws.ToString(out.ExecutionArn))
}

// Close stops everything and removes the hosts' namespaces.
func (s *System) Close() {
	s.closeOnce.Do(func() {
		for _, srv := range s.servers {
			srv.Close()
		}
		if s.SFN != nil {
			s.SFN.Close()
		}
		if s.runner != nil {
			s.runner.Close()
		}
		if s.Bridge != nil {
			s.Bridge.Idle()
		}
		if s.SSM != nil {
			s.SSM.Close()
		}
		if s.dynamo != nil {
			s.dynamo.Close()
		}
		for _, h := range s.Hosts {
			if h.lab != nil {
				h.lab.Close()
			}
		}
	})
}

// serve serves a fake on 127.0.0.1 until Close, the same way the tests do.
func (s *System) serve(h http.Handler) string {
	srv := httptest.NewServer(h)
	s.servers = append(s.servers, srv)
	return srv.URL
}

// S3Client is an S3 client for the local endpoint.
func (s *System) S3Client() *s3.Client { return s3local.NewClient(s.AWSURL) }

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("system: no randomness"))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
