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
	"sshguard-unban/shared/pause"
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
	Execution string `json:"execution"`
	RoomID    string `json:"room_id"`
	AccountID string `json:"account_id"`
	MessageID string `json:"message_id"` // the asker's message
	// ProgressID is the bot's progress message to edit into the reply
	// ("" when there is none: the reply is posted).
	ProgressID string    `json:"progress_id,omitempty"`
	Text       string    `json:"text"` // the reply without the mention
	Created    time.Time `json:"created"`
}

type roomLease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
	// Posts are the room outbox's recent post times: a post waits while
	// Config.RoomPosts of them fall within the last chatwork.RoomWindow, so
	// a burst stays inside Chatwork's 10 posts per 10 s per room and the
	// replies that arrive meanwhile are merged into the next post.
	Posts []time.Time `json:"posts,omitempty"`
}

// DefaultRoomPosts is how many replies one room's outbox posts per
// chatwork.RoomWindow: one less than Chatwork allows, which leaves room for
// a follow-up or a manual message in the same window.
const DefaultRoomPosts = chatwork.RoomLimit - 1

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
	// The mark (already answered: a retry) and the progress message this
	// reply should become, at once: both are on the reply's path.
	var m *mark
	var markErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		m, markErr = h.posted(ctx, key)
	}()
	progressID, err := h.progressOf(ctx, execution)
	<-read
	if markErr != nil {
		return workflow.NotifyResult{}, markErr
	}
	if m != nil {
		h.Log.InfoContext(ctx, "already replied", "execution", execution, "message_id", m.MessageID)
		return workflow.NotifyResult{MessageIDs: []string{m.MessageID}, Duplicate: true}, nil
	}
	if err != nil {
		return workflow.NotifyResult{}, err
	}
	// Create only: a retried task finds its item still waiting and keeps
	// its place. An item written for an execution already answered is
	// dropped by the next flush.
	it := item{Execution: execution, RoomID: r.RoomID, AccountID: r.AccountID, MessageID: r.MessageID,
		ProgressID: progressID, Text: text, Created: h.Cfg.Now()}
	body, _ := json.Marshal(it)
	if err := s3obj.Put(ctx, h.Store, h.Cfg.Bucket, h.itemKey(it), body, ""); err != nil && !errors.Is(err, s3obj.ErrConflict) {
		return workflow.NotifyResult{}, err
	}
	var res workflow.NotifyResult
	busy, err := h.inRoom(ctx, r.RoomID, func(room *heldRoom) (bool, time.Duration, error) {
		if room != nil {
			// A lost lease: the new holder posts this reply too.
			if err := h.flush(ctx, room, it); err != nil && !errors.Is(err, errLostLease) {
				return false, 0, err
			}
		}
		m, err := h.posted(ctx, key)
		if err != nil || m == nil {
			return false, 0, err
		}
		res = workflow.NotifyResult{MessageIDs: []string{m.MessageID}, Duplicate: room == nil}
		return true, 0, nil
	})
	switch {
	case err != nil:
		return workflow.NotifyResult{}, err
	case busy:
		// The room is busy beyond this invocation's patience: the state
		// machine retries, and the item is still in the outbox.
		return workflow.NotifyResult{}, taskerr.Transient(fmt.Errorf("notify: reply to %s still waiting in the outbox of room %s", execution, r.RoomID))
	}
	return res, nil
}

