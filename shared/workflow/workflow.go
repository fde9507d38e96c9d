// Package workflow defines the JSON that flows between the states of the
// unban and refresh state machines (statemachine/*.asl.json). Every task
// Lambda decodes its input into one of these types and returns another, so
// the execution history in the Step Functions console stays small and
// readable: addresses, hosts and counts, never raw firewall dumps.
package workflow

import (
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/message"
)

// Request is the Chatwork message the webhook hands to the unban state
// machine, as the execution input {"request": Request}.
type Request struct {
	RoomID    string `json:"room_id"`
	MessageID string `json:"message_id"`
	AccountID string `json:"account_id"` // the asker; the reply mentions them
	Body      string `json:"body"`
	SentAt    int64  `json:"sent_at"` // Unix time
}

// Match says that Address is blocked on a host through Entry: the address
// itself or a prefix containing it.
type Match struct {
	Address string `json:"address"`
	Entry   string `json:"entry"`
}

// HostMatch is a host whose stored ban list blocks at least one address.
type HostMatch struct {
	InstanceID string  `json:"instance_id"`
	Host       string  `json:"host"`
	Matches    []Match `json:"matches"`
}

// LookupInput is the lookup task's input.
type LookupInput struct {
	Addresses []string `json:"addresses"`
}

// MaxListed bounds the hosts a lookup result names (the state must stay far
// below Step Functions' 256 KiB with any fleet); the rest are counted.
const MaxListed = 20

// LookupResult is what the stored lists said when the request came: the
// audit's "before". The verdict never comes from here: every tagged host is
// asked at request time (RemoveBlockOnHosts).
type LookupResult struct {
	Listed      []HostMatch `json:"listed"`       // hosts whose stored list blocks an address (at most MaxListed)
	ListedHosts int         `json:"listed_hosts"` // all such hosts
	Hosts       int         `json:"hosts"`        // hosts in the index
	// StaleHosts counts lists older than the freshness bound: what the
	// lists said about those hosts was already old.
	StaleHosts int    `json:"stale_hosts"`
	Oldest     string `json:"oldest,omitempty"` // the oldest list's report time, RFC 3339
	// Servers are the asked addresses that are the hosts' own (from their
	// reports): someone who asks for one most likely copied the server's
	// address instead of their own.
	Servers []Server `json:"servers,omitempty"`
}

// Server is an asked address that tagged hosts have as their own.
type Server struct {
	Address string   `json:"address"`
	Hosts   []string `json:"hosts"` // at most MaxNamed names
	Count   int      `json:"count"` // all such hosts
}

// UnbanInput is the unban task's input.
type UnbanInput struct {
	Addresses []string `json:"addresses"`
	// Started is $$.Execution.StartTime: a command sent after it was sent
	// after the message, so its answers are live for this request and it may
	// be shared (Step Functions' clock, not Chatwork's).
	Started   string `json:"started"`
	Execution string `json:"execution"`
	// RemoveBlacklisted: an SRE approved removing these addresses from
	// sshguard's blacklist too (the document's removeBlacklisted).
	RemoveBlacklisted bool `json:"remove_blacklisted,omitempty"`
}

// UnbanCommand is the unban task's output: the one command whose answers
// serve this request.
type UnbanCommand struct {
	CommandID string `json:"command_id"`
	// SentAt is when it was sent (just before SendCommand), RFC 3339 with
	// fractions.
	SentAt string `json:"sent_at"`
	// Deadline is when SSM gives up delivering it (its TimeoutSeconds).
	Deadline string `json:"deadline"`
	// Shared is true when another request sent it (a colleague behind the
	// same address asked at the same time).
	Shared bool `json:"shared"`
	// Key is the coalescing record (shared/coalesce) of the addresses.
	Key string `json:"key"`
}

// Check modes of wait-for-command for an unban command (CheckInput.Mode).
const (
	// CheckReply: done once every targeted host has answered or is silent
	// (not picked up within the pickup bound, its agent not connected, or
	// still running past the run bound): what the reply needs.
	CheckReply = "reply"
	// CheckFinal: done once every host has answered or the command's
	// deadline has passed: what a follow-up about late hosts needs.
	CheckFinal = "final"
)

// MaxNamed bounds the hosts an unban check names in the state (those with
// something to say: freed, failed, left alone, silent); hosts that simply
// did not block the address are counted. The full per-host outcome is in S3
// (CheckResult.OutcomeKey).
const MaxNamed = 50

