// Package unban serves the unban machine's RemoveBlockOnHosts state: it
// gets the unban SSM Command document (host/sshguard-unban.sh with the
// addresses) run on every tagged host, now, and returns the command whose
// answers the reply is made of. RemoveBlacklistedOnHosts is the same with
// removeBlacklisted, once an SRE approved removing blacklisted entries.
//
// Every tagged host is asked, whatever the stored lists say: they are up to
// a minute old, and the most common request comes seconds after the block.
// The command targets the tag, so any number of hosts takes one SendCommand
// (SSM's 50-instance limit applies to InstanceIds only).
//
// Requests for the same addresses share commands (shared/coalesce): a
// command sent after this execution started is as live as one of its own.
// A retried or redriven task finds the command it already sent, so the
// hosts are not asked twice; if they were (a lost record), removing a block
// twice is a no-op and the script reports was_blocked only once.
package unban

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/coalesce"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// ParameterName is the SSM document parameter (a StringList with an
// allowedPattern) carrying the addresses.
const ParameterName = ssmdoc.AddressesParam

// MaxAddresses is what one message may ask for; the document's addresses
// parameter has the same maxItems.
const MaxAddresses = message.MaxAddresses

// Config holds the environment-derived settings.
type Config struct {
	UnbanDocument string // UNBAN_DOCUMENT: SSM document name
	ssmcmd.Delivery
	Now func() time.Time
}

// Handler is the Lambda handler.
type Handler struct {
	SSM      ssmcmd.Sender
	Coalesce *coalesce.Store
	Cfg      Config
	Log      *slog.Logger
}

// New returns a Handler with defaults filled in; log nil means slog.Default().
func New(ssm ssmcmd.Sender, commands *coalesce.Store, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if commands.Now == nil {
		commands.Now = cfg.Now
	}
	if commands.Log == nil {
		commands.Log = log
	}
	return &Handler{SSM: ssm, Coalesce: commands, Cfg: cfg, Log: log}
}

// Handle validates the request and returns the command answering it.
func (h *Handler) Handle(ctx context.Context, in workflow.UnbanInput) (workflow.UnbanCommand, error) {
	addrs, err := ValidateAddresses(in.Addresses)
	if err != nil {
		return workflow.UnbanCommand{}, err
	}
	started, err := time.Parse(time.RFC3339Nano, in.Started)
	if err != nil || in.Execution == "" {
		return workflow.UnbanCommand{}, &taskerr.InvalidInputError{Reason: "started (RFC 3339) and execution are required"}
	}
	params := map[string][]string{ParameterName: addrs}
	// An SRE-approved removal from the blacklist shares no command with
	// plain requests for the same addresses.
	key := addrs
	if in.RemoveBlacklisted {
		params[ssmdoc.RemoveBlacklistedParam] = []string{"true"}
		key = append(slices.Clone(addrs), "+"+ssmdoc.RemoveBlacklistedParam)
	}
	send := func(ctx context.Context) (string, time.Time, error) {
		ref, err := h.Cfg.SendCommand(ctx, h.SSM, h.Cfg.UnbanDocument, params,
			workflow.CommandRequest{AllHosts: true}, comment(addrs), h.Cfg.Now(), h.Log)
		if err != nil {
			return "", time.Time{}, err
		}
		deadline, _ := time.Parse(time.RFC3339, ref.Deadline)
		return ref.CommandIDs[0], deadline, nil
	}
	rec, shared, err := h.Coalesce.Obtain(ctx, key, started, in.Execution, send)
	if err != nil {
		return workflow.UnbanCommand{}, err
	}
	h.Log.Info("unban command", "addresses", len(addrs), "command_id", rec.CommandID, "shared", shared,
		"sent_by", rec.SentBy, "waited_ms", h.Cfg.Now().Sub(started).Milliseconds())
	return workflow.UnbanCommand{
		CommandID: rec.CommandID,
		SentAt:    rec.SentAt.UTC().Format(time.RFC3339Nano),
		Deadline:  rec.Deadline.UTC().Format(time.RFC3339),
		Shared:    shared,
		Key:       h.Coalesce.Key(key),
	}, nil
}

// ValidateAddresses checks every address strictly (defence in depth: the
// document's allowedPattern checks the syntax again on the SSM side and the
// script parses them once more). Non-normalized forms are refused, not
// rewritten. Duplicates are dropped; order is kept.
func ValidateAddresses(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, &taskerr.InvalidInputError{Reason: "no addresses"}
	}
	if len(in) > MaxAddresses {
		return nil, &taskerr.InvalidInputError{Reason: fmt.Sprintf("%d addresses (at most %d)", len(in), MaxAddresses)}
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if _, err := banlist.ParseAddress(s); err != nil {
			return nil, &taskerr.InvalidInputError{Reason: err.Error()}
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func comment(addrs []string) string {
	c := "sshguard self-service unban: " + strings.Join(addrs, " ")
	if len(c) > 100 {
		c = fmt.Sprintf("sshguard self-service unban: %d addresses", len(addrs))
	}
	return c
}
