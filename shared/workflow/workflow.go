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

// Lookup actions, read by the Choice state after LookUpBanLists.
const (
	ActionUnban     = "unban"
	ActionNotBanned = "not_banned"
)

// Match says that Address is blocked on a host through Entry: the address
// itself or a prefix containing it.
type Match struct {
	Address string `json:"address"`
	Entry   string `json:"entry"`
}

// HostMatch is a host whose fresh ban list blocks at least one address.
type HostMatch struct {
	InstanceID string  `json:"instance_id"`
	Host       string  `json:"host"`
	Matches    []Match `json:"matches"`
}

// LookupInput is the lookup task's input.
type LookupInput struct {
	Addresses []string `json:"addresses"`
}

// LookupResult is the lookup task's output.
type LookupResult struct {
	Action string `json:"action"` // ActionUnban or ActionNotBanned
	// Stale is true when some host's list is older than the freshness bound
	// (or missing): a "not banned" answer cannot be trusted, so the unban runs
	// on every tagged host (AllHosts) and the reply says so.
	Stale       bool        `json:"stale"`
	AllHosts    bool        `json:"all_hosts"`
	Targets     []HostMatch `json:"targets"`      // hosts where a fresh list shows a block
	InstanceIDs []string    `json:"instance_ids"` // where to run the unban when !AllHosts
	StaleHosts  []string    `json:"stale_hosts,omitempty"`
}

// CommandRequest asks the unban task (document "unban") or the refresh-list
// task (action "request", document "report") to send an SSM command.
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
)

// HostOutcome is one host's result of a command.
type HostOutcome struct {
	InstanceID string            `json:"instance_id"`
	Host       string            `json:"host,omitempty"` // from the script output when known
	Status     string            `json:"status"`         // Host* constants
	Detail     string            `json:"detail,omitempty"`
	Unban      *hostreport.Unban `json:"unban,omitempty"` // parsed unban output (unban commands only)
}

// CheckInput is wait-for-command's input.
type CheckInput struct {
	CommandRef
	// Parse tells whether to decode each host's output as the unban
	// script's JSON (true for the unban command; the report command's output
	// is read by refresh-list instead, never put into the history).
	ParseUnban bool `json:"parse_unban"`
}

// CheckResult is wait-for-command's output; the Choice state loops while
// Done is false.
type CheckResult struct {
	Done  bool          `json:"done"`
	Hosts []HostOutcome `json:"hosts"`
}

// RefreshInput is refresh-list's input: Action "request" sends the report
// document (CommandRequest fields apply); Action "store" reads the outputs of
// CommandIDs and stores each host's report in S3.
type RefreshInput struct {
	Action string `json:"action"` // "request" | "store"
	CommandRequest
	CommandRef
}

// NewBan is an entry that appeared on a host since its previous stored list.
type NewBan struct {
	InstanceID string `json:"instance_id"`
	Host       string `json:"host"`
	Entry      string `json:"entry"`
	Time       string `json:"time"` // report time, RFC 3339
}

// RefreshResult is refresh-list's output (for either action; unused fields
// stay empty).
type RefreshResult struct {
	CommandRef
	Stored  []string `json:"stored,omitempty"` // instance ids whose list was written
	Failed  []string `json:"failed,omitempty"` // instance ids with no usable report
	NewBans []NewBan `json:"new_bans,omitempty"`
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
	Lookup  *LookupResult   `json:"lookup,omitempty"`
	Unban   *CommandRef     `json:"unban,omitempty"`   // the sent unban command(s)
	Check   *CheckResult    `json:"check,omitempty"`   // per-host unban outcome
	Refresh *RefreshResult  `json:"refresh,omitempty"` // the report command, then what was stored
	Report  *CheckResult    `json:"report,omitempty"`  // report command progress
	// Error is set by a Catch on the main path (the reply becomes a failure
	// reply); RefreshError by a Catch on the list refresh after a finished
	// unban (the reply still gives the unban result).
	Error        *TaskError `json:"error,omitempty"`
	RefreshError *TaskError `json:"refresh_error,omitempty"`
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
)

// NotifyInput is the notify task's input.
type NotifyInput struct {
	Kind      string   `json:"kind"`
	Execution string   `json:"execution"` // $$.Execution.Name: one user reply per execution
	State     State    `json:"state"`
	NewBans   []NewBan `json:"new_bans,omitempty"` // NotifyBans
}

// NotifyResult is the notify task's output.
type NotifyResult struct {
	MessageIDs []string `json:"message_ids"`
	// Duplicate is true when this execution had already posted this kind of
	// message (a redrive or retry): nothing was posted again.
	Duplicate bool `json:"duplicate"`
}
