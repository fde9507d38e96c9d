// Package policystore keeps the policy's state in one DynamoDB table:
// per-account and per-address quotas, approval requests waiting for an SRE,
// and a cache of Chatwork room members. Every write that decides something
// is one conditional write, so concurrent Lambdas never both win.
//
// Single-table design: the partition key KeyAttribute (a string) says what
// an item is ("quota#…", "approval#…", "members#…"), and every item carries
// TTLAttribute (Unix seconds) so DynamoDB deletes it in the end. TTL
// deletion is lazy (up to days late), so reads treat an item past its TTL
// as absent themselves.
package policystore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/shared/awserr"
)

// The table's schema, shared by the CDK stack (cdk/table.go) and the local
// table (local/dynalite.CreateTable) so the two cannot drift.
const (
	// KeyAttribute is the partition key, a string; there is no sort key.
	KeyAttribute = "pk"
	// KeyAttributeType is its DynamoDB type: S, a string.
	KeyAttributeType = "S"
	// TTLAttribute is the table's time-to-live attribute, Unix seconds.
	TTLAttribute = "expires"
)

// API is the part of *dynamodb.Client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Store reads and writes the policy table. Now is the clock (nil: time.Now);
// tests move it to cross windows and expiry times.
type Store struct {
	DB    API
	Table string
	Now   func() time.Time
}

var (
	// ErrNotFound: no such item, or it is past its TTL.
	ErrNotFound = errors.New("policystore: not found")
	// ErrExists: PutApproval's code is already taken.
	ErrExists = errors.New("policystore: already exists")
	// ErrNotPending: the approval was already decided, or has expired.
	ErrNotPending = errors.New("policystore: approval is not pending")
)

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// get reads an item with a consistent read; ok is false when it is missing
// or past its TTL.
func (s *Store) get(ctx context.Context, pk string) (map[string]types.AttributeValue, bool, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.Table),
		Key:            itemKey(pk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, false, s.fail("get", pk, err)
	}
	if out.Item == nil {
		return nil, false, nil
	}
	if ttl, ok := number(out.Item, TTLAttribute); ok && ttl <= s.now().Unix() {
		return nil, false, nil
	}
	return out.Item, true, nil
}

// fail names the call and item and classifies err (throttling and 5xx
// become taskerr.TransientError, as everywhere else).
func (s *Store) fail(op, pk string, err error) error {
	return awserr.Classify(fmt.Errorf("dynamodb %s %s/%s: %w", op, s.Table, pk, err))
}

// conditionFailed reports whether a write lost its condition.
func conditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func itemKey(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{KeyAttribute: str(pk)}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// ttl is a TTL value for t: Unix seconds, rounded up so an item never
// expires before t.
func ttl(t time.Time) types.AttributeValue {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return num(sec)
}

func text(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func number(item map[string]types.AttributeValue, name string) (int64, bool) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	return n, err == nil
}

// Times other than the TTL are Unix milliseconds; zero stays zero.
func millis(t time.Time) types.AttributeValue {
	if t.IsZero() {
		return num(0)
	}
	return num(t.UnixMilli())
}

func timeAt(item map[string]types.AttributeValue, name string) time.Time {
	ms, ok := number(item, name)
	if !ok || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
