package policystore

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/shared/taskerr"
)

// Approval statuses. A pending approval past its Expires is reported as
// ApprovalExpired even before anyone records that.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// approvalRetention keeps a decided or expired approval for the audit.
const approvalRetention = 7 * 24 * time.Hour

// Approval is a request waiting for (or past) an SRE's decision. Code is
// what the SRE types; TaskToken resumes the waiting execution. Times are
// stored to the millisecond and read back in UTC.
type Approval struct {
	Code, Execution, TaskToken, RoomID, AccountID, MessageID string
	Addresses                                                []string
	Reason                                                   string
	Created                                                  time.Time
	Expires                                                  time.Time
	Status                                                   string
	DecidedBy                                                string
	DecidedAt                                                time.Time
}

func approvalKey(code string) string { return "approval#" + code }

// PutApproval stores a new approval under its code, only if the code is
// free (ErrExists otherwise: draw another with NewCode). An empty Status
// becomes ApprovalPending and a zero Created the store's now. It is kept
// until 7 days after Expires.
func (s *Store) PutApproval(ctx context.Context, a Approval) error {
	if a.Code == "" || a.Expires.IsZero() {
		return &taskerr.InvalidInputError{Reason: "approval without code or expiry"}
	}
	if a.Status == "" {
		a.Status = ApprovalPending
	}
	if a.Created.IsZero() {
		a.Created = s.now()
	}
	pk := approvalKey(a.Code)
	item := approvalItem(a)
	item[KeyAttribute] = str(pk)
	item[TTLAttribute] = ttl(a.Expires.Add(approvalRetention))
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.Table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": KeyAttribute},
	})
	if conditionFailed(err) {
		return fmt.Errorf("approval %s: %w", a.Code, ErrExists)
	}
	if err != nil {
		return s.fail("put", pk, err)
	}
	return nil
}

// GetApproval reads an approval (ErrNotFound if there is none, or it is
// past its retention).
func (s *Store) GetApproval(ctx context.Context, code string) (Approval, error) {
	item, ok, err := s.get(ctx, approvalKey(code))
	if err != nil {
		return Approval{}, err
	}
	if !ok {
		return Approval{}, fmt.Errorf("approval %s: %w", code, ErrNotFound)
	}
	return s.approval(item), nil
}

// DecideApproval moves a pending approval to status (ApprovalApproved or
// ApprovalDenied before its Expires; ApprovalExpired at any time), recording
// who decided and when, and returns it with its task token. If it was
// already decided, or has expired, it returns ErrNotPending together with
// the approval as it stands, so the caller can say who decided.
func (s *Store) DecideApproval(ctx context.Context, code, status, by string) (Approval, error) {
	names := map[string]string{"#pk": KeyAttribute, "#status": "status", "#by": "decided_by", "#at": "decided_ms"}
	cond := "attribute_exists(#pk) AND #status = :pending"
	switch status {
	case ApprovalApproved, ApprovalDenied:
		cond += " AND #deadline > :now"
		names["#deadline"] = "expires_ms"
	case ApprovalExpired:
	default:
		return Approval{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("approval %s: cannot decide %q", code, status)}
	}
	now := s.now()
	pk := approvalKey(code)
	out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.Table),
		Key:                      itemKey(pk),
		UpdateExpression:         aws.String("SET #status = :status, #by = :by, #at = :now"),
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: names,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pending": str(ApprovalPending), ":status": str(status), ":by": str(by), ":now": millis(now),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err == nil {
		return s.approval(out.Attributes), nil
	}
	if !conditionFailed(err) {
		return Approval{}, s.fail("decide", pk, err)
	}
	// Lost the condition: missing, decided or expired. Read what is there.
	current, err := s.GetApproval(ctx, code)
	if err != nil {
		return Approval{}, err
	}
	return current, fmt.Errorf("approval %s is %s: %w", code, current.Status, ErrNotPending)
}

