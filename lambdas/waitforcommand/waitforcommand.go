// Package waitforcommand reads what the hosts answered to an SSM command.
//
// For a request's unban command it serves the unban machine's
// CheckUnbanCommand and CheckBlacklistCommand states (mode reply) and
// WaitForLateHosts (mode final):
// it polls within one invocation, quickly while the answers are due, with
// backoff after (unbancheck.go). Mode reply is done once every tagged host
// has answered or is silent, so the reply goes out as soon as the hosts
// that can answer have, and no offline host holds the others back. The
// requests sharing one command (shared/coalesce) share its polling too: one
// of them holds a lease and calls SSM, the others read the outcome it
// writes to S3, so ListCommandInvocations is not called once per asker.
//
// For the refresh machine's CheckReportCommand state it polls a report
// command once per call; the machine loops with a Wait state.
//
// Status mapping (StatusDetails first, see ssmcmd.Outcome):
//
//	Pending / InProgress / Delayed        → pending (timed_out once the deadline passed;
//	                                        silent for a reply, see above)
//	Success                               → succeeded (failed if the output is not the
//	                                        script's JSON)
//	Failed / Cancelled / Cancelling       → failed (keeping the script's JSON error)
//	TimedOut, "Execution Timed Out"       → timed_out
//	"Undeliverable", "Terminated",
//	"Delivery Timed Out"                  → offline (the command never ran)
//
// No invocations listed yet (SSM is eventually consistent for about a
// second after SendCommand) counts as pending. Each host is mapped on its
// own, so a host that is down or whose output cannot be read never hides
// the hosts that succeeded.
package waitforcommand

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/coalesce"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// DefaultStepName is the unban document's step (mainSteps[0].name, as
// cdk/ writes it).
const DefaultStepName = ssmdoc.UnbanStep

// maxDetail bounds HostOutcome.Detail (the history must stay small).
const maxDetail = 200

// Config holds the environment-derived settings.
type Config struct {
	// StepName is the document step whose output is read when the
	// invocation carries no plugin details (default ssmdoc.UnbanStep).
	StepName string
	// OutputBucket / OutputPrefix are the OutputS3BucketName /
	// OutputS3KeyPrefix the commands were sent with (empty: use the
	// invocation's StandardOutputUrl, or GetCommandInvocation).
	OutputBucket string
	OutputPrefix string
	Now          func() time.Time

	// For unban commands (CheckInput.Mode):
	// TagKey/TagValue select the hosts whose agent status is read
	// (DescribeInstanceInformation), Bucket holds the shared outcome
	// (OutcomePrefix) and the poller's lease (LeasePrefix).
	TagKey, TagValue           string
	Bucket                     string
	OutcomePrefix, LeasePrefix string
	// Budget is how long one invocation polls before returning Done false
	// (below the function's timeout). PollInterval is the first polls'
	// pause. PickupBound: a host that has not started the command this
	// long after it was sent is silent for the reply; RunBound: one still
	// running this long is too. LeaseTTL bounds a dead poller's lease.
	Budget, PollInterval, PickupBound, RunBound, LeaseTTL time.Duration
	Sleep                                                 func(ctx context.Context, d time.Duration) error
}

// Defaults of the unban check, in production. A Run Command reaches a
// connected agent in about 0.3 s (p95 1.5 s) and the script runs in well
// under a second (local/latency has the sources): 5 s without a pickup
// means the agent is not there, 15 s of running means something is wrong,
// and neither should hold the other hosts' answers back.
const (
	DefaultBudget       = 20 * time.Second
	DefaultPollInterval = 150 * time.Millisecond
	DefaultPickupBound  = 5 * time.Second
	DefaultRunBound     = 15 * time.Second
	DefaultLeaseTTL     = 3 * time.Second
)

// SSMAPI is what the handler calls; *ssm.Client implements it.
type SSMAPI interface {
	ssmcmd.Lister
	ssmcmd.Getter
	ssm.DescribeInstanceInformationAPIClient
}

// Handler is the Lambda handler.
type Handler struct {
	SSM SSMAPI
	// S3 reads command output; Store (the same client) holds the shared
	// outcome and lease; Coalesce learns when a shared command is done.
	// Each may be nil (no S3 output reads; no sharing).
	S3       banlist.ObjectGetter
	Store    s3obj.API
	Coalesce *coalesce.Store
	Cfg      Config
	Log      *slog.Logger
}

// New returns a Handler with defaults filled in; log nil means
// slog.Default().
func New(ssm SSMAPI, s3 s3obj.API, commands *coalesce.Store, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.StepName == "" {
		cfg.StepName = DefaultStepName
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Budget, DefaultBudget)
	def(&cfg.PollInterval, DefaultPollInterval)
	def(&cfg.PickupBound, DefaultPickupBound)
	def(&cfg.RunBound, DefaultRunBound)
	def(&cfg.LeaseTTL, DefaultLeaseTTL)
	h := &Handler{SSM: ssm, Coalesce: commands, Cfg: cfg, Log: log}
	if s3 != nil {
		h.S3, h.Store = s3, s3
	}
	return h
}

