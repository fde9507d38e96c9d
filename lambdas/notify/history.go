package notify

import (
	"context"
	"slices"

	"sshguard-unban/shared/history"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/workflow"
)

// History records answered requests (shared/history).
type History interface {
	Append(ctx context.Context, r history.Record) error
}

// record notes an answered unban request for the ban-list page. It runs
// after the answer was posted and never fails the task: a lost record only
// leaves a gap on the page (the execution history and the audit line keep
// the request).
func (h *Handler) record(ctx context.Context, kind, execution string, st workflow.State) {
	p := st.Parsed
	if h.History == nil || p == nil || (p.Intent != message.IntentUnban && p.Intent != message.IntentKeep) {
		return
	}
	result, hosts := outcome(kind, st)
	r := history.Record{Time: h.Cfg.Now(), AccountID: st.Request.AccountID, RoomID: st.Request.RoomID,
		Addresses: p.Addresses, Result: result, Hosts: hosts, Execution: execution}
	if err := h.History.Append(ctx, r); err != nil {
		h.Log.ErrorContext(ctx, "could not record the request in the history", "execution", execution, "error", err)
	}
}

// outcome is what came of a request, in one word, and the hosts that freed
// an address.
func outcome(kind string, st workflow.State) (string, []string) {
	p, pol, ap := st.Parsed, st.Policy, st.Approval
	switch {
	case kind == workflow.NotifyFailure:
		return history.ResultFailed, nil
	case p.Intent == message.IntentKeep:
		return history.ResultKept, nil
	case len(p.Addresses) == 0:
		return history.ResultInvalid, nil
	case pol != nil && pol.Decision == workflow.DecisionRefuse && pol.Reason != workflow.ReasonBlacklisted:
		return history.ResultRefused, nil
	case ap != nil && ap.Status == workflow.DecisionDenied && st.Check == nil:
		return history.ResultDenied, nil
	case ap != nil && ap.Status == "expired" && st.Check == nil:
		return history.ResultExpired, nil
	case st.Check == nil:
		return history.ResultUnknown, nil
	}
	c := st.Check
	named := c.Named
	if bc := st.BlacklistCheck; bc != nil {
		named = append(slices.Clone(named), bc.Named...)
	}
	var hosts []string
	problem := len(c.Silent) > 0 || c.SilentCount > 0
	for _, o := range named {
		if o.Status != workflow.HostSucceeded || o.Unban == nil {
			problem = true
			continue
		}
		for _, r := range o.Unban.Results {
			switch {
			case r.StillBlocked || (r.Blacklisted && !r.BlacklistRemoved):
				problem = true
			case r.WasBlocked:
				hosts = append(hosts, hostLabel(o))
			}
		}
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	switch {
	case len(hosts) > 0 && problem:
		return history.ResultPartial, hosts
	case len(hosts) > 0:
		return history.ResultUnblocked, hosts
	case problem:
		return history.ResultUnknown, nil
	}
	return history.ResultNotBlocked, nil
}

// hostLabel is a host's name as its report gave it (not escaped for
// Chatwork: the page escapes for HTML itself).
func hostLabel(o workflow.HostOutcome) string {
	switch {
	case o.Host != "":
		return o.Host
	case o.Unban != nil && o.Unban.Host != "":
		return o.Unban.Host
	}
	return o.InstanceID
}
