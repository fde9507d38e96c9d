// Package policy is the task that decides who may unban what (the unban
// machine's CheckPolicy state) and carries out an SRE's answer to an
// approval request (DecideApproval).
//
// Check, before any host is touched: the asker must be on the allowlist or
// a member of an allowed organization (Chatwork's room member list, cached);
// an address SREs marked never-self-service, or one the lists show blocked
// on many hosts, needs an SRE's approval; so does a request past the
// asker's or the address's quota. Everything else is allowed. After the
// hosts answered, AskAboutBlacklisted asks for an approval of the entries
// they left on sshguard's blacklist.
//
// Decide: only an SRE (allowlisted account) in the SRE room may answer; the
// answer resumes the asker's waiting execution through its task token
// (SendTaskSuccess / SendTaskFailure), so each request keeps one execution,
// one audit trail, in the console.
//
// Page (CheckPageAccess): an SRE's "一覧" / "list" gets the ban-list page's
// link only from an allowlisted SRE in the SRE room; anyone else is
// refused (and told so politely).
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// Members lists a room's members (chatwork.Client).
type Members interface {
	RoomMembers(ctx context.Context, roomID string) ([]chatwork.Member, error)
}

// Store keeps quotas and the member cache (shared/policystore).
type Store interface {
	Take(ctx context.Context, key string, n, limit int, window time.Duration) (bool, time.Time, error)
	Give(ctx context.Context, key string, n int, window time.Duration) error
	GetMembers(ctx context.Context, roomID string) (map[string]string, time.Time, bool, error)
	PutMembers(ctx context.Context, roomID string, members map[string]string, ttl time.Duration) error
}

// Decided is an approval request after an SRE's answer.
type Decided struct {
	workflow.Approval
	TaskToken string
}

// Errors a Decider returns.
var (
	ErrNoSuchCode     = errors.New("no approval with this code")
	ErrAlreadyDecided = errors.New("the approval was decided or expired before")
)

// Decider records an SRE's answer (pending → approved or denied) and
// returns the request with its task token; on ErrAlreadyDecided the
// returned request says who decided.
type Decider interface {
	Decide(ctx context.Context, code, status, by string) (Decided, error)
	Get(ctx context.Context, code string) (workflow.Approval, error)
}