// flush posts everything waiting in the room's outbox, merged by text, and
// goes round again until the outbox is empty (replies keep arriving during
// a burst).
func (h *Handler) flush(ctx context.Context, room *heldRoom, mine item) error {
	roomID := room.id
	for round := 0; round < 20; round++ {
		if err := h.waitForRoom(ctx, room); err != nil {
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
			if k == h.itemKey(mine) && round == 0 {
				items = append(items, mine) // no need to read back our own
				continue
			}
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
				if err := h.waitForRoom(ctx, room); err != nil {
					return err
				}
			}
			posted, err := h.postGroup(ctx, room, group)
			if err != nil {
				return err
			}
			if posted {
				h.notePost(ctx, room)
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
func (h *Handler) postGroup(ctx context.Context, room *heldRoom, group []item) (bool, error) {
	roomID := room.id
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
	// An asker who saw the progress message gets it edited into the answer
	// (an edit is not a post: it leaves the room's posting budget to the
	// others). A failed edit falls back to the post below.
	// Renewed before the edits, and again before the post: edits take time.
	if slices.ContainsFunc(todo, func(it item) bool { return it.ProgressID != "" }) {
		if err := h.hold(ctx, room); err != nil {
			return false, err
		}
	}
	var post []item
	for _, it := range todo {
		if it.ProgressID != "" && h.edit(ctx, roomID, it) {
			continue
		}
		post = append(post, it)
	}
	if todo = post; len(todo) == 0 {
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
	if err := h.hold(ctx, room); err != nil {
		return false, err
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

// edit turns the asker's progress message into the reply and marks the
// asker answered; false when the edit failed.
func (h *Handler) edit(ctx context.Context, roomID string, it item) bool {
	body := chatwork.ReplyTo(it.AccountID, roomID, it.MessageID) + it.Text
	if err := h.Chat.UpdateMessage(ctx, roomID, it.ProgressID, body); err != nil {
		h.Log.WarnContext(ctx, "could not edit the progress message; posting the reply", "execution", it.Execution, "message_id", it.ProgressID, "error", err)
		return false
	}
	h.Log.InfoContext(ctx, "edited", "kind", "reply", "room_id", roomID, "message_id", it.ProgressID)
	h.setMark(ctx, it.Execution+"/user", mark{RoomID: roomID, MessageID: it.ProgressID})
	if err := s3obj.Delete(ctx, h.Store, h.Cfg.Bucket, h.itemKey(it)); err != nil {
		h.Log.WarnContext(ctx, "could not remove a posted outbox item", "execution", it.Execution, "error", err)
	}
	return true
}

// postPaced posts one message (a notice, an alert, a follow-up) within the
// room's pacing record, which the outbox keeps: it waits for the room's
// lease and for the room window, so that no post of the bot's is refused
// by Chatwork's 10 posts per 10 seconds.
func (h *Handler) postPaced(ctx context.Context, roomID, text string) (string, error) {
	var id string
	busy, err := h.inRoom(ctx, roomID, func(room *heldRoom) (bool, time.Duration, error) {
		if room == nil {
			return false, 0, nil
		}
		if err := h.waitForRoom(ctx, room); err != nil {
			return false, 0, err
		}
		if err := h.hold(ctx, room); errors.Is(err, errLostLease) {
			return false, 0, nil // wait for the lease again
		} else if err != nil {
			return false, 0, err
		}
		var err error
		if id, err = h.Chat.PostMessage(ctx, roomID, text); err != nil {
			return false, 0, err
		}
		h.notePost(ctx, room)
		return true, 0, nil
	})
	if busy {
		return "", taskerr.Transient(fmt.Errorf("notify: room %s stayed busy", roomID))
	}
	return id, err
}

// inRoom runs step, holding the room's lease when it can be had (room is
// nil while another invocation holds it), and releases the lease after each
// step, until step is done or fails, or Config.ReplyWait has passed (busy).
// Between steps it pauses for what step asked, or briefly with jitter, so
// that waiting invocations do not take turns in lockstep.
func (h *Handler) inRoom(ctx context.Context, roomID string, step func(room *heldRoom) (done bool, pauseFor time.Duration, err error)) (busy bool, err error) {
	me := newHolder()
	give := h.Cfg.Now().Add(h.Cfg.ReplyWait)
	for {
		room, err := h.takeRoom(ctx, roomID, me)
		if err != nil {
			return false, err
		}
		done, d, err := step(room)
		if room != nil {
			h.releaseRoom(context.WithoutCancel(ctx), room)
		}
		if err != nil || done {
			return false, err
		}
		if d <= 0 {
			if h.Cfg.Now().After(give) {
				return true, nil
			}
			d = 50*time.Millisecond + mrand.N(100*time.Millisecond)
		}
		if err := pause.For(ctx, d); err != nil {
			return false, taskerr.Transient(err)
		}
	}
}

// heldRoom is a room whose lease this invocation holds, with the lease's
// record of recent posts.
type heldRoom struct {
	id    string
	lease roomLease
}

// waitForRoom holds the next post while the room's outbox has posted
// Config.RoomPosts times within the last chatwork.RoomWindow (replies
// arriving meanwhile join it).
func (h *Handler) waitForRoom(ctx context.Context, room *heldRoom) error {
	recent := room.lease.recent(h.Cfg.Now())
	if len(recent) < h.Cfg.RoomPosts {
		return nil
	}
	if d := recent[len(recent)-h.Cfg.RoomPosts].Add(chatwork.RoomWindow).Sub(h.Cfg.Now()); d > 0 {
		return pause.For(ctx, d)
	}
	return nil
}

// recent are the post times within the last room window, oldest first.
func (l *roomLease) recent(now time.Time) []time.Time {
	var out []time.Time
	for _, t := range l.Posts {
		if now.Sub(t) < chatwork.RoomWindow {
			out = append(out, t)
		}
	}
	return out
}

// notePost records a post in the held lease and renews it. The holder is
// the lease's only writer until it expires, so the write is unconditional.
func (h *Handler) notePost(ctx context.Context, room *heldRoom) {
	now := h.Cfg.Now()
	room.lease.Posts, room.lease.Until = append(room.lease.recent(now), now), now.Add(leaseTTL)
	body, _ := json.Marshal(room.lease)
	if err := s3obj.PutAlways(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(room.id), body); err != nil {
		h.Log.WarnContext(ctx, "could not record a post in the room lease", "room_id", room.id, "error", err)
	}
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
// lease (nil then).
func (h *Handler) takeRoom(ctx context.Context, roomID, me string) (*heldRoom, error) {
	key := h.leaseKey(roomID)
	raw, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
	now := h.Cfg.Now()
	var l roomLease
	switch {
	case isNotFound(err):
		etag = ""
	case err != nil:
		return nil, err
	default:
		if json.Unmarshal(raw, &l) == nil && l.Holder != me && now.Before(l.Until) {
			return nil, nil
		}
	}
	room := &heldRoom{id: roomID, lease: roomLease{Holder: me, Until: now.Add(leaseTTL), Posts: l.Posts}}
	body, _ := json.Marshal(room.lease)
	err = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, body, etag)
	if errors.Is(err, s3obj.ErrConflict) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return room, nil
}

// errLostLease says the room's lease expired while this invocation worked
// (waiting for the room window, or slow) and another invocation took it:
// that one posts what is waiting.
var errLostLease = errors.New("notify: the room's lease passed to another invocation")

// hold renews the lease before a post or an edit, atomically: only while
// it is still this invocation's (If-Match on the version read). Without it
// a holder whose lease ran out unnoticed and the invocation that took it
// over would both post the same waiting replies.
func (h *Handler) hold(ctx context.Context, room *heldRoom) error {
	raw, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(room.id))
	switch {
	case isNotFound(err):
		return errLostLease
	case err != nil:
		return err
	}
	var l roomLease
	if json.Unmarshal(raw, &l) != nil || l.Holder != room.lease.Holder {
		return errLostLease
	}
	room.lease.Until = h.Cfg.Now().Add(leaseTTL)
	body, _ := json.Marshal(room.lease)
	if err := s3obj.Put(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(room.id), body, etag); errors.Is(err, s3obj.ErrConflict) {
		return errLostLease
	} else if err != nil {
		return err
	}
	return nil
}

// releaseRoom lets the next reply post at once, keeping the post record;
// a lease another invocation took meanwhile is left alone.
func (h *Handler) releaseRoom(ctx context.Context, room *heldRoom) {
	raw, etag, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(room.id))
	var l roomLease
	if err != nil || json.Unmarshal(raw, &l) != nil || l.Holder != room.lease.Holder {
		return
	}
	l = room.lease
	l.Until = time.Time{}
	body, _ := json.Marshal(l)
	_ = s3obj.Put(ctx, h.Store, h.Cfg.Bucket, h.leaseKey(room.id), body, etag)
}

func newHolder() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isNotFound(err error) bool { return errors.Is(err, s3obj.ErrNotFound) }
