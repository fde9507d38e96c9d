package waitforcommand

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/pause"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// Outcome is the S3 object holding every host's answer to one unban
// command (Config.OutcomePrefix + command id + ".json"). The one poller of
// a command writes it after each poll; the other requests sharing the
// command read it instead of calling SSM, so ListCommandInvocations is
// called once per poll per command, not once per asker.
type Outcome struct {
	CommandID string                 `json:"command_id"`
	UpdatedAt time.Time              `json:"updated_at"`
	Hosts     []workflow.HostOutcome `json:"hosts"` // by instance id, silent ones included
	// ReplyReady: every host answered or is silent. Final: every host
	// answered, or the deadline passed (the rest are timed out).
	ReplyReady bool `json:"reply_ready"`
	Final      bool `json:"final"`
}

// lease is the right to poll SSM for a command.
type lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// checkUnban polls the request's unban command within this invocation until
// in.Mode is satisfied or the invocation's budget is spent (Done false: the
// state machine calls again at once).
func (h *Handler) checkUnban(ctx context.Context, in workflow.CheckInput) (workflow.CheckResult, error) {
	c := in.Unban
	sentAt, err1 := time.Parse(time.RFC3339Nano, c.SentAt)
	deadline, err2 := time.Parse(time.RFC3339, c.Deadline)
	if err1 != nil || err2 != nil || c.CommandID == "" || (in.Mode != workflow.CheckReply && in.Mode != workflow.CheckFinal) {
		return workflow.CheckResult{}, &taskerr.InvalidInputError{Reason: "unban check needs command_id, sent_at, deadline and mode reply or final"}
	}
	me := holderID()
	stop := h.Cfg.Now().Add(h.Cfg.Budget)
	// The agents' status, read once per invocation and only when a host
	// has not answered yet (DescribeInstanceInformation pages by 50).
	var pings map[string]string
	ping := func() (map[string]string, error) {
		if pings != nil {
			return pings, nil
		}
		p, err := h.pingStatus(ctx)
		pings = p
		return p, err
	}
	key := h.Cfg.OutcomePrefix + c.CommandID + ".json"
	defer h.releaseLease(context.WithoutCancel(ctx), c.CommandID, me)
	var leaseUntil time.Time // while in the future, this invocation polls SSM
	var written *Outcome     // what it last wrote to S3
	for poll := 0; ; poll++ {
		var out *Outcome
		if !h.Cfg.Now().Before(leaseUntil) {
			// Not (or no longer) the poller: another waiter's outcome may
			// already say enough; otherwise try to become the poller.
			var err error
			if out, err = h.readOutcome(ctx, key); err != nil {
				return workflow.CheckResult{}, err
			}
			if out == nil || !satisfied(out, in.Mode) {
				held, err := h.takeLease(ctx, c.CommandID, me)
				if err != nil {
					return workflow.CheckResult{}, err
				}
				if held {
					leaseUntil = h.Cfg.Now().Add(h.Cfg.LeaseTTL / 2)
				}
			}
		}
		if h.Cfg.Now().Before(leaseUntil) {
			var err error
			if out, err = h.pollSSM(ctx, c.CommandID, sentAt, deadline, ping); err != nil {
				return workflow.CheckResult{}, err
			}
			if err := h.share(ctx, c, key, out, written); err != nil {
				return workflow.CheckResult{}, err
			}
			written = out
		}
		if out != nil && satisfied(out, in.Mode) {
			return summarize(out, key, true), nil
		}
		if !h.Cfg.Now().Before(stop) {
			if out == nil {
				out = &Outcome{}
			}
			return summarize(out, key, false), nil
		}
		if err := h.sleep(ctx, h.interval(poll, sentAt)); err != nil {
			return workflow.CheckResult{}, err
		}
	}
}