// Tasks resumes a waiting execution (the Step Functions client).
type Tasks interface {
	SendTaskSuccess(ctx context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
	SendTaskFailure(ctx context.Context, in *sfn.SendTaskFailureInput, opts ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error)
}

// Config is the policy. Zero quotas and thresholds mean none.
type Config struct {
	// AllowedAccounts may always ask; AllowedOrganizations lets every
	// member of those Chatwork organizations ask. Both empty: every member
	// of an allowed room may ask (the webhook's room allowlist).
	AllowedAccounts      []string
	AllowedOrganizations []string
	// SREAccounts may approve or deny, in SRERoomID only.
	SREAccounts []string
	SRERoomID   string

	AccountPerHour, AccountPerDay int // addresses per asker
	AddressPerDay                 int // unbans of one address by anyone
	// ManyHosts: an address the stored lists show blocked on at least this
	// many hosts needs approval (an attacker hits many hosts).
	ManyHosts int
	// NeverSelfService: addresses in these prefixes always need approval.
	NeverSelfService []netip.Prefix
	// MembersTTL is how long a room's member list is trusted (default 10
	// minutes): a guest added to the room is known within it.
	MembersTTL time.Duration
	// NewCode makes an approval code (shared/policystore.NewCode).
	NewCode func() string
	Now     func() time.Time
}

// Handler decides.
type Handler struct {
	members Members
	store   Store
	decider Decider
	tasks   Tasks
	cfg     Config
	log     *slog.Logger

	mu    sync.Mutex
	cache map[string]roomMembers // room → members, in this instance
}

type roomMembers struct {
	orgs    map[string]string // account → organization
	fetched time.Time
}

// New returns a Handler; log nil means slog.Default().
func New(members Members, store Store, decider Decider, tasks Tasks, cfg Config, log *slog.Logger) *Handler {
	if cfg.MembersTTL <= 0 {
		cfg.MembersTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{members: members, store: store, decider: decider, tasks: tasks, cfg: cfg, log: log, cache: map[string]roomMembers{}}
}

// Handle runs the input's mode.
func (h *Handler) Handle(ctx context.Context, in workflow.PolicyInput) (workflow.PolicyResult, error) {
	st := in.State
	if st.Parsed == nil || st.Request.AccountID == "" || st.Request.RoomID == "" {
		return workflow.PolicyResult{}, &taskerr.InvalidInputError{Reason: "request or parse result missing"}
	}
	var res workflow.PolicyResult
	var err error
	switch in.Mode {
	case workflow.PolicyCheck:
		res, err = h.check(ctx, st)
	case workflow.PolicyBlacklisted:
		res = h.blacklisted(st)
	case workflow.PolicyDecide:
		res, err = h.decide(ctx, st)
	case workflow.PolicyPage:
		res = h.page(st.Request)
	default:
		return res, &taskerr.InvalidInputError{Reason: fmt.Sprintf("unknown mode %q", in.Mode)}
	}
	if err == nil {
		// The audit log: who asked, what was decided and why.
		h.log.InfoContext(ctx, "policy", "mode", in.Mode, "execution", in.Execution, "account_id", st.Request.AccountID,
			"room_id", st.Request.RoomID, "addresses", st.Parsed.Addresses, "decision", res.Decision, "reason", res.Reason, "code", res.Code)
	}
	return res, err
}

func (h *Handler) check(ctx context.Context, in workflow.State) (workflow.PolicyResult, error) {
	r, addrs := in.Request, in.Parsed.Addresses
	ok, detail, err := h.identity(ctx, r)
	if err != nil {
		return workflow.PolicyResult{}, err
	}
	if !ok {
		return workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonGuest, Detail: detail}, nil
	}
	if h.cfg.SRERoomID != "" && r.RoomID == h.cfg.SRERoomID && !slices.Contains(h.cfg.SREAccounts, r.AccountID) {
		// The SRE room takes requests from SREs only (it is open to the
		// webhook for their answers).
		return workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonNotSRE, Detail: "an unban request in the SRE room"}, nil
	}
	approve := func(reason, detail string, retryAt time.Time) workflow.PolicyResult {
		res := workflow.PolicyResult{Decision: workflow.DecisionApprove, Reason: reason, Detail: detail, Code: h.cfg.NewCode()}
		if len(h.cfg.SREAccounts) == 0 || h.cfg.SRERoomID == "" {
			// Nobody could answer an approval request: say so at once.
			res.Decision, res.Code = workflow.DecisionRefuse, ""
		}
		if !retryAt.IsZero() {
			res.RetryAt = retryAt.UTC().Format(time.RFC3339)
		}
		return res
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return workflow.PolicyResult{}, &taskerr.InvalidInputError{Reason: "not an address: " + a}
		}
		for _, p := range h.cfg.NeverSelfService {
			if p.Contains(ip) {
				return approve(workflow.ReasonNeverSelf, a+" is in "+p.String(), time.Time{}), nil
			}
		}
	}
	if lk := in.Lookup; h.cfg.ManyHosts > 0 && lk == nil {
		// The lists could not be read: the rule cannot tell, so it asks.
		return approve(workflow.ReasonManyHosts, "the stored lists could not be read", time.Time{}), nil
	} else if lk != nil && h.cfg.ManyHosts > 0 && lk.ListedHosts >= h.cfg.ManyHosts {
		return approve(workflow.ReasonManyHosts, fmt.Sprintf("the stored lists show it blocked on %d of %d hosts", lk.ListedHosts, lk.Hosts), time.Time{}), nil
	}
	return h.quotas(ctx, r.AccountID, addrs, approve)
}

