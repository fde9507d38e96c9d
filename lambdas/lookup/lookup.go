// Package lookup serves the unban machine's LookUpBanLists state: it reads
// the ban-list index from S3 and records which hosts the stored lists say
// block the asked addresses, and how old those lists are. It runs while the
// unban command is with the hosts and decides nothing: the lists are up to a
// minute old, and the answer comes from the hosts themselves. The execution
// history then shows both, what the lists said and what the hosts did.
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

// DefaultFreshness is the age from which a stored list counts as stale in
// the audit (five scheduled refreshes at the default rate of one a minute;
// cdk/ uses the same default).
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
		h.Log.Warn("ban-list index missing; no list to record", "key", loc.IndexKey())
		ix = &banlist.Index{}
	case err != nil:
		var corrupt *banlist.CorruptError
		if errors.As(err, &corrupt) {
			// An unreadable index must not block the unban.
			h.Log.Error("ban-list index unreadable; no list to record", "error", err)
			ix = &banlist.Index{}
			break
		}
		return workflow.LookupResult{}, err
	}
	res := Match(ix, addrs, h.Cfg.Now(), h.Cfg.Freshness)
	h.Log.Info("lookup",
		"addresses", len(addrs), "hosts", res.Hosts, "listed_hosts", res.ListedHosts, "stale_hosts", res.StaleHosts)
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
// tools): the hosts whose list blocks an address (at most
// workflow.MaxListed named), how many lists there are and how many are
// older than freshness, and which asked addresses are hosts' own.
func Match(ix *banlist.Index, addrs []netip.Addr, now time.Time, freshness time.Duration) workflow.LookupResult {
	res := workflow.LookupResult{Listed: []workflow.HostMatch{}, Hosts: len(ix.Hosts)}
	oldest := now.Add(-freshness)
	var first time.Time
	var buf []netip.Prefix
	for i := range ix.Hosts {
		hst := &ix.Hosts[i]
		t := hst.ListTime()
		if t.IsZero() || t.Before(oldest) {
			res.StaleHosts++
		}
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
		for _, own := range hst.Own {
			if o, err := netip.ParseAddr(own); err == nil && slices.Contains(addrs, o) {
				res.Servers = addServer(res.Servers, o.String(), hst.Host)
			}
		}
		var matches []workflow.Match
		for _, a := range addrs {
			buf = hst.AppendMatches(buf[:0], a)
			for _, p := range buf {
				matches = append(matches, workflow.Match{Address: a.String(), Entry: banlist.EntryString(p)})
			}
		}
		if len(matches) == 0 {
			continue
		}
		res.ListedHosts++
		if len(res.Listed) < workflow.MaxListed {
			res.Listed = append(res.Listed, workflow.HostMatch{InstanceID: hst.InstanceID, Host: hst.Host, Matches: matches})
		}
	}
	if !first.IsZero() {
		res.Oldest = first.UTC().Format(time.RFC3339)
	}
	return res
}

// addServer notes that host has addr as its own.
func addServer(servers []workflow.Server, addr, host string) []workflow.Server {
	i := slices.IndexFunc(servers, func(s workflow.Server) bool { return s.Address == addr })
	if i < 0 {
		servers, i = append(servers, workflow.Server{Address: addr}), len(servers)
	}
	s := &servers[i]
	s.Count++
	if len(s.Hosts) < workflow.MaxNamed {
		s.Hosts = append(s.Hosts, host)
	}
	return servers
}
