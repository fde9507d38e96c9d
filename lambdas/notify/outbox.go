package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// The outbox: each reply is first written as an item under
// OutboxPrefix/ROOM/, then whoever holds the room's lease posts every item
// waiting there, one message per distinct text, mentioning every asker whose
// reply has that text, and marks each item's execution as answered. A reply
// waits until its own mark appears (posted by itself or by another
// execution), taking the lease over if its holder stopped (a crashed
// function). One asker alone costs a few small S3 calls around the post.
//
// Why merge: Chatwork allows 10 posts per 10 seconds in a room. When an
// office behind one address is blocked, dozens of colleagues ask within
// seconds and all get the same answer; one message that mentions them all
// reaches everyone at once instead of one per ten seconds.

// item is one reply waiting in the outbox.
type item struct {
	Execution string    `json:"execution"`
	RoomID    string    `json:"room_id"`
	AccountID string    `json:"account_id"`
	MessageID string    `json:"message_id"` // the asker's message
	Text      string    `json:"text"`       // the reply without the mention
	Created   time.Time `json:"created"`
}

type roomLease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
	// LastPost is when the room's outbox last posted: the next post waits
	// for Config.PostSpacing after it, so a burst stays inside Chatwork's 10
	// posts per 10 s per room and the replies that arrive meanwhile are
	// merged into the next post.
	LastPost time.Time `json:"last_post,omitzero"`
}

// DefaultPostSpacing is the least time between two posts of one room's
// outbox: a little over Chatwork's average rate (10 per 10 s), so the room
// limit is never reached even with a follow-up in between.
const DefaultPostSpacing = 1200 * time.Millisecond

const (
	leaseTTL = 15 * time.Second // longer than one post with its retries
	// maxMerged bounds the askers one message mentions (the message must
	// stay far below Chatwork's 65,535 characters).
	maxMerged = 200
)

// reply delivers the user reply of execution through the room's outbox and
// returns the id of the message that carries it.
func (h *Handler) reply(ctx context.Context, execution string, r workflow.Request, text string) (workflow.NotifyResult, error) {
	key := execution + "/user"
	if m, err := h.posted(ctx, key); err != nil {
		return workflow.NotifyResult{}, err
	} else if m != nil {
		h.Log.InfoContext(ctx, "already replied", "execution", execution, "message_id", m.MessageID)
		return workflow.NotifyResult{MessageIDs: []string{m.MessageID}, Duplicate: true}, nil
	}
	it := item{Execution: execution, RoomID: r.RoomID, AccountID: r.AccountID, MessageID: r.MessageID, Text: text, Created: h.Cfg.Now()}
	body, _ := json.Marshal(it)
	// Create only: a retried task finds its item still waiting and keeps
	// its place in the queue.
	if err := s3obj.Put(ctx, h.Store, h.Cfg.Bucket, h.itemKey(it), body, ""); err != nil && !errors.Is(err, s3obj.ErrConflict) {
		return workflow.NotifyResult{}, err
	}
	me := newHolder()
	give := h.Cfg.Now().Add(h.Cfg.ReplyWait)
	for {
		held, err := h.takeRoom(ctx, r.RoomID, me)
		if err != nil {
			return workflow.NotifyResult{}, err
		}
		if held {
			err := h.flush(ctx, r.RoomID, me)
			h.releaseRoom(context.WithoutCancel(ctx), r.RoomID, me)
			if err != nil {
				return workflow.NotifyResult{}, err
			}
		}
		if m, err := h.posted(ctx, key); err != nil {
			return workflow.NotifyResult{}, err
		} else if m != nil {
			return workflow.NotifyResult{MessageIDs: []string{m.MessageID}, Duplicate: !held}, nil
		}
		if h.Cfg.Now().After(give) {
			// The room is busy beyond this invocation's patience: the
			// state machine retries, and the item is still in the outbox.
			return workflow.NotifyResult{}, taskerr.Transient(fmt.Errorf("notify: reply to %s still waiting in the outbox of room %s", execution, r.RoomID))
		}
		d := 100*time.Millisecond + mrand.N(100*time.Millisecond)
		if err := sleepCtx(ctx, d); err != nil {
			return workflow.NotifyResult{}, taskerr.Transient(err)
		}
	}
}

// flush posts everything waiting in the room's outbox, merged by text, and
// goes round again until the outbox is empty (replies keep arriving during
// a burst).
func (h *Handler) flush(ctx context.Context, roomID, me string) error {
	for round := 0; round < 20; round++ {
		if err := h.waitForSpacing(ctx, roomID, me); err != nil {
			return err
		}
		keys, err := s3obj.List(ctx, h.Store, h.Cfg.Bucket, h.roomPrefix(roomID), 1000)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		var items []item
		for _, k := range keys {
			raw, _, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, k)
			if isNotFound(err) {
				continue // posted and removed meanwhile
			}
			if err != nil {
				return err
			}
			var it item
			if json.Unmarshal(raw, &it) != nil || it.Execution == "" {
				h.Log.WarnContext(ctx, "dropping undecodable outbox item", "key", k)
				_ = s3obj.Delete(ctx, h.Store, h.Cfg.Bucket, k)
				continue
			}
			items = append(items, it)
		}
		for i, group := range groupByText(items) {
			if i > 0 {
				if err := h.waitForSpacing(ctx, roomID, me); err != nil {
					return err
				}
			}
			posted, err := h.postGroup(ctx, roomID, group)
			if err != nil {
				return err
			}
			if posted {
				h.notePost(ctx, roomID, me)
			}
		}
	}
	return nil
}