// share writes the outcome for the other waiters when it changed since the
// last write, and, once the reply can go, marks the shared command done so
// the next request for these addresses may send: both at the same time, as
// both are on the reply's path.
func (h *Handler) share(ctx context.Context, c *workflow.UnbanCommand, key string, out, last *Outcome) error {
	if last != nil && sameAnswers(out, last) {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if out.ReplyReady && c.Key != "" && h.Coalesce != nil {
			if err := h.Coalesce.Done(ctx, c.Key, c.CommandID); err != nil {
				h.Log.Warn("could not mark the shared command done", "command_id", c.CommandID, "error", err)
			}
		}
	}()
	err := h.writeOutcome(ctx, key, out)
	<-done
	return err
}

// sameAnswers: nothing a waiter would act on changed.
func sameAnswers(a, b *Outcome) bool {
	if a.ReplyReady != b.ReplyReady || a.Final != b.Final || len(a.Hosts) != len(b.Hosts) {
		return false
	}
	for i := range a.Hosts {
		if a.Hosts[i].InstanceID != b.Hosts[i].InstanceID || a.Hosts[i].Status != b.Hosts[i].Status {
			return false
		}
	}
	return true
}

func satisfied(o *Outcome, mode string) bool {
	if mode == workflow.CheckFinal {
		return o.Final
	}
	return o.ReplyReady || o.Final
}

// interval is the pause before the next poll: invocations are invisible for
// about a second after SendCommand and a host takes well under a second, so
// polls come quickly then, and back off after a few seconds (SSM throttles
// callers that poll fast for long).
func (h *Handler) interval(poll int, sentAt time.Time) time.Duration {
	since := h.Cfg.Now().Sub(sentAt)
	switch {
	case since < 3*time.Second:
		return h.Cfg.PollInterval
	case since < 10*time.Second:
		return 2 * h.Cfg.PollInterval
	}
	return min(h.Cfg.PollInterval<<min(poll/4, 4), 2*time.Second)
}

