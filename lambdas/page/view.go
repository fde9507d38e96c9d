package page

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/pagelink"
)

const (
	// maxRows bounds each table (the Lambda's answer is at most 6 MB; the
	// filter reaches the rest).
	maxRows = 500
	// maxRequests bounds the history read.
	maxRequests = 1000
	// readers bounds the host lists read at once.
	readers = 16
	// silentFactor × Freshness without a report: silent.
	silentFactor = 3
)

type bansView struct {
	frame
	Now, Account, Expires    string
	Query                    string
	Hidden                   []hidden
	ClearLink                string
	ListsError, HistoryError bool
	Hosts                    table[hostRow]
	Blocks                   table[blockRow]
	Requests                 table[requestRow]
}

type hidden struct{ Name, Value string }

type table[T any] struct {
	Rows         []T
	Total, Shown int
	More         int
}

type hostRow struct {
	Name, InstanceID, Backend string
	Age, ReportedISO          string
	Status, StatusText        string
	Error                     string
	Entries                   int
}

type blockRow struct {
	Entry                   string
	prefix                  netip.Prefix
	Hosts, BlacklistedOn    []string
	FirstSeen, FirstSeenISO string
	first                   time.Time
}

type requestRow struct {
	Time, TimeISO      string
	Account, Room      string
	Addresses, Hosts   []string
	Result             string
	Execution, Console string
}

// collect reads the index, every host's list and the history.
func (h *Handler) collect(ctx context.Context, now time.Time, lang string) *bansView {
	zone := zones[lang]
	v := &bansView{frame: newFrame(lang, "bansTitle"), Now: now.In(zone).Format("2006-01-02 15:04 MST")}

	var wg sync.WaitGroup
	wg.Go(func() { h.requests(ctx, v, zone) })

	loc := banlist.Location{Bucket: h.cfg.Bucket, Prefix: h.cfg.Prefix}
	ix, _, err := banlist.ReadIndex(ctx, h.lists, loc)
	switch {
	case errors.Is(err, banlist.ErrNotFound):
		ix = &banlist.Index{} // no refresh yet: no hosts
	case err != nil:
		h.log.ErrorContext(ctx, "cannot read the ban-list index", "error", err)
		v.ListsError, ix = true, &banlist.Index{}
	}
	lists := make([]*banlist.HostList, len(ix.Hosts))
	sem := make(chan struct{}, readers)
	var lw sync.WaitGroup
	for i := range ix.Hosts {
		lw.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			l, _, err := banlist.ReadHost(ctx, h.lists, loc, ix.Hosts[i].InstanceID)
			if err != nil {
				// The index still says what the host blocks.
				h.log.WarnContext(ctx, "cannot read a host list", "instance_id", ix.Hosts[i].InstanceID, "error", err)
				return
			}
			lists[i] = l
		})
	}
	lw.Wait()

	blocks := map[netip.Prefix]*blockRow{}
	for i, ih := range ix.Hosts {
		row := h.hostRow(ih, lists[i], now, lang)
		v.Hosts.Rows = append(v.Hosts.Rows, row)
		name := row.Name
		if l := lists[i]; l != nil {
			for _, e := range l.Report.Entries {
				p, err := banlist.ParseEntry(e.Entry)
				if err != nil {
					continue
				}
				b := block(blocks, p)
				b.Hosts = append(b.Hosts, name)
				if e.Blacklisted {
					b.BlacklistedOn = append(b.BlacklistedOn, name)
				}
				if t := seen(l, banlist.EntryString(p)); !t.IsZero() && (b.first.IsZero() || t.Before(b.first)) {
					b.first = t
				}
			}
			continue
		}
		for _, p := range ih.Prefixes() {
			b := block(blocks, p)
			b.Hosts = append(b.Hosts, name)
		}
	}
	slices.SortFunc(v.Hosts.Rows, func(a, b hostRow) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.InstanceID, b.InstanceID))
	})
	for _, b := range blocks {
		slices.Sort(b.Hosts)
		b.Hosts = slices.Compact(b.Hosts)
		slices.Sort(b.BlacklistedOn)
		b.BlacklistedOn = slices.Compact(b.BlacklistedOn)
		if !b.first.IsZero() {
			b.FirstSeen, b.FirstSeenISO = b.first.In(zone).Format("2006-01-02 15:04 MST"), b.first.UTC().Format(time.RFC3339)
		}
		v.Blocks.Rows = append(v.Blocks.Rows, *b)
	}
	// Newest blocks first: what an SRE looks for during an attack.
	slices.SortFunc(v.Blocks.Rows, func(a, b blockRow) int {
		if c := b.first.Compare(a.first); c != 0 {
			return c
		}
		return cmp.Compare(a.Entry, b.Entry)
	})
	wg.Wait()
	return v
}