// groupByText keeps the first arrival's order.
func groupByText(items []item) [][]item {
	slices.SortStableFunc(items, func(a, b item) int { return a.Created.Compare(b.Created) })
	var groups [][]item
	index := map[string]int{}
	for _, it := range items {
		i, ok := index[it.Text]
		if !ok || len(groups[i]) >= maxMerged {
			index[it.Text] = len(groups)
			groups = append(groups, nil)
			i = len(groups) - 1
		}
		groups[i] = append(groups[i], it)
	}
	return groups
}

// postGroup posts one message for askers with the same reply, marks each
// as answered and removes their items. An asker already marked (a retry
// that found its item again) is not mentioned twice.
func (h *Handler) postGroup(ctx context.Context, roomID string, group []item) (bool, error) {
	var todo []item
	for _, it := range group {
		m, err := h.posted(ctx, it.Execution+"/user")
		if err != nil {
			return false, err
		}
		if m != nil {
			_ = s3obj.Delete(ctx, h.Store, h.Cfg.Bucket, h.itemKey(it))
			continue
		}
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return false, nil
	}
	var head string
	if len(todo) == 1 {
		it := todo[0]
		head = chatwork.ReplyTo(it.AccountID, roomID, it.MessageID)
	} else {
		var b strings.Builder
		seen := map[string]bool{}
		for _, it := range todo {
			if !seen[it.AccountID] {
				seen[it.AccountID] = true
				b.WriteString(chatwork.To(it.AccountID))
			}
		}
		b.WriteString("\n" + fmt.Sprintf(langFor(h.Cfg.Locale).merged, len(todo)) + "\n")
		head = b.String()
	}
	id, err := h.Chat.PostMessage(ctx, roomID, head+todo[0].Text)
	if err != nil {
		return false, err
	}
	h.Log.InfoContext(ctx, "posted", "kind", "reply", "room_id", roomID, "message_id", id, "askers", len(todo))
	for _, it := range todo {
		h.setMark(ctx, it.Execution+"/user", mark{RoomID: roomID, MessageID: id})
		if err := s3obj.Delete(ctx, h.Store, h.Cfg.Bucket, h.itemKey(it)); err != nil {
			h.Log.WarnContext(ctx, "could not remove a posted outbox item", "execution", it.Execution, "error", err)
		}
	}
	return true, nil
}

// waitForSpacing holds the next post until Config.PostSpacing after the room's
// last one (replies arriving meanwhile join it).
func (h *Handler) waitForSpacing(ctx context.Context, roomID, me string) error {
	l, _, err := h.readRoom(ctx, roomID)
	if err != nil || l == nil || l.Holder != me || l.LastPost.IsZero() {
		return err
	}
	if d := l.LastPost.Add(h.Cfg.PostSpacing).Sub(h.Cfg.Now()); d > 0 {
		return sleepCtx(ctx, d)
	}
	return nil
}

// notePost records the post time in the lease this invocation holds (and
// renews it).
func (h *Handler) notePost(ctx context.Context, roomID, me string) {
	l, etag, err := h.readRoom(ctx, roomID)
	if err != nil || l == nil || l.Holder != me {
		return
	}
	now := h.Cfg.Now()
	l.LastPost, l.Until = now, now.Add(leaseTTL)
	body, _ := json.Marshal(l)
	_ = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(roomID), body, etag)
}

func (h *Handler) readRoom(ctx context.Context, roomID string) (*roomLease, string, error) {
	raw, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(roomID))
	if isNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var l roomLease
	if json.Unmarshal(raw, &l) != nil {
		return nil, etag, nil
	}
	return &l, etag, nil
}

func (h *Handler) roomPrefix(roomID string) string {
	return h.Cfg.OutboxPrefix + roomID + "/items/"
}

// itemKey is one per execution, so a retry finds its own item.
func (h *Handler) itemKey(it item) string {
	sum := sha256.Sum256([]byte(it.Execution))
	return h.roomPrefix(it.RoomID) + hex.EncodeToString(sum[:12]) + ".json"
}

func (h *Handler) leaseKey(roomID string) string { return h.Cfg.OutboxPrefix + roomID + "/lease.json" }

// takeRoom makes me the room's poster unless someone else holds a live
// lease.
func (h *Handler) takeRoom(ctx context.Context, roomID, me string) (bool, error) {
	key := h.leaseKey(roomID)
	raw, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
	now := h.Cfg.Now()
	var l roomLease
	switch {
	case isNotFound(err):
		etag = ""
	case err != nil:
		return false, err
	default:
		if json.Unmarshal(raw, &l) == nil && l.Holder != me && now.Before(l.Until) {
			return false, nil
		}
	}
	body, _ := json.Marshal(roomLease{Holder: me, Until: now.Add(leaseTTL), LastPost: l.LastPost})
	err = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, body, etag)
	if errors.Is(err, s3obj.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

func (h *Handler) releaseRoom(ctx context.Context, roomID, me string) {
	key := h.leaseKey(roomID)
	raw, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
	var l roomLease
	if err != nil || json.Unmarshal(raw, &l) != nil || l.Holder != me {
		return
	}
	body, _ := json.Marshal(roomLease{Holder: me, LastPost: l.LastPost})
	_ = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, body, etag)
}

func newHolder() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isNotFound(err error) bool { return errors.Is(err, s3obj.ErrNotFound) }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
