// Package parse serves the unban machine's ReadTheMessage state: it turns
// the Chatwork message into an intent and the addresses to unban. The work
// is in shared/message; this Lambda only adapts it to the state machine.
package parse

import (
	"context"
	"log/slog"

	"sshguard-unban/shared/message"
	"sshguard-unban/shared/workflow"
)

// Handler has no dependencies: parsing is pure.
type Handler struct {
	Log *slog.Logger
}

// New returns a Handler; log nil means slog.Default().
func New(log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{Log: log}
}

// Handle parses the request body.
func (h *Handler) Handle(ctx context.Context, req workflow.Request) (message.Result, error) {
	r := message.Parse(req.Body)
	h.Log.InfoContext(ctx, "parsed message", "room_id", req.RoomID, "message_id", req.MessageID,
		"intent", r.Intent, "addresses", r.Addresses, "reason", r.Reason)
	return r, nil
}