func block(m map[netip.Prefix]*blockRow, p netip.Prefix) *blockRow {
	b := m[p]
	if b == nil {
		b = &blockRow{Entry: banlist.EntryString(p), prefix: p}
		m[p] = b
	}
	return b
}

// seen is when the host's lists first held entry: its FirstSeen, else the
// list's own time if the entry is new in it (lists stored before
// FirstSeen existed), else unknown.
func seen(l *banlist.HostList, entry string) time.Time {
	s := l.FirstSeen[entry]
	if s == "" && slices.Contains(l.NewEntries, entry) {
		s = l.Time()
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func (h *Handler) hostRow(ih banlist.IndexHost, l *banlist.HostList, now time.Time, lang string) hostRow {
	t := texts[lang]
	r := hostRow{Name: ih.Host, InstanceID: ih.InstanceID, Entries: ih.Entries}
	if r.Name == "" {
		r.Name = ih.InstanceID
	}
	if l != nil {
		r.Backend = l.Report.Backend
		if l.Report.Error != "" {
			r.Error = t["reportError"] + l.Report.Error
		}
	}
	at := ih.ListTime()
	age := now.Sub(at)
	switch {
	case at.IsZero() || age > silentFactor*h.cfg.Freshness:
		r.Status = "silent"
	case age > h.cfg.Freshness:
		r.Status = "stale"
	default:
		r.Status = "fresh"
	}
	r.StatusText = t[r.Status]
	r.Age = ago(t, at, now)
	if !at.IsZero() {
		r.ReportedISO = at.UTC().Format(time.RFC3339)
	}
	return r
}

func ago(t map[string]string, at, now time.Time) string {
	d := now.Sub(at)
	switch {
	case at.IsZero():
		return t["ago.never"]
	case d < time.Minute:
		return t["ago.now"]
	case d < time.Hour:
		return fmt.Sprintf(t["ago.min"], int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf(t["ago.hour"], int(d/time.Hour))
	}
	return fmt.Sprintf(t["ago.day"], int(d/(24*time.Hour)))
}

// executionName is what the webhook names executions; anything else from
// the history gets no console link.
var executionName = regexp.MustCompile(`^[0-9A-Za-z_-]{1,80}$`)

func (h *Handler) requests(ctx context.Context, v *bansView, zone *time.Location) {
	if h.history == nil {
		return
	}
	recs, err := h.history.Recent(ctx, maxRequests)
	if err != nil {
		h.log.ErrorContext(ctx, "cannot read the request history", "error", err)
		v.HistoryError = true
		return
	}
	words := results[v.Lang]
	for _, r := range recs {
		row := requestRow{Time: r.Time.In(zone).Format("01-02 15:04:05 MST"), TimeISO: r.Time.UTC().Format(time.RFC3339),
			Account: r.AccountID, Room: r.RoomID, Addresses: r.Addresses, Hosts: withMore(r.Hosts, r.MoreHosts), Result: r.Result, Execution: r.Execution}
		if w, ok := words[r.Result]; ok {
			row.Result = w
		}
		if executionName.MatchString(r.Execution) {
			row.Console = ConsoleURL(h.cfg.StateMachineARN, r.Execution)
		}
		v.Requests.Rows = append(v.Requests.Rows, row)
	}
}

var regionName = regexp.MustCompile(`^[a-z0-9-]{1,30}$`)

// consoles are the Step Functions console's hosts per partition.
var consoles = map[string]string{"aws": "console.aws.amazon.com", "aws-cn": "console.amazonaws.cn", "aws-us-gov": "console.amazonaws-us-gov.com"}

// ConsoleURL links an execution of the state machine to the Step
// Functions console ("" when the machine's ARN is not one).
func ConsoleURL(stateMachineARN, execution string) string {
	parts := strings.Split(stateMachineARN, ":")
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "stateMachine" || !executionName.MatchString(execution) {
		return ""
	}
	host, ok := consoles[parts[1]]
	region := parts[3]
	if !ok || !regionName.MatchString(region) {
		return ""
	}
	arn := strings.Join([]string{"arn", parts[1], "states", region, parts[4], "execution", parts[6], execution}, ":")
	return "https://" + region + "." + host + "/states/home?region=" + region + "#/v2/executions/details/" + arn
}

// filter keeps the rows that mention q (any field, case-insensitive; an
// address also finds the ranges that contain it), then caps each table.
func (v *bansView) filter(q string) {
	if r := []rune(q); len(r) > 100 {
		q = string(r[:100])
	}
	v.Query = q
	v.Hosts.Total, v.Blocks.Total, v.Requests.Total = len(v.Hosts.Rows), len(v.Blocks.Rows), len(v.Requests.Rows)
	if q != "" {
		low := strings.ToLower(q)
		has := func(fields ...string) bool {
			return slices.ContainsFunc(fields, func(f string) bool { return strings.Contains(strings.ToLower(f), low) })
		}
		addr, addrErr := netip.ParseAddr(q)
		v.Hosts.Rows = slices.DeleteFunc(v.Hosts.Rows, func(r hostRow) bool {
			return !has(r.Name, r.InstanceID, r.Backend, r.StatusText, r.Status)
		})
		v.Blocks.Rows = slices.DeleteFunc(v.Blocks.Rows, func(r blockRow) bool {
			if addrErr == nil && r.prefix.Contains(addr.Unmap()) {
				return false
			}
			return !has(append([]string{r.Entry}, r.Hosts...)...)
		})
		v.Requests.Rows = slices.DeleteFunc(v.Requests.Rows, func(r requestRow) bool {
			return !has(append(append([]string{r.Account, r.Room, r.Result, r.Execution}, r.Addresses...), r.Hosts...)...)
		})
	}
	capRows(&v.Hosts)
	capRows(&v.Blocks)
	capRows(&v.Requests)
}

func capRows[T any](t *table[T]) {
	if len(t.Rows) > maxRows {
		t.More = len(t.Rows) - maxRows
		t.Rows = t.Rows[:maxRows]
	}
	t.Shown = len(t.Rows)
}

// links: the search form carries the signed parameters (and the language)
// as hidden fields, so filtering works without JavaScript; the language
// switch and "show all" keep them too.
func (v *bansView) links(q url.Values, lang string) {
	signed := url.Values{}
	for _, k := range []string{pagelink.ParamAccount, pagelink.ParamExpires, pagelink.ParamSig} {
		signed.Set(k, q.Get(k))
		v.Hidden = append(v.Hidden, hidden{k, q.Get(k)})
	}
	v.Hidden = append(v.Hidden, hidden{"lang", lang})
	clear := url.Values{}
	for k, vv := range signed {
		clear[k] = vv
	}
	clear.Set("lang", lang)
	v.ClearLink = "?" + clear.Encode()
	switched := url.Values{}
	for k, vv := range signed {
		switched[k] = vv
	}
	switched.Set("lang", other(lang))
	if v.Query != "" {
		switched.Set("q", v.Query)
	}
	v.OtherLangLink = "?" + switched.Encode()
}

// withMore is the host names and, when some were left out of the record,
// "+N" for them.
func withMore(hosts []string, more int) []string {
	if more == 0 {
		return hosts
	}
	return append(slices.Clone(hosts), "+"+strconv.Itoa(more))
}