// addressEpisode: requests for one address within this window count as one
// unban of it.
const addressEpisode = 10 * time.Minute

// blacklisted asks an SRE about the addresses the hosts left blocked
// because sshguard's blacklist holds them; with no SRE to ask, the reply
// says an SRE decides (and the SRE room is told).
func (h *Handler) blacklisted(st workflow.State) workflow.PolicyResult {
	if st.Check == nil || len(st.Check.Blacklisted) == 0 {
		return workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonBlacklisted}
	}
	// Only what was asked: a host's report cannot add addresses.
	addrs := slices.DeleteFunc(slices.Sorted(maps.Keys(st.Check.Blacklisted)), func(a string) bool {
		return st.Parsed == nil || !slices.Contains(st.Parsed.Addresses, a)
	})
	if len(addrs) == 0 {
		return workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonBlacklisted}
	}
	var on []string
	for _, a := range addrs {
		on = append(on, fmt.Sprintf("%s on %d hosts", a, st.Check.Blacklisted[a]))
	}
	res := workflow.PolicyResult{Reason: workflow.ReasonBlacklisted, Addresses: addrs,
		Detail: "blacklisted: " + strings.Join(on, ", ")}
	if len(h.cfg.SREAccounts) == 0 || h.cfg.SRERoomID == "" {
		res.Decision = workflow.DecisionRefuse
		return res
	}
	res.Decision, res.Code = workflow.DecisionApprove, h.cfg.NewCode()
	return res
}

// quota is one counter a request takes from.
type quota struct {
	key    string
	n      int
	limit  int
	window time.Duration
	reason string
}

// quotas takes from every quota the request touches, all or none: a
// request over one gives back what it took from the others.
func (h *Handler) quotas(ctx context.Context, account string, addrs []string, approve func(string, string, time.Time) workflow.PolicyResult) (workflow.PolicyResult, error) {
	qs := []quota{
		{"account#" + account + "#hour", len(addrs), h.cfg.AccountPerHour, time.Hour, workflow.ReasonAccountQuota},
		{"account#" + account + "#day", len(addrs), h.cfg.AccountPerDay, 24 * time.Hour, workflow.ReasonAccountQuota},
	}
	var episodes []quota // the episodes this request opened
	for _, a := range addrs {
		// Unbans of an address, not requests: a whole office behind one
		// address asking within minutes is one unban (they share the
		// command), so only the request that opens an episode is counted.
		// A refused request gives its episode back (below): the next
		// request is counted again, so asking twice does not get past the
		// daily quota.
		if h.cfg.AddressPerDay > 0 {
			ep := quota{"address#" + a + "#episode", 1, 1, addressEpisode, ""}
			first, _, err := h.store.Take(ctx, ep.key, 1, 1, ep.window)
			if err != nil {
				h.giveBack(ctx, episodes)
				return workflow.PolicyResult{}, err
			}
			if !first {
				continue
			}
			episodes = append(episodes, ep)
		}
		qs = append(qs, quota{"address#" + a + "#day", 1, h.cfg.AddressPerDay, 24 * time.Hour, workflow.ReasonAddressQuota})
	}
	qs = slices.DeleteFunc(qs, func(q quota) bool { return q.limit <= 0 })
	// All at once (they are on the request path before any host is asked);
	// then what was taken is given back if any one refused.
	type took struct {
		ok      bool
		retryAt time.Time
		err     error
	}
	res := make([]took, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Go(func() {
			res[i].ok, res[i].retryAt, res[i].err = h.store.Take(ctx, q.key, q.n, q.limit, q.window)
		})
	}
	wg.Wait()
	var taken []quota
	refused, failed := -1, error(nil)
	for i, r := range res {
		switch {
		case r.err != nil:
			failed = r.err
		case !r.ok:
			if refused < 0 {
				refused = i
			}
		default:
			taken = append(taken, qs[i])
		}
	}
	if failed != nil || refused >= 0 {
		h.giveBack(ctx, append(taken, episodes...))
	}
	if failed != nil {
		return workflow.PolicyResult{}, failed
	}
	if refused >= 0 {
		q := qs[refused]
		return approve(q.reason, fmt.Sprintf("%s: %d per %s", q.key, q.limit, q.window), res[refused].retryAt), nil
	}
	return workflow.PolicyResult{Decision: workflow.DecisionAllow}, nil
}

