// Package notify is the task that talks to people: the one reply to the
// asker (the unban machine's ReplyToUser and ReplyFailure states), the
// approval request to the SRE room that the execution waits on
// (AskSREsToApprove, approval.go), the
// follow-up when a host that was silent at reply time freed the address
// later (FollowUp), alerts in the SRE room (AlertSREs, in both machines),
// ban notifications (AnnounceNewBans, in both), and an SRE's link to the
// ban-list page (SendPageLink, pagelink.go).
//
// Each answered request is also recorded for the page's "recent requests"
// (history.go, shared/history): who, which addresses, what came of it, the
// execution; never the message.
//
// While the hosts work, the asker sees a progress message (SayWeAreOnIt,
// invoked asynchronously) that the reply edits into the answer
// (progress.go).
//
// Every message is recorded under a per-execution mark before the task
// returns, so a retried or redriven execution never posts it twice. Replies
// go through a per-room outbox (outbox.go): replies with the same text to
// askers in one room are merged into one message that mentions them all,
// which keeps a whole office asking at once inside Chatwork's limit of 10
// posts per 10 seconds per room.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// Poster posts and edits messages in Chatwork rooms (chatwork.Client).
type Poster interface {
	PostMessage(ctx context.Context, roomID, body string) (messageID string, err error)
	UpdateMessage(ctx context.Context, roomID, messageID, body string) error
}

// Config is the notify task's environment.
type Config struct {
	NotifyRoomID string // ban notifications
	SRERoomID    string // alerts
	Locale       string // "ja" (default) or "en"
	Bucket       string // marks and outbox
	MarkPrefix   string // e.g. "replies/"
	OutboxPrefix string // e.g. "outbox/"
	// MaxBanNotices bounds the notices one refresh posts (Chatwork limits
	// posting to one room); the rest are summarised in one more message.
	MaxBanNotices int
	// SilentAlertPeriod: a silent host is reported to the SRE room once per
	// period, not once per request (default 1 hour).
	SilentAlertPeriod time.Duration
	// ReplyWait bounds how long a reply waits for the room's outbox to post
	// it (default 40 s, below the function timeout).
	ReplyWait time.Duration
	// RoomPosts is how many replies a room's outbox posts per Chatwork room
	// window (default DefaultRoomPosts).
	RoomPosts int
	// BotAccountID is the bot's account, for the approve/deny lines an SRE
	// copies; ApprovalWait how long an approval request waits (the ASL's
	// timeout on AskSREsToApprove), for the texts.
	BotAccountID string
	ApprovalWait time.Duration
	// AuditGap is the least time between the SRE room's last post and an
	// audit message (default DefaultAuditGap).
	AuditGap time.Duration
	// PublicURL is the service's API base URL ("https://…/"): the help and
	// "not blocked" replies send askers to its /ip page. Empty: a
	// third-party page says it instead.
	PublicURL string
	Now       func() time.Time
}

// ApprovalRequest is an approval waiting for an SRE, with the task token
// that resumes the asker's execution.
type ApprovalRequest struct {
	Code, Execution, TaskToken string
	RoomID, AccountID          string
	MessageID                  string
	Addresses                  []string
	Reason                     string
	Expires                    time.Time
}

// Approvals records approval requests (shared/policystore). Record is
// called again with a new token when the waiting Task is retried: the
// latest token is the live one.
type Approvals interface {
	Record(ctx context.Context, r ApprovalRequest) error
}

// DefaultMaxBanNotices: one notice per address up to this many per run,
// then one merged message; with the room's other posts it stays well inside
// Chatwork's 10 posts per 10 seconds.
const DefaultMaxBanNotices = 5

// defang writes an address so that no parser (ours included) reads it as
// one: 192.0.2[.]1, 2001[:]db8[:][:]1.
func defang(entry string) string {
	return strings.NewReplacer(".", "[.]", ":", "[:]").Replace(entry)
}

// Handler posts the messages.
type Handler struct {
	Chat      Poster
	Store     s3obj.API
	Approvals Approvals // nil: no approvals (the policy never asks for one)
	PageLinks PageLinks // nil: no ban-list page (the reply says so)
	History   History   // nil: answered requests are not recorded
	Cfg       Config
	Log       *slog.Logger
}

