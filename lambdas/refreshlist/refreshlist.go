// Package refreshlist serves the refresh machine's RequestBanReports and
// StoreBanLists states and, after an unban, the unban machine's
// StoreBanLists:
//
//   - action "request" sends the report SSM document (host/sshguard-report.sh,
//     no parameters) to the given instances (batches of ≤ 50) or to every
//     tagged host, and returns the command ids and a deadline;
//   - action "store" reads each invocation's report, writes the host's list
//     (shared/banlist) and updates the index, and returns the stored and
//     failed instance ids and the new bans;
//   - action "store_unban" does the same with the report the unban script
//     prints after its results, so a request's one SSM round trip also
//     refreshes every host's list.
//
// New bans are the entries a host's report has that the list it replaces did
// not. A host's first ever report announces nothing (a first deploy would
// otherwise post every existing block of the fleet). A host whose command
// failed keeps its previous list: it is not deleted and simply becomes stale
// by age, which makes lookups take the safe all-hosts path. Storing the same
// report again (a retried task) writes nothing new and returns the same new
// bans, recorded in the host object.
package refreshlist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// Actions.
const (
	ActionRequest = "request"
	ActionStore   = "store"
	// ActionStoreUnban stores the reports the unban script prints after
	// its results: the request's one SSM round trip refreshes the lists.
	ActionStoreUnban = "store_unban"
)

// Defaults.
const (
	DefaultStepName = ssmdoc.ReportStep
	DefaultWorkers  = 16
	// DefaultMaxNewBans bounds the new bans returned (the execution
	// history and the ban-notice message must stay small).
	DefaultMaxNewBans = 100
	// ClockSkewWarning: a report dated this far from its command's time
	// (SSM's clock) is logged, the host's clock being off.
	ClockSkewWarning = 5 * time.Minute
)

// Config holds the environment-derived settings.
type Config struct {
	ReportDocument string // REPORT_DOCUMENT: SSM document name
	StepName       string // the report document's step name (default ssmdoc.ReportStep)
	// Delivery: reports of hosts with many blocks exceed the inline output
	// limits, so set its OutputBucket.
	ssmcmd.Delivery
	// Bucket / Prefix: where the ban lists live (shared/banlist).
	Bucket string
	Prefix string
	// ForgetAfter drops from the index hosts whose list is older than this
	// (0 keeps them forever). A terminated host otherwise stays in the index
	// and keeps every lookup on the stale path; its host object is kept.
	ForgetAfter time.Duration
	// Workers is the number of hosts stored in parallel (default 16).
	Workers int
	// MaxNewBans caps RefreshResult.NewBans (default 100); the rest are
	// logged.
	MaxNewBans int
	Now        func() time.Time
}

// SSMAPI is what the handler calls; *ssm.Client implements it.
type SSMAPI interface {
	ssmcmd.Sender
	ssmcmd.Lister
	ssmcmd.Getter
}

// Handler is the Lambda handler.
type Handler struct {
	SSM SSMAPI
	S3  banlist.S3API
	Cfg Config
	Log *slog.Logger
}