// Handle checks the command(s): an unban command (in.Mode set) until the
// mode is satisfied or the budget is spent, a report command once.
func (h *Handler) Handle(ctx context.Context, in workflow.CheckInput) (workflow.CheckResult, error) {
	if in.Mode != "" {
		if in.Unban == nil {
			return workflow.CheckResult{}, &taskerr.InvalidInputError{Reason: "mode " + in.Mode + " without the unban command"}
		}
		return h.checkUnban(ctx, in)
	}
	return h.checkReport(ctx, in)
}

// checkReport polls a report command once.
func (h *Handler) checkReport(ctx context.Context, in workflow.CheckInput) (workflow.CheckResult, error) {
	deadline, err := time.Parse(time.RFC3339, in.Deadline)
	if err != nil {
		return workflow.CheckResult{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("deadline %q: %v", in.Deadline, err)}
	}
	now := h.Cfg.Now()
	late := !now.Before(deadline)
	res := workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{}}
	counts := map[string]int{}
	for _, id := range in.CommandIDs {
		invs, err := ssmcmd.ListInvocations(ctx, h.SSM, id)
		if err != nil {
			return workflow.CheckResult{}, err
		}
		if len(invs) == 0 {
			if !late {
				res.Done = false
			}
			counts["not_listed"]++
			continue
		}
		for _, inv := range invs {
			res.Hosts = append(res.Hosts, h.outcome(inv, late))
		}
	}
	for _, id := range in.Skipped {
		res.Hosts = append(res.Hosts, workflow.HostOutcome{InstanceID: id, Status: workflow.HostOffline,
			Detail: "SSM does not manage this instance (agent stopped or not registered)"})
	}
	slices.SortFunc(res.Hosts, func(a, b workflow.HostOutcome) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	// The same host in two commands keeps its most conclusive result.
	res.Hosts = dedupe(res.Hosts)
	res.Targeted = len(res.Hosts)
	// Only what is not a success is named (the store step reads the
	// invocations itself): 5,000 hosts must fit in the execution's state.
	named := res.Hosts[:0]
	for _, o := range res.Hosts {
		if o.Status == workflow.HostPending {
			res.Done = false
		} else {
			res.Answered++
		}
		counts[o.Status]++
		if o.Status == workflow.HostSucceeded {
			continue
		}
		if len(named) < workflow.MaxNamed {
			named = append(named, o)
		} else {
			res.Unnamed++
		}
	}
	res.Hosts = named
	h.Log.Info("command check", "commands", len(in.CommandIDs), "done", res.Done, "late", late,
		"succeeded", counts[workflow.HostSucceeded], "failed", counts[workflow.HostFailed],
		"pending", counts[workflow.HostPending], "timed_out", counts[workflow.HostTimedOut],
		"offline", counts[workflow.HostOffline], "not_listed", counts["not_listed"])
	return res, nil
}

func (h *Handler) outcome(inv types.CommandInvocation, late bool) workflow.HostOutcome {
	o := workflow.HostOutcome{InstanceID: aws.ToString(inv.InstanceId)}
	o.Status, o.Detail = ssmcmd.Outcome(inv)
	if o.Status == workflow.HostPending && late {
		o.Status = workflow.HostTimedOut
		o.Detail = "still " + strings.ToLower(string(inv.Status)) + " at the deadline"
	}
	return o
}

// small drops nothing the reply needs but bounds the error text, and leaves
// out the host's full report (up to ~50 bytes per blocked entry), which
// would not fit in the execution's state: only its settings stay (what the
// reply says about sshguard's next block follows from them).
func small(u hostreport.Unban) *hostreport.Unban {
	u.Error = clip(u.Error)
	if u.Report != nil {
		u.Report = &hostreport.Report{Settings: u.Report.Settings}
	}
	return &u
}

func clip(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	return s[:maxDetail-3] + "..."
}

var rank = map[string]int{
	workflow.HostSucceeded: 5,
	workflow.HostFailed:    4,
	workflow.HostTimedOut:  3,
	workflow.HostPending:   2,
	workflow.HostOffline:   1,
}

// dedupe keeps one outcome per instance (hosts are sorted by instance id).
func dedupe(hs []workflow.HostOutcome) []workflow.HostOutcome {
	out := hs[:0]
	for _, o := range hs {
		if n := len(out); n > 0 && out[n-1].InstanceID == o.InstanceID {
			if rank[o.Status] > rank[out[n-1].Status] {
				out[n-1] = o
			}
			continue
		}
		out = append(out, o)
	}
	return out
}