// CommandRequest asks the refresh-list task (action "request", document
// "report") to send an SSM command.
type CommandRequest struct {
	Addresses   []string `json:"addresses,omitempty"`
	InstanceIDs []string `json:"instance_ids,omitempty"`
	AllHosts    bool     `json:"all_hosts,omitempty"` // target every instance with the target tag
}

// CommandRef identifies sent SSM commands (one per batch of ≤ 50 instances).
type CommandRef struct {
	CommandIDs []string `json:"command_ids"`
	// Deadline (RFC 3339) after which wait-for-command stops waiting and
	// reports the hosts still pending as timed out.
	Deadline string `json:"deadline"`
	// Skipped are instances SSM refused (not managed: agent stopped or not
	// registered). wait-for-command reports them as offline so they are not
	// silently missing from the reply. Always present (possibly empty) so
	// the ASL can pass it on with a JSONPath.
	Skipped []string `json:"skipped"`
}

// Per-host command outcomes, as mapped by wait-for-command from SSM statuses.
const (
	HostPending   = "pending"   // Pending / InProgress / Delayed
	HostSucceeded = "succeeded" // Success and the script's JSON parsed
	HostFailed    = "failed"    // Failed / Cancelled / script error
	HostTimedOut  = "timed_out" // TimedOut, or still pending at the deadline
	HostOffline   = "offline"   // Undeliverable / Terminated: agent not reachable
	// HostSilent: no answer yet when the reply had to go (agent not
	// connected, command not picked up within the pickup bound, or still
	// running past the run bound). Not final: a later check may see it.
	HostSilent = "silent"
)

// HostOutcome is one host's result of a command.
type HostOutcome struct {
	InstanceID string            `json:"instance_id"`
	Host       string            `json:"host,omitempty"` // from the script output when known
	Status     string            `json:"status"`         // Host* constants
	Detail     string            `json:"detail,omitempty"`
	Unban      *hostreport.Unban `json:"unban,omitempty"` // parsed unban output (unban commands only)
}

// CheckInput is wait-for-command's input: a report command (CommandRef,
// polled once per call; the refresh machine) or, with Mode set, the unban
// command of a request (polled within the call until Mode is satisfied).
type CheckInput struct {
	CommandRef

	Mode  string        `json:"mode,omitempty"` // CheckReply or CheckFinal
	Unban *UnbanCommand `json:"unban,omitempty"`
}

// CheckResult is wait-for-command's output; the Choice state loops while
// Done is false.
type CheckResult struct {
	Done bool `json:"done"`
	// Hosts lists the outcomes of a report command other than success (at
	// most MaxNamed; Unnamed counts the rest); Targeted and Answered count
	// every host.
	Hosts []HostOutcome `json:"hosts,omitempty"`

	// For an unban command: Targeted hosts, of which Answered have
	// answered (succeeded or failed). Named are those with something to
	// say (at most MaxNamed, by instance id); NotBlocked counts the hosts
	// where no address was blocked, Unnamed those the cap left out.
	Targeted   int           `json:"targeted,omitempty"`
	Answered   int           `json:"answered,omitempty"`
	Named      []HostOutcome `json:"named,omitempty"`
	NotBlocked int           `json:"not_blocked,omitempty"`
	Unnamed    int           `json:"unnamed,omitempty"`
	// Freed counts, per address, every host that freed it (Named may
	// name only some of them).
	Freed map[string]int `json:"freed,omitempty"`
	// Checked names the hosts that answered (at most MaxNamed; Answered
	// counts them all), for "not blocked on web-1, git-1 and db-1".
	Checked []string `json:"checked,omitempty"`
	// Blacklisted counts, per address, the hosts that left it blocked
	// because sshguard's blacklist holds it (an SRE decides).
	Blacklisted map[string]int `json:"blacklisted,omitempty"`
	// Silent are the hosts without an answer when the check ended (at
	// most MaxNamed); SilentCount counts them all.
	Silent      []HostOutcome `json:"silent,omitempty"`
	SilentCount int           `json:"silent_count,omitempty"`
	// OutcomeKey is the S3 object with every host's outcome; CheckedAt
	// when the answers were read (RFC 3339).
	OutcomeKey string `json:"outcome_key,omitempty"`
	CheckedAt  string `json:"checked_at,omitempty"`
}

