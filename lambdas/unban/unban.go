// Package unban is the Unban task: it sends the unban SSM Command document
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
	"sshguard-unban/shared/banlist/ssmcmd"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// ParameterName is the SSM document parameter (a StringList with an
// allowedPattern) carrying the addresses.
const ParameterName = "addresses"

// Defaults.
const (
	DefaultCommandTimeout = 3 * time.Minute
	// DefaultMaxConcurrency: at most 50 hosts run the script at once. The
	// script touches only its own host's firewall, so there is no shared
	// backend to protect; the limit keeps one request from occupying SSM's
	// delivery capacity for the whole fleet at once while still finishing
	// 1,000 hosts in 20 short waves.
	DefaultMaxConcurrency = "50"
	// DefaultMaxErrors: 100% so that failing hosts never stop SSM from
	// running the unban on the others (with a lower value SSM stops
	// dispatching once that many invocations failed; the rest would end
	// "Terminated" and the employee would stay blocked there).
	DefaultMaxErrors = "100%"
	// MaxAddresses is what one message may ask for; the document's
	// addresses parameter has the same maxItems.
	MaxAddresses = message.MaxAddresses
)

// Config holds the environment-derived settings.
type Config struct {
	UnbanDocument string // UNBAN_DOCUMENT: SSM document name
	// DocumentVersion is optional: "$LATEST", "$DEFAULT" (SSM's default when
	// empty) or a version number.
	DocumentVersion string
	TagKey          string // TARGET_TAG_KEY: hosts are targeted by this tag …
	TagValue        string // TARGET_TAG_VALUE: … having this value
	// CommandTimeout is how long wait-for-command waits (Deadline = now +
	// CommandTimeout); it is also the command's delivery timeout
	// (TimeoutSeconds, at least 30 s). Default 3 minutes.
	CommandTimeout time.Duration
	MaxConcurrency string // default DefaultMaxConcurrency
	MaxErrors      string // default DefaultMaxErrors
	// OutputBucket / OutputPrefix: OutputS3BucketName / OutputS3KeyPrefix,
	// so outputs longer than the inline limits can be read in full.
	OutputBucket string
	OutputPrefix string
	Now          func() time.Time
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
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.MaxConcurrency == "" {
		cfg.MaxConcurrency = DefaultMaxConcurrency
	}
	if cfg.MaxErrors == "" {
		cfg.MaxErrors = DefaultMaxErrors
	}
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
	if err := ssmcmd.CheckTargets(in.InstanceIDs, in.AllHosts); err != nil {
		return workflow.CommandRef{}, err
	}
	now := h.Cfg.Now()
	spec := ssmcmd.Spec{
		Document:        h.Cfg.UnbanDocument,
		DocumentVersion: h.Cfg.DocumentVersion,
		Parameters:      map[string][]string{ParameterName: addrs},
		InstanceIDs:     in.InstanceIDs,
		AllHosts:        in.AllHosts,
		TagKey:          h.Cfg.TagKey,
		TagValue:        h.Cfg.TagValue,
		Comment:         comment(addrs),
		MaxConcurrency:  h.Cfg.MaxConcurrency,
		MaxErrors:       h.Cfg.MaxErrors,
		TimeoutSeconds:  int32(h.Cfg.CommandTimeout / time.Second),
		OutputBucket:    h.Cfg.OutputBucket,
		OutputPrefix:    h.Cfg.OutputPrefix,
	}
	sent, err := ssmcmd.Send(ctx, h.SSM, spec, h.Log)
	if err != nil {
		return workflow.CommandRef{}, err
	}
	if len(sent.Skipped) > 0 {
		h.Log.Warn("unban not sent to instances SSM refused", "skipped", sent.Skipped)
	}
	ref := workflow.CommandRef{
		Skipped:    append([]string{}, sent.Skipped...),
		CommandIDs: sent.CommandIDs,
		Deadline:   now.Add(h.Cfg.CommandTimeout).UTC().Format(time.RFC3339),
	}
	if ref.CommandIDs == nil {
		ref.CommandIDs = []string{}
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
