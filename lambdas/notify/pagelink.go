package notify

import (
	"context"
	"fmt"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// PageLinks makes a signed link to the ban-list page for an account
// (shared/pagelink, with the page's key).
type PageLinks interface {
	Link(ctx context.Context, account string) (link string, expires time.Time, err error)
}

// pageLink is the SendPageLink state: an SRE asked for the ban list in the
// SRE room and the policy allowed it (CheckPageAccess). The link is the
// execution's one reply (the same mark as ReplyToUser), mentions the SRE,
// and says until when it works. The link is a credential for its
// lifetime: it is posted and kept in the outbox item only until then, and
// never logged nor returned into the execution's history.
func (h *Handler) pageLink(ctx context.Context, in workflow.NotifyInput, l lang) (workflow.NotifyResult, error) {
	st := in.State
	r := st.Request
	if r.RoomID == "" || r.MessageID == "" || r.AccountID == "" {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "request lacks room, message or account id"}
	}
	// The policy decided; this checks again what notify itself can know,
	// so a wrong path through the machine cannot hand out a link.
	if st.Parsed == nil || st.Parsed.Intent != message.IntentList || st.Policy == nil ||
		st.Policy.Decision != workflow.DecisionAllow || h.Cfg.SRERoomID == "" || r.RoomID != h.Cfg.SRERoomID {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "a page link needs an allowed list request in the SRE room"}
	}
	body := chatwork.Info(l.pageTitle, l.pageMissing)
	if h.PageLinks != nil {
		link, expires, err := h.PageLinks.Link(ctx, r.AccountID)
		if err != nil {
			return workflow.NotifyResult{}, fmt.Errorf("notify: page link: %w", err)
		}
		body = chatwork.Info(l.pageTitle, fmt.Sprintf(l.pageLink, l.clock(expires.UTC().Format(time.RFC3339)), link))
	}
	h.Log.InfoContext(ctx, "page link", "execution", in.Execution, "account_id", r.AccountID, "room_id", r.RoomID)
	return h.reply(ctx, in.Execution, r, body)
}