// New returns a Handler with defaults filled in; log nil means
// slog.Default().
func New(chat Poster, store s3obj.API, cfg Config, log *slog.Logger) *Handler {
	if cfg.MaxBanNotices <= 0 {
		cfg.MaxBanNotices = DefaultMaxBanNotices
	}
	if cfg.SilentAlertPeriod <= 0 {
		cfg.SilentAlertPeriod = time.Hour
	}
	if cfg.ReplyWait <= 0 {
		cfg.ReplyWait = 40 * time.Second
	}
	if cfg.RoomPosts <= 0 {
		cfg.RoomPosts = DefaultRoomPosts
	}
	if cfg.OutboxPrefix == "" {
		cfg.OutboxPrefix = "outbox/"
	}
	if cfg.AuditGap <= 0 {
		cfg.AuditGap = DefaultAuditGap
	}
	if cfg.ApprovalWait <= 0 {
		cfg.ApprovalWait = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{Chat: chat, Store: store, Cfg: cfg, Log: log}
}

// Handle posts what the input's kind asks for.
func (h *Handler) Handle(ctx context.Context, in workflow.NotifyInput) (workflow.NotifyResult, error) {
	if in.Execution == "" {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "execution name missing"}
	}
	l := h.lang()
	st := in.State
	switch in.Kind {
	case workflow.NotifyReply, workflow.NotifyFailure:
		r := st.Request
		if r.RoomID == "" || r.MessageID == "" || r.AccountID == "" {
			return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "request lacks room, message or account id"}
		}
		reply := l.failureReply(in.Execution)
		if in.Kind == workflow.NotifyReply {
			reply = l.userReply(st)
		}
		// Both kinds share one mark: whichever runs first is the only reply.
		res, err := h.reply(ctx, in.Execution, r, reply.body)
		if err == nil {
			h.record(ctx, in.Kind, in.Execution, st)
		}
		if err != nil || in.Kind == workflow.NotifyFailure {
			// A failure reply is followed by the AlertSREs state itself.
			return res, err
		}
		h.alertProblems(ctx, in.Execution, st, l, reply)
		if st.Check != nil && st.Parsed != nil && len(st.Parsed.Addresses) > 0 {
			h.audit(ctx, in.Execution, st, l)
		}
		return res, nil
	case workflow.NotifyApproval:
		return h.askForApproval(ctx, in, l)
	case workflow.NotifyPageLink:
		return h.pageLink(ctx, in, l)
	case workflow.NotifyProgress:
		return h.progress(ctx, in.Execution, st.Request, l)
	case workflow.NotifyFollowUp:
		return h.followUp(ctx, in, l)
	case workflow.NotifyAlert:
		why := "unknown error"
		if st.Error != nil {
			why = st.Error.Error + ": " + st.Error.Cause
		}
		return h.alert(ctx, in.Execution+"/alert", in.Execution, st, l, why)
	case workflow.NotifyBans:
		return h.bans(ctx, in, l)
	}
	return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("unknown kind %q", in.Kind)}
}

// lang is the deployment's language, with its /ip page.
func (h *Handler) lang() lang {
	l := langFor(h.Cfg.Locale)
	if ip := IPPage(h.Cfg.PublicURL); ip != "" {
		l.ipURL = ip
	}
	return l
}

// alertProblems tells the SRE room what the asker could not be helped
// with: a host that failed (once per execution), and each silent host (once
// per host per SilentAlertPeriod, however many requests meet it). The user
// has their answer; a lost alert must not fail the execution into a second
// reply, so errors are only logged.
func (h *Handler) alertProblems(ctx context.Context, execution string, st workflow.State, l lang, r reply) {
	if r.failed != "" {
		if _, err := h.alert(ctx, execution+"/alert", execution, st, l, r.failed); err != nil {
			h.Log.ErrorContext(ctx, "could not alert SREs", "execution", execution, "error", err)
		}
	}
	if st.Check == nil {
		return
	}
	// One alert per request for the silent hosts not alerted on in this
	// period: a rolling restart of a hundred hosts is one SRE message, not
	// a hundred against Chatwork's per-room and per-token limits.
	period := h.Cfg.Now().Truncate(h.Cfg.SilentAlertPeriod).UTC().Format("20060102T1504")
	var fresh []string
	byDetail := map[string][]string{}
	for _, s := range st.Check.Silent {
		key := "silent/" + s.InstanceID + "/" + period
		if m, err := h.posted(ctx, key); err != nil {
			h.Log.ErrorContext(ctx, "could not read a silent-host mark", "instance_id", s.InstanceID, "error", err)
		} else if m == nil {
			fresh = append(fresh, key)
			byDetail[s.Detail] = append(byDetail[s.Detail], hostName(s))
		}
	}
	if len(fresh) == 0 {
		return
	}
	var groups []string
	for _, d := range slices.Sorted(maps.Keys(byDetail)) {
		groups = append(groups, l.names(byDetail[d])+": "+d)
	}
	why := fmt.Sprintf("%d host(s) did not answer an unban in time (%s). Until they are back, they may still block addresses people ask for.",
		len(fresh), strings.Join(groups, "; "))
	if st.Check.SilentCount > len(st.Check.Silent) {
		why += fmt.Sprintf(" %d hosts in all were silent; the execution's outcome object lists every one.", st.Check.SilentCount)
	}
	res, err := h.alert(ctx, execution+"/silent", execution, st, l, why)
	if err != nil {
		h.Log.ErrorContext(ctx, "could not alert SREs about silent hosts", "hosts", len(fresh), "error", err)
		return
	}
	for _, key := range fresh {
		h.setMark(ctx, key, mark{RoomID: h.Cfg.SRERoomID, MessageID: firstOf(res.MessageIDs)})
	}
}