// RefreshInput is refresh-list's input: Action "request" sends the report
// document (CommandRequest fields apply); Action "store" reads the outputs of
// CommandIDs and stores each host's report in S3; Action "store_unban" does
// the same with the reports inside an unban command's outputs (the unban
// script prints the host's post-unban report).
type RefreshInput struct {
	Action string `json:"action"` // "request" | "store" | "store_unban"
	CommandRequest
	CommandRef
}

// NewBan is an entry that appeared on a host since its previous stored list.
type NewBan struct {
	InstanceID string `json:"instance_id"`
	Host       string `json:"host"`
	Entry      string `json:"entry"`
	Time       string `json:"time"` // report time, RFC 3339
	// Blacklisted: sshguard never releases it by itself.
	Blacklisted bool `json:"blacklisted,omitempty"`
	// BlockTime is the host's BLOCK_TIME in seconds (0: unknown): how long
	// a first block lasts.
	BlockTime int `json:"block_time,omitempty"`
}

// RefreshResult is refresh-list's output (for either action; unused fields
// stay empty).
type RefreshResult struct {
	CommandRef
	// Stored and Failed name at most MaxNamed instances each (the first by
	// instance id), so that 5,000 hosts fit in the execution's state; the
	// counts are complete and the index in S3 has every host.
	Stored      []string `json:"stored,omitempty"` // instance ids whose list was written
	Failed      []string `json:"failed,omitempty"` // instance ids with no usable report
	StoredCount int      `json:"stored_count,omitempty"`
	FailedCount int      `json:"failed_count,omitempty"`
	NewBans     []NewBan `json:"new_bans,omitempty"`
}

// TaskError is what a Catch puts at ResultPath "$.error".
type TaskError struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// State is the unban execution's state document ($): the request, then each
// step's result under its own key (ResultPath), so any later state and the
// reply can read what happened before.
type State struct {
	Request Request         `json:"request"`
	Parsed  *message.Result `json:"parsed,omitempty"`
	Unban   *UnbanCommand   `json:"unban,omitempty"`  // the command answering this request
	Lookup  *LookupResult   `json:"lookup,omitempty"` // what the stored lists said
	Check   *CheckResult    `json:"check,omitempty"`  // the hosts' answers, for the reply
	Late    *CheckResult    `json:"late,omitempty"`   // the answers after the reply (silent hosts)
	Refresh *RefreshResult  `json:"refresh,omitempty"`
	// Report is the refresh machine's report-command check (that machine
	// shares this state document).
	Report *CheckResult `json:"report,omitempty"`
	// Error is set by a Catch on the main path (the reply becomes a failure
	// reply); LookupError when the stored lists could not be read (the
	// unban goes on: the verdict comes from the hosts).
	Error       *TaskError `json:"error,omitempty"`
	LookupError *TaskError `json:"lookup_error,omitempty"`
	// Policy is CheckPolicy's decision (or, for an SRE's answer,
	// DecideApproval's; after blacklisted entries, the approval asked for
	// them); Approval is how the approval it asked for ended.
	Policy *PolicyResult `json:"policy,omitempty"`
	// BlacklistUnban and BlacklistCheck are the second round, approved by
	// an SRE: the blacklisted entries removed.
	BlacklistUnban *UnbanCommand `json:"blacklist_unban,omitempty"`
	BlacklistCheck *CheckResult  `json:"blacklist_check,omitempty"`
	Approval       *Approval     `json:"approval,omitempty"`
	ApprovalError  *TaskError    `json:"approval_error,omitempty"`
}

// Policy task modes.
const (
	PolicyCheck       = "check"       // may this asker unban these addresses now?
	PolicyBlacklisted = "blacklisted" // the hosts left blacklisted entries: ask an SRE
	PolicyDecide      = "decide"      // an SRE's approve/deny
	PolicyPage        = "page"        // may this account see the ban-list page?
)

// PolicyInput is the policy task's input: the whole state (check reads the
// request, the parse result and, when the lists could be read, the lookup).
type PolicyInput struct {
	Mode      string `json:"mode"`
	Execution string `json:"execution"`
	State     State  `json:"state"`
}

