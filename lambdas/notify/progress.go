package notify

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/pause"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/workflow"
)

// The progress message: within a second of the request the asker sees
// "確認しています…", and the reply later edits that message into the answer
// (PUT /rooms/{room}/messages/{id}), so each asker still gets one message.
// The state machine invokes it asynchronously (InvocationType Event), so it
// costs the request path nothing and may arrive late, twice, or after the
// reply: one claim object per execution decides who came first.
//
//	progress: claim "posting" (create only) → post → claim "posted" + id
//	reply:    claim absent → create "replied" (progress then never posts);
//	          "posting" → wait for it to settle; "posted" → edit that message
//
// If the progress was skipped, failed, or the edit fails, the reply is
// posted as before, so the answer always arrives.

const (
	claimPosting = "posting"
	claimPosted  = "posted"
	claimSkipped = "skipped" // busy room or failed post: the reply posts
	claimReplied = "replied" // the reply came first: never post progress

	// progressBudget bounds the whole progress task: past it the message
	// would no longer be a sign of life, and a reply waits at most this long
	// for a progress post in flight.
	progressBudget = 3 * time.Second
	// progressPosts: progress is posted only while the room's outbox has
	// posted fewer than this many messages in the last room window. The
	// answers to progress messages are edits, which do not count; the two
	// posts left are for merged answers in a burst (whose askers got no
	// progress message).
	progressPosts = DefaultRoomPosts - 2
)

type progressClaim struct {
	State     string `json:"state"`
	MessageID string `json:"message_id,omitempty"`
}

func (h *Handler) claimKey(execution string) string { return h.markKey(execution + "/progress") }

// progress posts the "working on it" message unless the reply (or an
// earlier attempt) came first or the room is busy. It never returns an
// error: a sign of life is not worth a retry or a failed execution.
func (h *Handler) progress(ctx context.Context, execution string, r workflow.Request, l lang) (workflow.NotifyResult, error) {
	if r.RoomID == "" || r.MessageID == "" || r.AccountID == "" {
		return workflow.NotifyResult{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, progressBudget)
	defer cancel()
	key := h.claimKey(execution)
	body, _ := json.Marshal(progressClaim{State: claimPosting})
	if err := s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, body, ""); err != nil {
		if !errors.Is(err, s3obj.ErrConflict) {
			h.Log.WarnContext(ctx, "progress: could not claim", "execution", execution, "error", err)
		}
		return workflow.NotifyResult{Duplicate: true}, nil
	}
	settle := func(c progressClaim) {
		raw, _ := json.Marshal(c)
		if err := s3obj.PutAlways(context.WithoutCancel(ctx), h.Store, h.Cfg.Bucket, key, raw); err != nil {
			h.Log.WarnContext(ctx, "progress: could not settle the claim", "execution", execution, "error", err)
		}
	}
	room := h.quietRoom(ctx, r.RoomID)
	if room == nil {
		h.Log.InfoContext(ctx, "progress skipped: the room is busy", "execution", execution, "room_id", r.RoomID)
		settle(progressClaim{State: claimSkipped})
		return workflow.NotifyResult{}, nil
	}
	id, err := h.Chat.PostMessage(ctx, r.RoomID, chatwork.ReplyTo(r.AccountID, r.RoomID, r.MessageID)+l.progress)
	if err == nil {
		h.notePost(ctx, room)
	}
	h.releaseRoom(context.WithoutCancel(ctx), room)
	if err != nil {
		h.Log.WarnContext(ctx, "progress: could not post", "execution", execution, "error", err)
		settle(progressClaim{State: claimSkipped})
		return workflow.NotifyResult{}, nil
	}
	h.Log.InfoContext(ctx, "posted", "kind", "progress", "room_id", r.RoomID, "message_id", id)
	settle(progressClaim{State: claimPosted, MessageID: id})
	return workflow.NotifyResult{MessageIDs: []string{id}}, nil
}

// quietRoom takes the room's lease when the room is quiet enough for a
// progress post: nobody is flushing replies and few posts went out in the
// last window. The lease keeps the post inside the room's pacing record.
func (h *Handler) quietRoom(ctx context.Context, roomID string) *heldRoom {
	me := newHolder()
	for try := 0; try < 3; try++ {
		room, err := h.takeRoom(ctx, roomID, me)
		if err != nil {
			return nil
		}
		if room != nil {
			if len(room.lease.recent(h.Cfg.Now())) < progressPosts {
				return room
			}
			h.releaseRoom(context.WithoutCancel(ctx), room)
			return nil
		}
		if pause.For(ctx, 100*time.Millisecond) != nil {
			return nil
		}
	}
	return nil
}

// progressOf returns the progress message the reply should edit ("" when
// the reply must post), first making sure no progress is posted after it.
func (h *Handler) progressOf(ctx context.Context, execution string) (string, error) {
	key := h.claimKey(execution)
	give := h.Cfg.Now().Add(progressBudget + time.Second)
	for {
		raw, _, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
		if isNotFound(err) {
			body, _ := json.Marshal(progressClaim{State: claimReplied})
			err := s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, body, "")
			if errors.Is(err, s3obj.ErrConflict) {
				continue // the progress claimed it just now: read its state
			}
			return "", err
		}
		if err != nil {
			return "", err
		}
		var c progressClaim
		_ = json.Unmarshal(raw, &c)
		switch {
		case c.State == claimPosted:
			return c.MessageID, nil
		case c.State != claimPosting:
			return "", nil
		case h.Cfg.Now().After(give):
			// A progress task that stopped mid-post (its budget is
			// long past): post the reply.
			return "", nil
		}
		if err := pause.For(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// IsProgress reports whether body is a progress message not (yet) turned
// into an answer, in any language: what the local terminal and the tests
// tell apart from answers.
func IsProgress(body string) bool {
	for _, l := range langs {
		if strings.HasSuffix(body, "]"+l.progress) {
			return true
		}
	}
	return false
}
