// Package parse is the ReadTheMessage task: it turns the Chatwork message
// into an intent and the addresses to unban. The work is in shared/message;
// this Lambda only adapts it to the state machine.
package parse

import (
	"context"
	"log/slog"

	"sshguard-unban/shared/message"
	"sshguard-unban/shared/workflow"
)

// Handler has no dependencies: parsing is pure.
type Handler struct{}

// Handle parses the request body.
func (Handler) Handle(ctx context.Context, req workflow.Request) (message.Result, error) {
	r := message.Parse(req.Body)
	slog.InfoContext(ctx, "parsed message", "room_id", req.RoomID, "message_id", req.MessageID,
		"intent", r.Intent, "addresses", r.Addresses, "reason", r.Reason)
	return r, nil
}
