package policystore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/shared/taskerr"
)

func membersKey(roomID string) string { return "members#" + roomID }

// PutMembers caches a room's members (Chatwork account id → organization
// id, from GET /rooms/{room_id}/members) for ttl, replacing what was there.
func (s *Store) PutMembers(ctx context.Context, roomID string, members map[string]string, ttlFor time.Duration) error {
	if roomID == "" || ttlFor <= 0 {
		return &taskerr.InvalidInputError{Reason: fmt.Sprintf("members of room %q for %v", roomID, ttlFor)}
	}
	m := make(map[string]types.AttributeValue, len(members))
	for account, org := range members {
		m[account] = str(org)
	}
	now := s.now()
	pk := membersKey(roomID)
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.Table),
		Item: map[string]types.AttributeValue{
			KeyAttribute: str(pk),
			"members":    &types.AttributeValueMemberM{Value: m},
			"fetched_ms": millis(now),
			TTLAttribute: ttl(now.Add(ttlFor)),
		},
	})
	if err != nil {
		return s.fail("put", pk, err)
	}
	return nil
}

// GetMembers returns a room's cached members and when they were fetched;
// ok is false when there are none or they are past their ttl (to the
// second), whether or not DynamoDB has deleted them yet.
func (s *Store) GetMembers(ctx context.Context, roomID string) (members map[string]string, fetched time.Time, ok bool, err error) {
	item, ok, err := s.get(ctx, membersKey(roomID))
	if err != nil || !ok {
		return nil, time.Time{}, false, err
	}
	members = map[string]string{}
	if m, isMap := item["members"].(*types.AttributeValueMemberM); isMap {
		for account, v := range m.Value {
			if org, isStr := v.(*types.AttributeValueMemberS); isStr {
				members[account] = org.Value
			}
		}
	}
	return members, timeAt(item, "fetched_ms"), true, nil
}

// DeleteMembers forgets a room's cached members, so the next GetMembers
// misses: for example when an asker is not in the cached list and may have
// joined since it was fetched.
func (s *Store) DeleteMembers(ctx context.Context, roomID string) error {
	pk := membersKey(roomID)
	_, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.Table), Key: itemKey(pk)})
	if err != nil {
		return s.fail("delete", pk, err)
	}
	return nil
}