func firstOf(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// followUp tells the asker that a host silent at reply time has freed the
// address since. Nothing is posted when no late host did.
func (h *Handler) followUp(ctx context.Context, in workflow.NotifyInput, l lang) (workflow.NotifyResult, error) {
	st := in.State
	text := l.followUp(st)
	if text == "" {
		return workflow.NotifyResult{}, nil
	}
	r := st.Request
	return h.once(ctx, in.Execution+"/follow-up", r.RoomID, chatwork.ReplyTo(r.AccountID, r.RoomID, r.MessageID)+text)
}

func (h *Handler) alert(ctx context.Context, key, execution string, st workflow.State, l lang, why string) (workflow.NotifyResult, error) {
	if h.Cfg.SRERoomID == "" {
		// Without a room the CloudWatch alarm on failed executions is the
		// only alert; say so in the log rather than fail the execution.
		h.Log.WarnContext(ctx, "no SRE room configured; alert only logged", "execution", execution, "why", why)
		return workflow.NotifyResult{}, nil
	}
	return h.once(ctx, key, h.Cfg.SRERoomID, l.alert(execution, st, truncate(why, 1000)))
}

func (h *Handler) bans(ctx context.Context, in workflow.NotifyInput, l lang) (workflow.NotifyResult, error) {
	if h.Cfg.NotifyRoomID == "" {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "no ban-notification room configured"}
	}
	var out workflow.NotifyResult
	// One notice per entry, naming every host that blocks it.
	var groups [][]workflow.NewBan
	index := map[string]int{}
	for _, b := range in.NewBans {
		i, ok := index[b.Entry]
		if !ok {
			i = len(groups)
			index[b.Entry] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], b)
	}
	shown := groups
	if len(shown) > h.Cfg.MaxBanNotices {
		shown = shown[:h.Cfg.MaxBanNotices]
	}
	for i, g := range shown {
		r, err := h.once(ctx, fmt.Sprintf("%s/ban-%d", in.Execution, i), h.Cfg.NotifyRoomID, l.banNotice(g))
		if err != nil {
			return out, err
		}
		out.MessageIDs = append(out.MessageIDs, r.MessageIDs...)
		out.Duplicate = out.Duplicate || r.Duplicate
	}
	if rest := groups[len(shown):]; len(rest) > 0 {
		// Many at once (an attack wave): the rest in one message, their
		// addresses defanged ("192.0.2[.]1"), so that quoting it unbans
		// nobody; an employee among them writes their own address.
		var entries []string
		for _, g := range rest {
			var hosts []string
			for _, b := range g {
				hosts = append(hosts, chatwork.Escape(b.Host))
			}
			entries = append(entries, defang(g[0].Entry)+" ("+l.names(hosts)+")")
		}
		r, err := h.once(ctx, in.Execution+"/ban-more", h.Cfg.NotifyRoomID, l.moreBansNotice(len(rest), truncate(strings.Join(entries, "\n"), 4000)))
		if err != nil {
			return out, err
		}
		out.MessageIDs = append(out.MessageIDs, r.MessageIDs...)
	}
	return out, nil
}

// mark is what a key records: the message posted for it.
type mark struct {
	RoomID    string `json:"room_id"`
	MessageID string `json:"message_id"`
}

func (h *Handler) markKey(key string) string { return h.Cfg.MarkPrefix + key }

// posted returns the mark of key, if any.
func (h *Handler) posted(ctx context.Context, key string) (*mark, error) {
	raw, _, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, h.markKey(key))
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var m mark
	_ = json.Unmarshal(raw, &m)
	return &m, nil
}

func (h *Handler) setMark(ctx context.Context, key string, m mark) {
	raw, _ := json.Marshal(m)
	if err := s3obj.PutAlways(ctx, h.Store, h.Cfg.Bucket, h.markKey(key), raw); err != nil {
		// The message is out; failing now would only cause a second one.
		h.Log.ErrorContext(ctx, "could not record posted message", "key", key, "error", err)
	}
}

// once posts text unless key already has a mark. The mark is written after
// the post: a crash in between may post twice on a retry, which is better
// than never answering.
func (h *Handler) once(ctx context.Context, key, roomID, text string) (workflow.NotifyResult, error) {
	if m, err := h.posted(ctx, key); err != nil {
		return workflow.NotifyResult{}, err
	} else if m != nil {
		h.Log.InfoContext(ctx, "already posted", "key", key, "message_id", m.MessageID)
		return workflow.NotifyResult{MessageIDs: []string{m.MessageID}, Duplicate: true}, nil
	}
	id, err := h.postPaced(ctx, roomID, text)
	if err != nil {
		return workflow.NotifyResult{}, err
	}
	h.Log.InfoContext(ctx, "posted", "key", key, "room_id", roomID, "message_id", id)
	h.setMark(ctx, key, mark{RoomID: roomID, MessageID: id})
	return workflow.NotifyResult{MessageIDs: []string{id}}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