// RenewToken replaces the task token of a pending approval of execution,
// and its expiry: when the waiting Task is retried, Step Functions gives it
// a new token (only that one resumes the execution) and a new timeout.
// ErrNotPending if it was decided, has expired, or belongs to another
// execution (a code collision).
func (s *Store) RenewToken(ctx context.Context, code, execution, token string, expires time.Time) error {
	pk := approvalKey(code)
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.Table),
		Key:                 itemKey(pk),
		UpdateExpression:    aws.String("SET #token = :token, #deadline = :expires, #ttl = :ttl"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #status = :pending AND #execution = :execution AND #deadline > :now"),
		ExpressionAttributeNames: map[string]string{"#pk": KeyAttribute, "#token": "task_token", "#status": "status",
			"#execution": "execution", "#deadline": "expires_ms", "#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":token": str(token), ":pending": str(ApprovalPending), ":execution": str(execution), ":now": millis(s.now()),
			":expires": millis(expires), ":ttl": ttl(expires.Add(approvalRetention)),
		},
	})
	if conditionFailed(err) {
		return fmt.Errorf("approval %s: %w", code, ErrNotPending)
	}
	if err != nil {
		return s.fail("renew", pk, err)
	}
	return nil
}

func approvalItem(a Approval) map[string]types.AttributeValue {
	addrs := make([]types.AttributeValue, len(a.Addresses))
	for i, v := range a.Addresses {
		addrs[i] = str(v)
	}
	return map[string]types.AttributeValue{
		"code":       str(a.Code),
		"execution":  str(a.Execution),
		"task_token": str(a.TaskToken),
		"room_id":    str(a.RoomID),
		"account_id": str(a.AccountID),
		"message_id": str(a.MessageID),
		"addresses":  &types.AttributeValueMemberL{Value: addrs},
		"reason":     str(a.Reason),
		"created_ms": millis(a.Created),
		"expires_ms": millis(a.Expires),
		"status":     str(a.Status),
		"decided_by": str(a.DecidedBy),
		"decided_ms": millis(a.DecidedAt),
	}
}

// approval decodes an item; pending past Expires reads as expired.
func (s *Store) approval(item map[string]types.AttributeValue) Approval {
	a := Approval{
		Code:      text(item, "code"),
		Execution: text(item, "execution"),
		TaskToken: text(item, "task_token"),
		RoomID:    text(item, "room_id"),
		AccountID: text(item, "account_id"),
		MessageID: text(item, "message_id"),
		Reason:    text(item, "reason"),
		Created:   timeAt(item, "created_ms"),
		Expires:   timeAt(item, "expires_ms"),
		Status:    text(item, "status"),
		DecidedBy: text(item, "decided_by"),
		DecidedAt: timeAt(item, "decided_ms"),
	}
	if l, ok := item["addresses"].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			if addr, ok := v.(*types.AttributeValueMemberS); ok {
				a.Addresses = append(a.Addresses, addr.Value)
			}
		}
	}
	if a.Status == ApprovalPending && !s.now().Before(a.Expires) {
		a.Status = ApprovalExpired
	}
	return a
}

// codeAlphabet has no look-alikes: no 0/O, no 1/I/L.
const codeAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// CodeLength is the length of NewCode's codes: 31⁶ ≈ 8.9 × 10⁸ of them, so
// a collision (ErrExists) is rare and another draw fixes it.
const CodeLength = 6

// NewCode draws an approval code people can read and type, uniformly from
// codeAlphabet (bytes at or above the largest multiple of its length are
// drawn again, so no letter is more likely).
func NewCode() string {
	limit := byte(256 / len(codeAlphabet) * len(codeAlphabet))
	code := make([]byte, 0, CodeLength)
	var b [16]byte
	for len(code) < CodeLength {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
		for _, v := range b {
			if v < limit && len(code) < CodeLength {
				code = append(code, codeAlphabet[int(v)%len(codeAlphabet)])
			}
		}
	}
	return string(code)
}

// NormalizeCode reads a code as typed (any case, surrounding space) and
// reports whether it can be one of NewCode's.
func NormalizeCode(typed string) (string, bool) {
	c := strings.ToUpper(strings.TrimSpace(typed))
	if len(c) != CodeLength {
		return c, false
	}
	for _, r := range c {
		if !strings.ContainsRune(codeAlphabet, r) {
			return c, false
		}
	}
	return c, true
}