func (h *Handler) giveBack(ctx context.Context, taken []quota) {
	for _, q := range taken {
		if err := h.store.Give(context.WithoutCancel(ctx), q.key, q.n, q.window); err != nil {
			// Lost units only make the quota stricter until the window ends.
			h.log.WarnContext(ctx, "could not give back a quota", "key", q.key, "error", err)
		}
	}
}

// identity reports whether the asker may ask at all, and what was seen.
func (h *Handler) identity(ctx context.Context, r workflow.Request) (bool, string, error) {
	if slices.Contains(h.cfg.AllowedAccounts, r.AccountID) {
		return true, "allowlisted account", nil
	}
	if len(h.cfg.AllowedOrganizations) == 0 {
		return len(h.cfg.AllowedAccounts) == 0, "not on the account allowlist", nil
	}
	orgs, err := h.roomMembers(ctx, r.RoomID, r.AccountID, time.Unix(r.SentAt, 0))
	if err != nil {
		return false, "", err
	}
	org, member := orgs[r.AccountID]
	switch {
	case !member:
		return false, "not a member of room " + r.RoomID, nil
	case slices.Contains(h.cfg.AllowedOrganizations, org):
		return true, "organization " + org, nil
	}
	return false, "organization " + org + " is not allowed", nil
}

// roomMembers is the room's account → organization map: from this
// instance's memory, the shared cache, or Chatwork. Chatwork delivers a
// message only from a member, so an account the list does not know joined
// after the list was fetched: the list is fetched again unless it is newer
// than the message (then the asker would be in it). A burst of colleagues
// asking in the same seconds so costs one member-list request per second at
// most, not one each (300 requests per 5 minutes per token, shared with the
// replies).
func (h *Handler) roomMembers(ctx context.Context, roomID, account string, sent time.Time) (map[string]string, error) {
	now := h.cfg.Now()
	h.mu.Lock()
	c, ok := h.cache[roomID]
	h.mu.Unlock()
	fresh := func(c roomMembers) bool {
		if _, known := c.orgs[account]; known {
			return now.Sub(c.fetched) < h.cfg.MembersTTL
		}
		// send_time is in whole seconds.
		return !c.fetched.Before(sent.Add(time.Second))
	}
	if ok && fresh(c) {
		return c.orgs, nil
	}
	orgs, fetched, found, err := h.store.GetMembers(ctx, roomID)
	if err != nil {
		h.log.WarnContext(ctx, "could not read the member cache", "room_id", roomID, "error", err)
	} else if found {
		c = roomMembers{orgs: orgs, fetched: fetched}
		h.remember(roomID, c)
		if fresh(c) {
			return orgs, nil
		}
	}
	ms, err := h.members.RoomMembers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	orgs = make(map[string]string, len(ms))
	for _, m := range ms {
		orgs[m.AccountID.String()] = m.OrganizationID.String()
	}
	h.remember(roomID, roomMembers{orgs: orgs, fetched: now})
	if err := h.store.PutMembers(ctx, roomID, orgs, h.cfg.MembersTTL); err != nil {
		h.log.WarnContext(ctx, "could not cache the room members", "room_id", roomID, "error", err)
	}
	return orgs, nil
}

func (h *Handler) remember(roomID string, c roomMembers) {
	h.mu.Lock()
	h.cache[roomID] = c
	h.mu.Unlock()
}