// New returns a Handler with defaults; log nil means slog.Default().
func New(ssm SSMAPI, s3 banlist.S3API, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.StepName == "" {
		cfg.StepName = DefaultStepName
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxNewBans <= 0 {
		cfg.MaxNewBans = DefaultMaxNewBans
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{SSM: ssm, S3: s3, Cfg: cfg, Log: log}
}

// Handle dispatches on the action.
func (h *Handler) Handle(ctx context.Context, in workflow.RefreshInput) (workflow.RefreshResult, error) {
	switch in.Action {
	case ActionRequest:
		return h.request(ctx, in.CommandRequest)
	case ActionStore:
		return h.store(ctx, in.CommandRef, h.Cfg.StepName, reportOf)
	case ActionStoreUnban:
		return h.store(ctx, in.CommandRef, ssmdoc.UnbanStep, reportInUnban)
	}
	return workflow.RefreshResult{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("unknown action %q", in.Action)}
}

func (h *Handler) request(ctx context.Context, in workflow.CommandRequest) (workflow.RefreshResult, error) {
	ref, err := h.Cfg.SendCommand(ctx, h.SSM, h.Cfg.ReportDocument, nil, in, "sshguard ban-list refresh", h.Cfg.Now(), h.Log)
	if err != nil {
		return workflow.RefreshResult{}, err
	}
	res := workflow.RefreshResult{CommandRef: ref}
	// Instances SSM refused get no report: they are failed for this round.
	res.Failed = ref.Skipped
	h.Log.Info("report requested", "all_hosts", in.AllHosts, "instances", len(in.InstanceIDs),
		"commands", len(res.CommandIDs), "skipped", len(ref.Skipped))
	return res, nil
}

type hostResult struct {
	instanceID string
	stored     *banlist.PutResult
}

// reportOf decodes a report command's output.
func reportOf(out []byte) (hostreport.Report, error) {
	var rep hostreport.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		return rep, fmt.Errorf("report is not JSON: %w", err)
	}
	return rep, nil
}

// reportInUnban takes the report out of an unban command's output.
func reportInUnban(out []byte) (hostreport.Report, error) {
	var u hostreport.Unban
	if err := json.Unmarshal(out, &u); err != nil {
		return hostreport.Report{}, fmt.Errorf("unban output is not JSON: %w", err)
	}
	if u.Report == nil {
		if u.Error != "" || u.Code != "" {
			return hostreport.Report{Error: u.Error, Code: u.Code}, nil
		}
		return hostreport.Report{}, errors.New("unban output carries no report")
	}
	return *u.Report, nil
}

func (h *Handler) store(ctx context.Context, ref workflow.CommandRef, step string, decode func([]byte) (hostreport.Report, error)) (workflow.RefreshResult, error) {
	var invs []types.CommandInvocation
	for _, id := range ref.CommandIDs {
		got, err := ssmcmd.ListInvocations(ctx, h.SSM, id)
		if err != nil {
			return workflow.RefreshResult{}, err
		}
		invs = append(invs, got...)
	}
	store := banlist.NewStore(h.S3, banlist.Location{Bucket: h.Cfg.Bucket, Prefix: h.Cfg.Prefix}, h.Log)
	store.Now = h.Cfg.Now
	src := &ssmcmd.OutputSource{SSM: h.SSM, S3: h.S3, Bucket: h.Cfg.OutputBucket, Prefix: h.Cfg.OutputPrefix, StepName: step}

	results := make([]hostResult, len(invs))
	errs := make([]error, len(invs))
	sem := make(chan struct{}, h.Cfg.Workers)
	var wg sync.WaitGroup
	for i, inv := range invs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = h.storeOne(ctx, store, src, inv, decode)
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		// Transient ones make the whole task retry; re-storing what was
		// already written is a no-op that returns the same new bans.
		return workflow.RefreshResult{}, err
	}

	var res workflow.RefreshResult
	res.CommandRef = ref
	var index []banlist.IndexHost
	var newBans []workflow.NewBan
	for _, r := range results {
		if r.stored == nil {
			res.Failed = append(res.Failed, r.instanceID)
			continue
		}
		res.Stored = append(res.Stored, r.instanceID)
		index = append(index, banlist.NewIndexHost(r.stored.Stored))
		rep := r.stored.Stored.Report
		blockTime := 0
		if rep.Settings != nil {
			blockTime = rep.Settings.BlockTime
		}
		for _, e := range r.stored.New {
			newBans = append(newBans, workflow.NewBan{
				InstanceID: r.instanceID, Host: rep.Host, Entry: e, Time: r.stored.Stored.Time(),
				Blacklisted: rep.Blacklisted(e), BlockTime: blockTime,
			})
		}
	}
	if len(index) > 0 {
		var forget time.Time
		if h.Cfg.ForgetAfter > 0 {
			forget = h.Cfg.Now().Add(-h.Cfg.ForgetAfter)
		}
		if err := store.UpdateIndex(ctx, index, forget); err != nil {
			return workflow.RefreshResult{}, err
		}
	}
	slices.Sort(res.Stored)
	res.Stored = slices.Compact(res.Stored)
	slices.Sort(res.Failed)
	res.Failed = slices.Compact(res.Failed)
	// A host stored by one command and failed by another counts as stored.
	res.Failed = slices.DeleteFunc(res.Failed, func(id string) bool { _, ok := slices.BinarySearch(res.Stored, id); return ok })
	res.StoredCount, res.FailedCount = len(res.Stored), len(res.Failed)
	failedIDs := res.Failed
	res.Stored, res.Failed = firstN(res.Stored, workflow.MaxNamed), firstN(res.Failed, workflow.MaxNamed)
	slices.SortFunc(newBans, func(a, b workflow.NewBan) int {
		if c := strings.Compare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
		return strings.Compare(a.Entry, b.Entry)
	})
	newBans = slices.CompactFunc(newBans, func(a, b workflow.NewBan) bool { return a.InstanceID == b.InstanceID && a.Entry == b.Entry })
	if len(newBans) > h.Cfg.MaxNewBans {
		h.Log.Warn("new bans capped", "total", len(newBans), "returned", h.Cfg.MaxNewBans)
		newBans = newBans[:h.Cfg.MaxNewBans]
	}
	res.NewBans = newBans
	h.Log.Info("reports stored", "invocations", len(invs), "stored", res.StoredCount,
		"failed", res.FailedCount, "failed_ids", failedIDs, "new_bans", len(res.NewBans))
	return res, nil
}

