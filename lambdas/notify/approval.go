package notify

import (
	"context"
	"encoding/json"
	"fmt"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// askForApproval is the AskSREsToApprove state: the state machine invoked it
// with a task token and waits until an SRE's answer (the policy task's
// DecideApproval) sends the token back, or its timeout passes. It records
// the request with the token, asks the SRE room, and tells the asker that
// SREs were asked (their progress message becomes that notice; the final
// answer is then a new message, so that it notifies them).
func (h *Handler) askForApproval(ctx context.Context, in workflow.NotifyInput, l lang) (workflow.NotifyResult, error) {
	st := in.State
	if in.Token == "" || st.Policy == nil || st.Policy.Code == "" || st.Parsed == nil {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "approval without token, code or request"}
	}
	if h.Approvals == nil || h.Cfg.SRERoomID == "" {
		return workflow.NotifyResult{}, &taskerr.InvalidInputError{Reason: "approvals need the policy table and an SRE room"}
	}
	r := st.Request
	if err := h.Approvals.Record(ctx, ApprovalRequest{
		Code: st.Policy.Code, Execution: in.Execution, TaskToken: in.Token,
		RoomID: r.RoomID, AccountID: r.AccountID, MessageID: r.MessageID,
		Addresses: st.Parsed.Addresses, Reason: st.Policy.Reason, Expires: h.Cfg.Now().Add(h.Cfg.ApprovalWait),
	}); err != nil {
		return workflow.NotifyResult{}, err
	}
	asker, sre := l.approvalTexts(st, h.Cfg.BotAccountID, h.Cfg.ApprovalWait)
	res, err := h.once(ctx, in.Execution+"/approval-sre", h.Cfg.SRERoomID, sre)
	if err != nil {
		return res, err
	}
	// The asker: the progress message, if there is one, becomes the
	// notice; the progress claim is then spent, so the final answer posts.
	if m, err := h.posted(ctx, in.Execution+"/approval-asker"); err != nil || m != nil {
		return res, err // told already (a retry)
	}
	progressID, err := h.progressOf(ctx, in.Execution)
	if err != nil {
		return res, err
	}
	body := chatwork.ReplyTo(r.AccountID, r.RoomID, r.MessageID) + asker
	if progressID != "" {
		if err := h.Chat.UpdateMessage(ctx, r.RoomID, progressID, body); err == nil {
			// A retry must not post the notice again.
			h.setMark(ctx, in.Execution+"/approval-asker", mark{RoomID: r.RoomID, MessageID: progressID})
			spent, _ := json.Marshal(progressClaim{State: claimSkipped})
			if err := s3obj.PutAlways(ctx, h.Store, h.Cfg.Bucket, h.claimKey(in.Execution), spent); err != nil {
				return res, err
			}
			return res, nil
		}
		h.Log.WarnContext(ctx, "could not edit the progress message into the approval notice", "execution", in.Execution)
	}
	if _, err := h.once(ctx, in.Execution+"/approval-asker", r.RoomID, body); err != nil {
		return res, fmt.Errorf("notify: approval notice: %w", err)
	}
	return res, nil
}
