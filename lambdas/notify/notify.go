// Package notify is the task that talks to people: the one reply to the
// asker (the unban machine's ReplyToUser and ReplyFailure states), alerts
// in the SRE room (AlertSREs, in both machines), and ban notifications
// (AnnounceNewBans, in both). Each message is
// recorded under a per-execution key before the task returns, so a retried
// or redriven execution never posts the same message twice.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// Poster posts a message to a Chatwork room (chatwork.Client).
type Poster interface {
	PostMessage(ctx context.Context, roomID, body string) (messageID string, err error)
}

// Marks remembers which messages an execution has posted (S3 in AWS).
type Marks interface {
	Get(ctx context.Context, key string) (value []byte, found bool, err error)
	Put(ctx context.Context, key string, value []byte) error
}

// Config is the notify task's environment.
type Config struct {
	NotifyRoomID string // ban notifications
	SRERoomID    string // alerts
	Locale       string // "ja" (default) or "en"
	MarkPrefix   string // e.g. "replies/"
	// MaxBanNotices bounds the messages one refresh posts (Chatwork limits
	// posting to one room); the rest are summarised in one more message.
	MaxBanNotices int
}

// Handler posts the messages.
type Handler struct {
	Chat  Poster
	Marks Marks
	Cfg   Config
	Log   *slog.Logger
}

// New returns a Handler with defaults filled in; log nil means
// slog.Default().
func New(chat Poster, marks Marks, cfg Config, log *slog.Logger) *Handler {
	if cfg.MaxBanNotices <= 0 {
		cfg.MaxBanNotices = 10
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{Chat: chat, Marks: marks, Cfg: cfg, Log: log}
}

// Handle posts what the input's kind asks for.
func (h *Handler) Handle(ctx context.Context, in workflow.NotifyInput) (workflow.NotifyResult, error) {
	if in.Execution == "" {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "execution name missing"}
	}
	l := langFor(h.Cfg.Locale)
	st := in.State
	switch in.Kind {
	case workflow.NotifyReply, workflow.NotifyFailure:
		r := st.Request
		if r.RoomID == "" || r.MessageID == "" || r.AccountID == "" {
			return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "request lacks room, message or account id"}
		}
		text, problem := l.failureText(in.Execution), true
		if in.Kind == workflow.NotifyReply {
			text, problem = l.userReply(st)
		}
		// Both kinds share one mark: whichever runs first is the only reply.
		res, err := h.once(ctx, in.Execution+"/user", r.RoomID, chatwork.ReplyTo(r.AccountID, r.RoomID, r.MessageID)+text)
		if err != nil || !problem || in.Kind == workflow.NotifyFailure {
			// A failure reply is followed by the AlertSREs state itself.
			return res, err
		}
		why := "some hosts could not be unblocked"
		if st.RefreshError != nil {
			why = "refreshing the block lists failed: " + st.RefreshError.Error + ": " + st.RefreshError.Cause
		}
		if _, err := h.alert(ctx, in.Execution, st, l, why); err != nil {
			// The user has their answer; a lost alert must not fail the
			// execution into a second reply. The log keeps it.
			h.Log.ErrorContext(ctx, "could not alert SREs", "execution", in.Execution, "error", err)
		}
		return res, nil
	case workflow.NotifyAlert:
		why := "unknown error"
		if st.Error != nil {
			why = st.Error.Error + ": " + st.Error.Cause
		}
		return h.alert(ctx, in.Execution, st, l, why)
	case workflow.NotifyBans:
		return h.bans(ctx, in, l)
	}
	return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("unknown kind %q", in.Kind)}
}

func (l lang) failureText(execution string) string {
	return chatwork.Info(l.failureTitle, fmt.Sprintf(l.failure, execution))
}

func (h *Handler) alert(ctx context.Context, execution string, st workflow.State, l lang, why string) (workflow.NotifyResult, error) {
	if h.Cfg.SRERoomID == "" {
		// Without a room the CloudWatch alarm on failed executions is the
		// only alert; say so in the log rather than fail the execution.
		h.Log.WarnContext(ctx, "no SRE room configured; alert only logged", "execution", execution, "why", why)
		return workflow.NotifyResult{}, nil
	}
	return h.once(ctx, execution+"/alert", h.Cfg.SRERoomID, l.alert(execution, st, truncate(why, 1000)))
}

func (h *Handler) bans(ctx context.Context, in workflow.NotifyInput, l lang) (workflow.NotifyResult, error) {
	if h.Cfg.NotifyRoomID == "" {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "no ban-notification room configured"}
	}
	var out workflow.NotifyResult
	shown := in.NewBans
	if len(shown) > h.Cfg.MaxBanNotices {
		shown = shown[:h.Cfg.MaxBanNotices]
	}
	for i, b := range shown {
		r, err := h.once(ctx, fmt.Sprintf("%s/ban-%d", in.Execution, i), h.Cfg.NotifyRoomID, l.banNotice(b))
		if err != nil {
			return out, err
		}
		out.MessageIDs = append(out.MessageIDs, r.MessageIDs...)
		out.Duplicate = out.Duplicate || r.Duplicate
	}
	if rest := in.NewBans[len(shown):]; len(rest) > 0 {
		var entries []string
		for _, b := range rest {
			entries = append(entries, b.Entry+" @ "+chatwork.Escape(b.Host))
		}
		r, err := h.once(ctx, in.Execution+"/ban-more", h.Cfg.NotifyRoomID, fmt.Sprintf(l.moreBans, len(rest), truncate(strings.Join(entries, ", "), 2000)))
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

// once posts text unless key already has a mark. The mark is written after
// the post: a crash in between may post twice on a retry, which is better
// than never answering.
func (h *Handler) once(ctx context.Context, key, roomID, text string) (workflow.NotifyResult, error) {
	key = h.Cfg.MarkPrefix + key
	if raw, found, err := h.Marks.Get(ctx, key); err != nil {
		return workflow.NotifyResult{}, awserr.Classify(fmt.Errorf("notify: read mark %s: %w", key, err))
	} else if found {
		var m mark
		_ = json.Unmarshal(raw, &m)
		h.Log.InfoContext(ctx, "already posted", "key", key, "message_id", m.MessageID)
		return workflow.NotifyResult{MessageIDs: []string{m.MessageID}, Duplicate: true}, nil
	}
	id, err := h.Chat.PostMessage(ctx, roomID, text)
	if err != nil {
		return workflow.NotifyResult{}, err
	}
	h.Log.InfoContext(ctx, "posted", "key", key, "room_id", roomID, "message_id", id)
	raw, _ := json.Marshal(mark{RoomID: roomID, MessageID: id})
	if err := h.Marks.Put(ctx, key, raw); err != nil {
		// The message is out; failing now would only cause a second one.
		h.Log.ErrorContext(ctx, "could not record posted message", "key", key, "error", err)
	}
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