// pollSSM reads every invocation of the command and each host's agent
// status, and decides who has answered and who is silent.
func (h *Handler) pollSSM(ctx context.Context, commandID string, sentAt, deadline time.Time, pingStatus func() (map[string]string, error)) (*Outcome, error) {
	invs, err := ssmcmd.ListInvocations(ctx, h.SSM, commandID)
	if err != nil {
		return nil, err
	}
	ping := map[string]string{}
	if anyPending(invs) || len(invs) == 0 {
		if ping, err = pingStatus(); err != nil {
			return nil, err
		}
	}
	now := h.Cfg.Now()
	late := !now.Before(deadline)
	src := &ssmcmd.OutputSource{SSM: h.SSM, S3: h.S3, Bucket: h.Cfg.OutputBucket, Prefix: h.Cfg.OutputPrefix, StepName: h.Cfg.StepName}
	out := &Outcome{CommandID: commandID, UpdatedAt: now, Hosts: []workflow.HostOutcome{}}
	listed := map[string]bool{}
	answered := 0
	for _, inv := range invs {
		id := aws.ToString(inv.InstanceId)
		listed[id] = true
		o := h.unbanOutcome(ctx, src, inv)
		switch {
		case o.Status != workflow.HostPending:
			answered++
		case late:
			o.Status, o.Detail = workflow.HostTimedOut, "no answer before the command's deadline"
		case ping[id] != "" && ping[id] != string(types.PingStatusOnline):
			o.Status, o.Detail = workflow.HostSilent, "the SSM agent is not connected ("+ping[id]+")"
		case inv.Status == types.CommandInvocationStatusPending && now.Sub(sentAt) >= h.Cfg.PickupBound:
			o.Status, o.Detail = workflow.HostSilent, "did not pick the command up within "+h.Cfg.PickupBound.String()
		case now.Sub(sentAt) >= h.Cfg.RunBound:
			o.Status, o.Detail = workflow.HostSilent, "still running after "+h.Cfg.RunBound.String()
		}
		out.Hosts = append(out.Hosts, o)
	}
	// A tagged host SSM lists no invocation for (yet) is silent once the
	// invocations should be visible.
	for id, p := range ping {
		if listed[id] || len(invs) == 0 {
			continue
		}
		if now.Sub(sentAt) >= h.Cfg.PickupBound || late {
			out.Hosts = append(out.Hosts, workflow.HostOutcome{InstanceID: id, Status: workflow.HostSilent,
				Detail: "SSM listed no invocation for it (agent " + p + ")"})
		}
	}
	slices.SortFunc(out.Hosts, func(a, b workflow.HostOutcome) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	pending := 0
	for _, o := range out.Hosts {
		if o.Status == workflow.HostPending {
			pending++
		}
	}
	visible := len(invs) > 0 || (len(ping) == 0 && now.Sub(sentAt) >= h.Cfg.PickupBound)
	out.ReplyReady = visible && pending == 0
	out.Final = (visible && answered == len(out.Hosts)) || late
	h.Log.Info("unban check", "command_id", commandID, "invocations", len(invs), "answered", answered,
		"pending", pending, "hosts", len(out.Hosts), "reply_ready", out.ReplyReady, "final", out.Final)
	return out, nil
}

func anyPending(invs []types.CommandInvocation) bool {
	for _, inv := range invs {
		if s, _ := ssmcmd.Outcome(inv); s == workflow.HostPending {
			return true
		}
	}
	return false
}

// unbanOutcome maps one invocation: its status, and for a host that ran
// the script, the per-address results (without the embedded report, which
// refresh-list stores).
func (h *Handler) unbanOutcome(ctx context.Context, src *ssmcmd.OutputSource, inv types.CommandInvocation) workflow.HostOutcome {
	o := workflow.HostOutcome{InstanceID: aws.ToString(inv.InstanceId), Host: aws.ToString(inv.InstanceName)}
	status, detail := ssmcmd.Outcome(inv)
	o.Status, o.Detail = status, detail
	if status != workflow.HostSucceeded && status != workflow.HostFailed {
		return o
	}
	u, complete := hostreport.Unban{}, false
	if len(inv.CommandPlugins) > 0 {
		inline, _ := ssmcmd.InlineStdout(aws.ToString(inv.CommandPlugins[0].Output))
		u, complete = hostreport.DecodeUnbanResults([]byte(inline))
	}
	if !complete {
		full, err := src.Stdout(ctx, inv)
		if err != nil && !errors.Is(err, ssmcmd.ErrTruncated) {
			if taskerr.IsTransient(err) {
				o.Status, o.Detail = workflow.HostPending, "" // read it on the next poll
				return o
			}
			o.Status, o.Detail = workflow.HostFailed, clip("unban ran but its output could not be read: "+err.Error())
			return o
		}
		u, complete = hostreport.DecodeUnbanResults(full)
	}
	if !complete {
		if status == workflow.HostSucceeded {
			o.Status, o.Detail = workflow.HostFailed, "unban ran but did not print its JSON result"
		}
		return o
	}
	if u.Host != "" {
		o.Host = u.Host
	}
	if u.Error != "" || u.Code != "" {
		o.Status = workflow.HostFailed
		o.Detail = clip(strings.TrimPrefix(u.Code+": "+u.Error, ": "))
	}
	o.Unban = small(u)
	return o
}

// pingStatus returns every tagged host's agent status by instance id
// (Online, ConnectionLost, Inactive); empty when no tag is configured.
func (h *Handler) pingStatus(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	if h.Cfg.TagKey == "" {
		return out, nil
	}
	p := ssm.NewDescribeInstanceInformationPaginator(h.SSM, &ssm.DescribeInstanceInformationInput{
		Filters:    []types.InstanceInformationStringFilter{{Key: aws.String("tag:" + h.Cfg.TagKey), Values: []string{h.Cfg.TagValue}}},
		MaxResults: aws.Int32(50),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awserr.Classify(fmt.Errorf("ssm DescribeInstanceInformation: %w", err))
		}
		for _, i := range page.InstanceInformationList {
			out[aws.ToString(i.InstanceId)] = string(i.PingStatus)
		}
	}
	return out, nil
}

// summarize turns the outcome into the state's small result.
func summarize(o *Outcome, key string, done bool) workflow.CheckResult {
	r := workflow.CheckResult{Done: done, Targeted: len(o.Hosts), OutcomeKey: key}
	if !o.UpdatedAt.IsZero() {
		r.CheckedAt = o.UpdatedAt.UTC().Format(time.RFC3339)
	}
	for _, h := range o.Hosts {
		switch {
		case h.Status == workflow.HostSilent || h.Status == workflow.HostPending:
			r.Silent = append(r.Silent, h)
			continue
		case h.Status == workflow.HostSucceeded || h.Status == workflow.HostFailed:
			r.Answered++
			if len(r.Checked) < workflow.MaxNamed {
				r.Checked = append(r.Checked, cmp.Or(h.Host, h.InstanceID))
			}
		}
		if h.Status == workflow.HostSucceeded && h.Unban != nil {
			for _, a := range h.Unban.Results {
				if a.WasBlocked && (!a.Blacklisted || a.BlacklistRemoved) && !a.StillBlocked {
					if r.Freed == nil {
						r.Freed = map[string]int{}
					}
					r.Freed[a.Address]++
				}
				if a.Blacklisted && !a.BlacklistRemoved {
					if r.Blacklisted == nil {
						r.Blacklisted = map[string]int{}
					}
					r.Blacklisted[a.Address]++
				}
			}
		}
		if h.Status == workflow.HostSucceeded && !noteworthy(h.Unban) {
			r.NotBlocked++
			continue
		}
		if len(r.Named) >= workflow.MaxNamed {
			r.Unnamed++
			continue
		}
		r.Named = append(r.Named, h)
	}
	r.SilentCount = len(r.Silent)
	if len(r.Silent) > workflow.MaxNamed {
		r.Silent = r.Silent[:workflow.MaxNamed]
	}
	return r
}

// noteworthy: the host did something the asker should hear of.
func noteworthy(u *hostreport.Unban) bool {
	if u == nil {
		return false
	}
	for _, r := range u.Results {
		if r.WasBlocked || len(r.Removed) > 0 || r.BlacklistRemoved || r.Blacklisted || r.StillBlocked || r.Exception != nil {
			return true
		}
	}
	return false
}

func (h *Handler) readOutcome(ctx context.Context, key string) (*Outcome, error) {
	if h.Store == nil {
		return nil, nil
	}
	body, _, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
	if errors.Is(err, s3obj.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var o Outcome
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, nil // rewritten by the next poll
	}
	return &o, nil
}

func (h *Handler) writeOutcome(ctx context.Context, key string, o *Outcome) error {
	if h.Store == nil {
		return nil
	}
	body, _ := json.Marshal(o)
	return s3obj.PutAlways(ctx, h.Store, h.Cfg.Bucket, key, body)
}

// takeLease makes this invocation the command's one SSM poller if nobody
// else is (or the holder's lease ran out: a poller that died).
func (h *Handler) takeLease(ctx context.Context, commandID, me string) (bool, error) {
	if h.Store == nil {
		return true, nil
	}
	key := h.Cfg.LeasePrefix + commandID + ".json"
	body, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
	now := h.Cfg.Now()
	switch {
	case errors.Is(err, s3obj.ErrNotFound):
		etag = ""
	case err != nil:
		return false, err
	default:
		var l lease
		if json.Unmarshal(body, &l) == nil && l.Holder != me && now.Before(l.Until) {
			return false, nil
		}
	}
	nb, _ := json.Marshal(lease{Holder: me, Until: now.Add(h.Cfg.LeaseTTL)})
	err = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, nb, etag)
	if errors.Is(err, s3obj.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// releaseLease lets the next waiter poll at once instead of after the TTL.
func (h *Handler) releaseLease(ctx context.Context, commandID, me string) {
	if h.Store == nil {
		return
	}
	key := h.Cfg.LeasePrefix + commandID + ".json"
	body, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
	var l lease
	if err != nil || json.Unmarshal(body, &l) != nil || l.Holder != me {
		return
	}
	expired, _ := json.Marshal(lease{Holder: me})
	_ = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, expired, etag)
}

func holderID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (h *Handler) sleep(ctx context.Context, d time.Duration) error {
	if h.Cfg.Sleep != nil {
		return h.Cfg.Sleep(ctx, d)
	}
	return pause.For(ctx, d)
}
