// Package unban serves the unban machine's RemoveBlockOnHosts state: it sends the unban SSM Command document
// (which runs host/sshguard-unban.sh with the addresses) to the hosts where
// the lookup found a block, or to every tagged host when the lists were
// stale.
//
// Idempotency: a retried or redriven task sends the command again. That is
// harmless: the script only removes entries that are still there and reports
// was_blocked=false for the rest. The command ids of an attempt that failed
// half-way are lost, but those commands still run to completion.
package unban

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/banlist"
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
	SSM ssmcmd.Sender
	Cfg Config
	Log *slog.Logger
}

// New returns a Handler with defaults filled in; log nil means slog.Default().
func New(ssm ssmcmd.Sender, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{SSM: ssm, Cfg: cfg, Log: log}
}

// Handle validates the request and sends the command.
func (h *Handler) Handle(ctx context.Context, in workflow.CommandRequest) (workflow.CommandRef, error) {
	addrs, err := ValidateAddresses(in.Addresses)
	if err != nil {
		return workflow.CommandRef{}, err
	}
	ref, err := h.Cfg.SendCommand(ctx, h.SSM, h.Cfg.UnbanDocument, map[string][]string{ParameterName: addrs}, in, comment(addrs), h.Cfg.Now(), h.Log)
	if err != nil {
		return workflow.CommandRef{}, err
	}
	if len(ref.Skipped) > 0 {
		h.Log.Warn("unban not sent to instances SSM refused", "skipped", ref.Skipped)
	}
	h.Log.Info("unban sent", "addresses", len(addrs), "all_hosts", in.AllHosts,
		"instances", len(in.InstanceIDs), "commands", len(ref.CommandIDs), "deadline", ref.Deadline)
	return ref, nil
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
