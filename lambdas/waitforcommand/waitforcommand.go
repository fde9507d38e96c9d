// Package waitforcommand is the WaitForCommand task: it polls the
// invocations of sent SSM commands and reports each host's outcome; the
// state machine loops (with a Wait state) while Done is false.
//
// Status mapping (StatusDetails first, see ssmcmd.Outcome):
//
//	Pending / InProgress / Delayed        → pending (timed_out once the deadline passed)
//	Success                               → succeeded (failed if ParseUnban and the
//	                                        output is not the script's JSON)
//	Failed / Cancelled / Cancelling       → failed (keeping the script's JSON error)
//	TimedOut, "Execution Timed Out"       → timed_out
//	"Undeliverable", "Terminated",
//	"Delivery Timed Out"                  → offline (the command never ran)
//
// No invocations listed yet (SSM is eventually consistent right after
// SendCommand) counts as pending until the deadline. Each host is mapped on
// its own, so a host that is down or whose output cannot be read never hides
// the hosts that succeeded.
package waitforcommand

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/banlist/ssmcmd"
	"sshguard-unban/shared/hostreport"
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
}

// SSMAPI is what the handler calls; *ssm.Client implements it.
type SSMAPI interface {
	ssmcmd.Lister
	ssmcmd.Getter
}

// Handler is the Lambda handler.
type Handler struct {
	SSM SSMAPI
	S3  banlist.ObjectGetter // may be nil: no S3 output reads
	Cfg Config
	Log *slog.Logger
}

// New returns a Handler; log nil means slog.Default().
func New(ssm SSMAPI, s3 banlist.ObjectGetter, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.StepName == "" {
		cfg.StepName = DefaultStepName
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{SSM: ssm, S3: s3, Cfg: cfg, Log: log}
}

// Handle polls once.
func (h *Handler) Handle(ctx context.Context, in workflow.CheckInput) (workflow.CheckResult, error) {
	deadline, err := time.Parse(time.RFC3339, in.Deadline)
	if err != nil {
		return workflow.CheckResult{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("deadline %q: %v", in.Deadline, err)}
	}
	now := h.Cfg.Now()
	late := !now.Before(deadline)
	res := workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{}}
	src := &ssmcmd.OutputSource{SSM: h.SSM, S3: h.S3, Bucket: h.Cfg.OutputBucket, Prefix: h.Cfg.OutputPrefix, StepName: h.Cfg.StepName}
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
			res.Hosts = append(res.Hosts, h.outcome(ctx, src, inv, in.ParseUnban, late))
		}
	}
	for _, id := range in.Skipped {
		res.Hosts = append(res.Hosts, workflow.HostOutcome{InstanceID: id, Status: workflow.HostOffline,
			Detail: "SSM does not manage this instance (agent stopped or not registered)"})
	}
	slices.SortFunc(res.Hosts, func(a, b workflow.HostOutcome) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	// The same host in two commands keeps its most conclusive result.
	res.Hosts = dedupe(res.Hosts)
	for _, o := range res.Hosts {
		if o.Status == workflow.HostPending {
			res.Done = false
		}
		counts[o.Status]++
	}
	h.Log.Info("command check", "commands", len(in.CommandIDs), "done", res.Done, "late", late,
		"succeeded", counts[workflow.HostSucceeded], "failed", counts[workflow.HostFailed],
		"pending", counts[workflow.HostPending], "timed_out", counts[workflow.HostTimedOut],
		"offline", counts[workflow.HostOffline], "not_listed", counts["not_listed"])
	return res, nil
}

func (h *Handler) outcome(ctx context.Context, src *ssmcmd.OutputSource, inv types.CommandInvocation, parse, late bool) workflow.HostOutcome {
	o := workflow.HostOutcome{InstanceID: aws.ToString(inv.InstanceId)}
	status, detail := ssmcmd.Outcome(inv)
	o.Status, o.Detail = status, detail
	if status == workflow.HostPending {
		if late {
			o.Status = workflow.HostTimedOut
			o.Detail = "still " + strings.ToLower(string(inv.Status)) + " at the deadline"
		}
		return o
	}
	if !parse || (status != workflow.HostSucceeded && status != workflow.HostFailed) {
		return o
	}
	out, err := src.Stdout(ctx, inv)
	if err != nil && !errors.Is(err, ssmcmd.ErrTruncated) {
		if taskerr.IsTransient(err) && !late {
			// Try again on the next poll rather than report a blip.
			h.Log.Warn("output not readable yet", "instance_id", o.InstanceID, "error", err)
			o.Status, o.Detail = workflow.HostPending, ""
			return o
		}
		h.Log.Error("output not readable", "instance_id", o.InstanceID, "error", err)
		o.Status = workflow.HostFailed
		o.Detail = clip("unban ran but its output could not be read: " + err.Error())
		return o
	}
	var u hostreport.Unban
	if derr := json.Unmarshal(out, &u); derr != nil {
		if status == workflow.HostSucceeded {
			o.Status = workflow.HostFailed
			o.Detail = "unban ran but did not print its JSON result"
			if errors.Is(err, ssmcmd.ErrTruncated) {
				o.Detail += " (output truncated; configure the S3 output bucket)"
			}
		}
		return o
	}
	o.Host = u.Host
	if u.Error != "" || u.Code != "" {
		o.Status = workflow.HostFailed
		o.Detail = clip(strings.TrimPrefix(u.Code+": "+u.Error, ": "))
		o.Unban = small(u)
		return o
	}
	if status == workflow.HostFailed {
		o.Unban = small(u)
		return o
	}
	// Keep the history small: the per-address result only where something
	// was blocked; a host with nothing to remove is just "succeeded".
	for _, r := range u.Results {
		if r.WasBlocked || len(r.Removed) > 0 || r.BlacklistRemoved {
			o.Unban = small(u)
			break
		}
	}
	if o.Unban == nil {
		o.Detail = "not blocked here"
	}
	return o
}

// small drops nothing the reply needs but bounds the error text, and leaves
// out the host's full report (up to ~50 bytes per blocked entry), which
// would not fit in the execution's state.
func small(u hostreport.Unban) *hostreport.Unban {
	u.Error = clip(u.Error)
	u.Report = nil
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