// Policy decisions. Check: allow, refuse (a guest, an unknown account),
// approve (an SRE must approve first). Decide: approved, denied, or
// refused with a reason (not an SRE, no such code, already decided).
const (
	DecisionAllow    = "allow"
	DecisionRefuse   = "refuse"
	DecisionApprove  = "approve"
	DecisionApproved = "approved"
	DecisionDenied   = "denied"
)

// Policy reasons, for the reply and the audit.
const (
	ReasonGuest          = "guest"           // not of an allowed organization, not on the allowlist
	ReasonAccountQuota   = "account_quota"   // the asker's hourly or daily quota is used up
	ReasonAddressQuota   = "address_quota"   // the address was unbanned too often today
	ReasonNeverSelf      = "never_self"      // SREs marked the address never self-service
	ReasonManyHosts      = "many_hosts"      // the lists say it is blocked on many hosts
	ReasonBlacklisted    = "blacklisted"     // the hosts hold it on sshguard's blacklist
	ReasonNotSRE         = "not_sre"         // decide: the account may not approve
	ReasonNotSRERoom     = "not_sre_room"    // decide: not said in the SRE room
	ReasonNoSuchCode     = "no_such_code"    // decide: no approval has this code
	ReasonAlreadyDecided = "already_decided" // decide: someone decided (or it expired) before
	ReasonOwnRequest     = "own_request"     // decide: an SRE's own request needs another SRE
)

// PolicyResult is the policy task's output.
type PolicyResult struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason,omitempty"`
	// Detail is for the SRE room and the history (a quota's numbers, the
	// organization seen), never shown to the asker.
	Detail string `json:"detail,omitempty"`
	// RetryAt (RFC 3339) is when the asker may ask again without approval.
	RetryAt string `json:"retry_at,omitempty"`
	// Code is the approval's code (check: the one to ask for; decide: the
	// one answered), Approval the request an SRE decided (decide).
	Code     string    `json:"code,omitempty"`
	Approval *Approval `json:"approval,omitempty"`
	// Addresses the approval is for, when not all that were asked (the
	// blacklisted ones).
	Addresses []string `json:"addresses,omitempty"`
}

// Approval is an approval request as the state and the SRE's answer see it.
type Approval struct {
	Status    string   `json:"status"` // approved, denied, expired (in the asker's state)
	By        string   `json:"by,omitempty"`
	At        string   `json:"at,omitempty"` // when it was approved (RFC 3339 with fractions)
	Code      string   `json:"code,omitempty"`
	Execution string   `json:"execution,omitempty"`
	AccountID string   `json:"account_id,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// Notify kinds.
const (
	// NotifyReply answers the asker from the state: help, thanks, refused
	// addresses, not banned, or the per-host unban result.
	NotifyReply = "reply"
	// NotifyFailure answers the asker that the unban could not be completed.
	NotifyFailure = "failure"
	// NotifyAlert tells the SRE room that an execution failed.
	NotifyAlert = "alert"
	// NotifyBans announces new blocks in the ban-notification room.
	NotifyBans = "ban_notice"
	// NotifyFollowUp tells the asker that a host silent at reply time has
	// since freed the address (nothing is posted otherwise).
	NotifyFollowUp = "follow_up"
	// NotifyProgress tells the asker the bot is working on it; the reply
	// later edits that message into the answer. Best effort: it never
	// fails, and is skipped when the room is busy.
	NotifyProgress = "progress"
	// NotifyApproval asks the SRE room to approve a request (the state
	// machine waits for the answer with the task token it passes) and tells
	// the asker it is waiting.
	NotifyApproval = "approval"
	// NotifyPageLink answers an SRE's "一覧" / "list" with a signed,
	// short-lived link to the ban-list page (the policy allowed it first).
	// It is the execution's one reply (the same mark as NotifyReply).
	NotifyPageLink = "page_link"
)

// NotifyInput is the notify task's input.
type NotifyInput struct {
	Kind      string   `json:"kind"`
	Execution string   `json:"execution"` // $$.Execution.Name: one user reply per execution
	State     State    `json:"state"`
	NewBans   []NewBan `json:"new_bans,omitempty"` // NotifyBans
	Token     string   `json:"token,omitempty"`    // NotifyApproval: $$.Task.Token
}

// NotifyResult is the notify task's output.
type NotifyResult struct {
	MessageIDs []string `json:"message_ids"`
	// Duplicate is true when this execution had already posted this kind of
	// message (a redrive or retry): nothing was posted again.
	Duplicate bool `json:"duplicate"`
}