// firstError prefers a non-transient error (retrying will not help), then
// any error.
func firstError(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !taskerr.IsTransient(err) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// storeOne handles one invocation. Per-host problems (not run, bad output)
// make the host failed; S3/SSM errors are returned.
func (h *Handler) storeOne(ctx context.Context, store *banlist.Store, src *ssmcmd.OutputSource, inv types.CommandInvocation, decode func([]byte) (hostreport.Report, error)) (hostResult, error) {
	id := aws.ToString(inv.InstanceId)
	r := hostResult{instanceID: id}
	fail := func(reason string) (hostResult, error) {
		h.Log.Warn("no usable report", "instance_id", id, "command_id", aws.ToString(inv.CommandId), "reason", reason)
		return r, nil
	}
	if !banlist.ValidInstanceID(id) {
		return fail("invalid instance id")
	}
	status, detail := ssmcmd.Outcome(inv)
	if status != workflow.HostSucceeded {
		return fail(status + " " + detail)
	}
	out, err := src.Stdout(ctx, inv)
	if errors.Is(err, ssmcmd.ErrTruncated) {
		return fail("report output truncated; configure the S3 output bucket")
	}
	if errors.Is(err, ssmcmd.ErrNoDigest) {
		h.Log.Error("long command output without its digest", "instance_id", id, "command_id", aws.ToString(inv.CommandId), "error", err)
		return fail("report too long for SSM's own copy, and the host printed no SHA-256 to check the S3 copy (install sha256sum)")
	}
	if errors.Is(err, ssmcmd.ErrForgedOutput) {
		// Another host wrote this host's output key: keep the previous
		// list, and let the others be stored.
		h.Log.Error("forged command output", "instance_id", id, "command_id", aws.ToString(inv.CommandId), "error", err)
		return fail("S3 output does not match what SSM captured")
	}
	if err != nil {
		return r, err
	}
	rep, err := decode(out)
	if err != nil {
		return fail(err.Error())
	}
	if rep.Error != "" || rep.Code != "" {
		return fail("report error: " + rep.Code + " " + rep.Error)
	}
	if _, err := time.Parse(time.RFC3339, rep.Time); err != nil {
		return fail("report time not RFC 3339")
	}
	l := banlist.HostList{InstanceID: id, CommandID: aws.ToString(inv.CommandId), Report: rep}
	if inv.RequestedDateTime != nil {
		l.CommandTime = inv.RequestedDateTime.UTC().Format(time.RFC3339Nano)
		if rt, _ := time.Parse(time.RFC3339, rep.Time); rt.Sub(*inv.RequestedDateTime).Abs() > ClockSkewWarning {
			// Ordered and dated by SSM's clock, the list is still right;
			// the host's own logs and sshguard's timers are not.
			h.Log.Warn("host clock is off", "instance_id", id, "report_time", rep.Time,
				"command_time", l.CommandTime, "skew_s", int(rt.Sub(*inv.RequestedDateTime).Seconds()))
		}
	}
	put, err := store.PutHost(ctx, l)
	if err != nil {
		return r, err
	}
	if put.Superseded {
		h.Log.Info("newer list already stored", "instance_id", id)
	}
	r.stored = &put
	return r, nil
}

// firstN keeps the execution's state small: the full lists are logged and
// in the index.
func firstN(ids []string, n int) []string {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}
