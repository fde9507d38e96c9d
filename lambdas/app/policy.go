package app

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"sshguard-unban/lambdas/notify"
	"sshguard-unban/lambdas/policy"
	"sshguard-unban/shared/history"
	"sshguard-unban/shared/policystore"
	"sshguard-unban/shared/workflow"
)

// policyStore is the policy table (quotas, approvals, the member cache).
func policyStore(e *env, cfg aws.Config) *policystore.Store {
	return &policystore.Store{DB: dynamodb.NewFromConfig(cfg), Table: e.need("POLICY_TABLE")}
}

// historyStore is the request history, in the policy table.
func historyStore(e *env, cfg aws.Config) *history.Store {
	return &history.Store{DB: dynamodb.NewFromConfig(cfg), Table: e.need("POLICY_TABLE")}
}

// newCode draws approval codes with a digit in them, so that no word an
// SRE writes ("approve please") reads as one (shared/message).
func newCode() string {
	for {
		if c := policystore.NewCode(); strings.ContainsAny(c, "0123456789") {
			return c
		}
	}
}

// approvals is the policy table as notify records approval requests and as
// the policy task decides them.
type approvals struct{ s *policystore.Store }

// Record stores a new request; a retried AskSREsToApprove (a new task
// token for the same execution) renews the token of its own request.
func (a approvals) Record(ctx context.Context, r notify.ApprovalRequest) error {
	err := a.s.PutApproval(ctx, policystore.Approval{
		Code: r.Code, Execution: r.Execution, TaskToken: r.TaskToken, RoomID: r.RoomID, AccountID: r.AccountID,
		MessageID: r.MessageID, Addresses: r.Addresses, Reason: r.Reason, Expires: r.Expires,
	})
	if !errors.Is(err, policystore.ErrExists) {
		return err
	}
	return a.s.RenewToken(ctx, r.Code, r.Execution, r.TaskToken, r.Expires)
}

// Get reads a request (policy.ErrNoSuchCode if there is none).
func (a approvals) Get(ctx context.Context, code string) (workflow.Approval, error) {
	ap, err := a.s.GetApproval(ctx, code)
	if errors.Is(err, policystore.ErrNotFound) {
		return workflow.Approval{}, policy.ErrNoSuchCode
	}
	return asked(ap), err
}

// asked is a stored approval as the state shows it.
func asked(ap policystore.Approval) workflow.Approval {
	return workflow.Approval{Status: ap.Status, By: ap.DecidedBy, Code: ap.Code, Execution: ap.Execution,
		AccountID: ap.AccountID, Addresses: ap.Addresses}
}

// Decide records an SRE's answer.
func (a approvals) Decide(ctx context.Context, code, status, by string) (policy.Decided, error) {
	ap, err := a.s.DecideApproval(ctx, code, status, by)
	d := policy.Decided{TaskToken: ap.TaskToken, Approval: asked(ap)}
	switch {
	case errors.Is(err, policystore.ErrNotFound):
		return d, policy.ErrNoSuchCode
	case errors.Is(err, policystore.ErrNotPending):
		return d, policy.ErrAlreadyDecided
	}
	return d, err
}
