// Package lookup serves the unban machine's LookUpBanLists state: it reads the ban-list index
// from S3 and says on which hosts the asked addresses are blocked.
//
// A "not banned" answer is only given when every known host's list is
// fresh. When the index is missing (never refreshed), lists no host, or
// holds a list older than Config.Freshness, the result is Stale, AllHosts
// and Action unban: the unban then runs on every tagged host, while Targets
// still shows what the fresh lists say.
package lookup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// DefaultFreshness is how old a host's list may be for a "not banned"
// answer to be trusted: five scheduled refreshes at the default rate of one
// a minute (cdk/ uses the same default).
const DefaultFreshness = 5 * time.Minute

// MaxAddresses bounds one request (what one message may ask for).
const MaxAddresses = message.MaxAddresses

// Config holds the environment-derived settings.
type Config struct {
	Bucket string // BANLIST_BUCKET
	Prefix string // BANLIST_PREFIX
	// Freshness is the maximum age of a host's list (default DefaultFreshness).
	Freshness time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler is the Lambda handler.
type Handler struct {
	S3  banlist.ObjectGetter
	Cfg Config
	Log *slog.Logger
}

// New returns a Handler; log nil means slog.Default().
func New(s3 banlist.ObjectGetter, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Freshness <= 0 {
		cfg.Freshness = DefaultFreshness
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{S3: s3, Cfg: cfg, Log: log}
}

// Handle looks the addresses up.
func (h *Handler) Handle(ctx context.Context, in workflow.LookupInput) (workflow.LookupResult, error) {
	addrs, err := parseAddresses(in.Addresses)
	if err != nil {
		return workflow.LookupResult{}, err
	}
	loc := banlist.Location{Bucket: h.Cfg.Bucket, Prefix: h.Cfg.Prefix}
	ix, _, err := banlist.ReadIndex(ctx, h.S3, loc)
	switch {
	case errors.Is(err, banlist.ErrNotFound):
		h.Log.Warn("ban-list index missing; answering from no list", "key", loc.IndexKey())
		ix = &banlist.Index{}
	case err != nil:
		var corrupt *banlist.CorruptError
		if errors.As(err, &corrupt) {
			// An unreadable index must not block unbans: take the safe path.
			h.Log.Error("ban-list index unreadable; treating every list as stale", "error", err)
			ix = &banlist.Index{}
			break
		}
		return workflow.LookupResult{}, err
	}
	res := Match(ix, addrs, h.Cfg.Now(), h.Cfg.Freshness)
	h.Log.Info("lookup",
		"addresses", len(addrs), "hosts", len(ix.Hosts), "matched_hosts", len(res.Targets),
		"stale", res.Stale, "stale_hosts", len(res.StaleHosts), "action", res.Action)
	return res, nil
}

func parseAddresses(in []string) ([]netip.Addr, error) {
	if len(in) == 0 {
		return nil, &taskerr.InvalidInputError{Reason: "no addresses"}
	}
	if len(in) > MaxAddresses {
		return nil, &taskerr.InvalidInputError{Reason: fmt.Sprintf("%d addresses (at most %d)", len(in), MaxAddresses)}
	}
	out := make([]netip.Addr, 0, len(in))
	for _, s := range in {
		a, err := banlist.ParseAddress(s)
		if err != nil {
			return nil, &taskerr.InvalidInputError{Reason: err.Error()}
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Match answers a lookup from an index (exported for the benchmark and for
// tools). Hosts whose list is older than freshness are listed in StaleHosts
// and contribute no Targets.
func Match(ix *banlist.Index, addrs []netip.Addr, now time.Time, freshness time.Duration) workflow.LookupResult {
	res := workflow.LookupResult{Targets: []workflow.HostMatch{}, InstanceIDs: []string{}}
	oldest := now.Add(-freshness)
	var buf []netip.Prefix
	for i := range ix.Hosts {
		hst := &ix.Hosts[i]
		if t := hst.ListTime(); t.IsZero() || t.Before(oldest) {
			res.StaleHosts = append(res.StaleHosts, hst.InstanceID)
			continue
		}
		var matches []workflow.Match
		for _, a := range addrs {
			buf = hst.AppendMatches(buf[:0], a)
			for _, p := range buf {
				matches = append(matches, workflow.Match{Address: a.String(), Entry: banlist.EntryString(p)})
			}
		}
		if len(matches) > 0 {
			res.Targets = append(res.Targets, workflow.HostMatch{InstanceID: hst.InstanceID, Host: hst.Host, Matches: matches})
			res.InstanceIDs = append(res.InstanceIDs, hst.InstanceID)
		}
	}
	res.Stale = len(ix.Hosts) == 0 || len(res.StaleHosts) > 0
	switch {
	case res.Stale:
		res.AllHosts = true
		res.Action = workflow.ActionUnban
	case len(res.Targets) > 0:
		res.Action = workflow.ActionUnban
	default:
		res.Action = workflow.ActionNotBanned
	}
	return res
}
