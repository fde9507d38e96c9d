package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/workflow"
)

// The audit: every unban (who, which addresses, what the hosts did, the
// approval, the execution) is logged and posted to the SRE room. Lines
// from requests at the same moment are merged into one message, so a whole
// office asking at once is one or two SRE posts, not one each: a line waits
// as an item in the SRE room's audit outbox until whoever holds the room's
// lease posts every waiting line. It runs after the asker's answer, so it
// never delays it, and a lost audit post only logs an error (the log line
// and the execution history keep the record).

const (
	// auditLines bounds the lines of one audit message.
	auditLines = 50
	// DefaultAuditGap: an audit message follows the SRE room's last post
	// by at least this much, so a burst's lines gather (at most 5 audit
	// posts per Chatwork room window).
	DefaultAuditGap = 2 * time.Second
)

type auditItem struct {
	Execution string    `json:"execution"`
	Line      string    `json:"line"`
	Created   time.Time `json:"created"`
}

func (h *Handler) auditPrefix() string { return h.Cfg.OutboxPrefix + h.Cfg.SRERoomID + "/audit/" }

func (h *Handler) auditKey(execution string) string {
	sum := sha256.Sum256([]byte(execution))
	return h.auditPrefix() + hex.EncodeToString(sum[:12]) + ".json"
}

func (h *Handler) audit(ctx context.Context, execution string, st workflow.State, l lang) {
	line := auditLine(execution, st)
	h.Log.InfoContext(ctx, "audit", "execution", execution, "account_id", st.Request.AccountID, "room_id", st.Request.RoomID,
		"addresses", st.Parsed.Addresses, "record", line)
	if h.Cfg.SRERoomID == "" {
		return
	}
	if err := h.postAudit(ctx, execution, line, l); err != nil {
		h.Log.ErrorContext(ctx, "could not post the audit record", "execution", execution, "error", err)
	}
}

func (h *Handler) postAudit(ctx context.Context, execution, line string, l lang) error {
	if m, err := h.posted(ctx, execution+"/audit"); err != nil || m != nil {
		return err // a retry: already recorded
	}
	body, _ := json.Marshal(auditItem{Execution: execution, Line: line, Created: h.Cfg.Now()})
	key := h.auditKey(execution)
	if err := s3obj.Put(ctx, h.Store, h.Cfg.Bucket, key, body, ""); err != nil && !errors.Is(err, s3obj.ErrConflict) {
		return err
	}
	gone := func() (bool, error) {
		_, _, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, key)
		if isNotFound(err) {
			return true, nil // posted, by this or another invocation
		}
		return false, err
	}
	busy, err := h.inRoom(ctx, h.Cfg.SRERoomID, func(room *heldRoom) (bool, time.Duration, error) {
		if done, err := gone(); done || err != nil || room == nil {
			return done, 0, err
		}
		if recent := room.lease.recent(h.Cfg.Now()); len(recent) > 0 {
			if wait := recent[len(recent)-1].Add(h.Cfg.AuditGap).Sub(h.Cfg.Now()); wait > 0 {
				// The room posted a moment ago: let the lines of this
				// burst gather into one message.
				return false, wait, nil
			}
		}
		// A lost lease: the new holder posts this line too.
		if err := h.flushAudit(ctx, room, l); err != nil && !errors.Is(err, errLostLease) {
			return false, 0, err
		}
		done, err := gone()
		return done, 0, err
	})
	if busy {
		return fmt.Errorf("the SRE room stayed busy; the line waits for the next audit")
	}
	return err
}

// flushAudit posts every waiting audit line, up to auditLines a message.
func (h *Handler) flushAudit(ctx context.Context, room *heldRoom, l lang) error {
	keys, err := s3obj.List(ctx, h.Store, h.Cfg.Bucket, h.auditPrefix(), 1000)
	if err != nil {
		return err
	}
	var items []auditItem
	var itemKeys []string
	for _, k := range keys {
		raw, _, err := s3obj.Get(ctx, h.Store, h.Cfg.Bucket, k)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		var it auditItem
		if json.Unmarshal(raw, &it) != nil || it.Execution == "" {
			_ = s3obj.Delete(ctx, h.Store, h.Cfg.Bucket, k)
			continue
		}
		items, itemKeys = append(items, it), append(itemKeys, k)
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return items[a].Created.Compare(items[b].Created) })
	for start := 0; start < len(order); start += auditLines {
		chunk := order[start:min(start+auditLines, len(order))]
		var lines []string
		for _, i := range chunk {
			lines = append(lines, items[i].Line)
		}
		if err := h.waitForRoom(ctx, room); err != nil {
			return err
		}
		if err := h.hold(ctx, room); err != nil {
			return err
		}
		id, err := h.Chat.PostMessage(ctx, room.id, chatwork.Info(l.auditTitle, strings.Join(lines, "\n")))
		if err != nil {
			return err
		}
		h.notePost(ctx, room)
		h.Log.InfoContext(ctx, "posted", "kind", "audit", "room_id", room.id, "message_id", id, "lines", len(lines))
		for _, i := range chunk {
			h.setMark(ctx, items[i].Execution+"/audit", mark{RoomID: room.id, MessageID: id})
			_ = s3obj.Delete(ctx, h.Store, h.Cfg.Bucket, itemKeys[i])
		}
	}
	return nil
}