// decide carries out an SRE's answer.
func (h *Handler) decide(ctx context.Context, in workflow.State) (workflow.PolicyResult, error) {
	r, code := in.Request, in.Parsed.Code
	res := workflow.PolicyResult{Decision: workflow.DecisionRefuse, Code: code}
	switch {
	case h.cfg.SRERoomID == "" || r.RoomID != h.cfg.SRERoomID:
		res.Reason = workflow.ReasonNotSRERoom
		return res, nil
	case !slices.Contains(h.cfg.SREAccounts, r.AccountID):
		res.Reason = workflow.ReasonNotSRE
		return res, nil
	}
	status := workflow.DecisionApproved
	if in.Parsed.Intent == message.IntentDeny {
		status = workflow.DecisionDenied
	}
	if status == workflow.DecisionApproved {
		// Four eyes: an SRE's own request needs another SRE.
		if a, err := h.decider.Get(ctx, code); err == nil && a.AccountID == r.AccountID {
			res.Reason = workflow.ReasonOwnRequest
			return res, nil
		}
	}
	d, err := h.decider.Decide(ctx, code, status, r.AccountID)
	switch {
	case errors.Is(err, ErrNoSuchCode):
		res.Reason = workflow.ReasonNoSuchCode
		return res, nil
	case errors.Is(err, ErrAlreadyDecided) && d.Status == status && d.By == r.AccountID:
		// This SRE's own decision, recorded by an earlier attempt of this
		// task that may have stopped before the execution was resumed:
		// resume it (again; a resumed one answers "gone", which is fine).
	case errors.Is(err, ErrAlreadyDecided):
		res.Reason, res.Approval = workflow.ReasonAlreadyDecided, &d.Approval
		return res, nil
	case err != nil:
		return workflow.PolicyResult{}, err
	}
	retried := err != nil
	res.Decision, res.Approval = status, &d.Approval
	if err := h.resume(ctx, d, status, r.AccountID); err != nil {
		var gone *taskGoneError
		if errors.As(err, &gone) && retried {
			return res, nil // resumed by the earlier attempt
		}
		if errors.As(err, &gone) {
			// The asker's execution stopped waiting (it timed out and was
			// answered): the answer came too late.
			res.Decision, res.Reason = workflow.DecisionRefuse, workflow.ReasonAlreadyDecided
			res.Approval.Status = "expired"
			return res, nil
		}
		return workflow.PolicyResult{}, err
	}
	return res, nil
}

// page decides whether the asker may have a link to the ban-list page: the
// same SREs, in the same room, as approvals. The link is bound to the
// account, and the page checks the account again against its own list.
func (h *Handler) page(r workflow.Request) workflow.PolicyResult {
	switch {
	case h.cfg.SRERoomID == "" || r.RoomID != h.cfg.SRERoomID:
		return workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonNotSRERoom}
	case !slices.Contains(h.cfg.SREAccounts, r.AccountID):
		return workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonNotSRE}
	}
	return workflow.PolicyResult{Decision: workflow.DecisionAllow}
}

type taskGoneError struct{ err error }

func (e *taskGoneError) Error() string { return e.err.Error() }

// resume hands the answer to the waiting execution.
func (h *Handler) resume(ctx context.Context, d Decided, status, by string) error {
	var err error
	if status == workflow.DecisionApproved {
		out, _ := json.Marshal(workflow.Approval{Status: status, By: by, Code: d.Code, At: h.cfg.Now().UTC().Format(time.RFC3339Nano)})
		_, err = h.tasks.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(d.TaskToken), Output: aws.String(string(out))})
	} else {
		_, err = h.tasks.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(d.TaskToken),
			Error: aws.String(DeniedError), Cause: aws.String(by)})
	}
	if err == nil {
		return nil
	}
	if code := awserr.Code(err); code == "TaskTimedOut" || code == "TaskDoesNotExist" || code == "InvalidToken" {
		return &taskGoneError{err}
	}
	return awserr.Classify(err)
}

// DeniedError is the Error an SRE's "deny" fails the waiting Task with
// (the ASL catches it by this name).
const DeniedError = "Denied"

// ParsePrefixes reads "203.0.113.0/24,2001:db8::/32" (addresses mean /32
// or /128).
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
