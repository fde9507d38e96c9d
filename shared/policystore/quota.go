package policystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/shared/taskerr"
)

// countAttribute holds a quota window's count.
const countAttribute = "n"

// quotaRetention keeps a finished window's count a day for a look at who
// used what; nothing reads it after its window.
const quotaRetention = 24 * time.Hour

// window is the fixed window holding now: its item key and its end. The
// window's length is in the key, so an hourly and a daily quota of the same
// key (both starting at midnight) are separate counters.
func window(key string, now time.Time, length time.Duration) (pk string, end time.Time) {
	start := now.UTC().Truncate(length)
	return "quota#" + key + "#" + start.Format(time.RFC3339) + "/" + length.String(), start.Add(length)
}

// Take counts n units against key's limit in the current fixed window of
// the given length (windows start at multiples of it, in UTC). It succeeds
// only if the window's count stays ≤ limit: one conditional UpdateItem, so
// concurrent callers never take more than limit between them. When it is
// refused, retryAt is the window's end, when the count starts from zero;
// n > limit can never succeed and gives a zero retryAt.
func (s *Store) Take(ctx context.Context, key string, n, limit int, length time.Duration) (ok bool, retryAt time.Time, err error) {
	if n < 1 || length <= 0 || key == "" {
		return false, time.Time{}, &taskerr.InvalidInputError{Reason: fmt.Sprintf("quota take %q: n=%d window=%v", key, n, length)}
	}
	if n > limit {
		return false, time.Time{}, nil
	}
	pk, end := window(key, s.now(), length)
	_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.Table),
		Key:                      itemKey(pk),
		UpdateExpression:         aws.String("ADD #n :n SET #ttl = :ttl"),
		ConditionExpression:      aws.String("attribute_not_exists(#n) OR #n <= :max"),
		ExpressionAttributeNames: map[string]string{"#n": countAttribute, "#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n": num(int64(n)), ":max": num(int64(limit - n)), ":ttl": ttl(end.Add(quotaRetention)),
		},
	})
	switch {
	case err == nil:
		return true, time.Time{}, nil
	case conditionFailed(err):
		return false, end, nil
	}
	return false, time.Time{}, s.fail("take", pk, err)
}

// maxGiveAttempts bounds Give's loop; each round is lost only to a
// concurrent Take or Give on the same window.
const maxGiveAttempts = 5

// Give returns n units to key's current window (a request that was taken
// for and then refused, or failed before any host was touched). The count
// never goes below zero: when fewer than n were taken it becomes zero.
func (s *Store) Give(ctx context.Context, key string, n int, length time.Duration) error {
	if n < 1 || length <= 0 || key == "" {
		return &taskerr.InvalidInputError{Reason: fmt.Sprintf("quota give %q: n=%d window=%v", key, n, length)}
	}
	pk, end := window(key, s.now(), length)
	names := map[string]string{"#n": countAttribute, "#ttl": TTLAttribute}
	for range maxGiveAttempts {
		// Subtract if there is enough…
		_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.Table),
			Key:                       itemKey(pk),
			UpdateExpression:          aws.String("ADD #n :minus"),
			ConditionExpression:       aws.String("#n >= :n"),
			ExpressionAttributeNames:  map[string]string{"#n": countAttribute},
			ExpressionAttributeValues: map[string]types.AttributeValue{":minus": num(int64(-n)), ":n": num(int64(n))},
		})
		if err == nil || !conditionFailed(err) {
			return s.classifyGive(pk, err)
		}
		// …else clamp to zero (a missing window gets a zero count). Losing
		// this too means a Take raised the count meanwhile: subtract again.
		_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.Table),
			Key:                       itemKey(pk),
			UpdateExpression:          aws.String("SET #n = :zero, #ttl = if_not_exists(#ttl, :ttl)"),
			ConditionExpression:       aws.String("attribute_not_exists(#n) OR #n < :n"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":n": num(int64(n)), ":ttl": ttl(end.Add(quotaRetention))},
		})
		if err == nil || !conditionFailed(err) {
			return s.classifyGive(pk, err)
		}
	}
	return taskerr.Transient(fmt.Errorf("dynamodb give %s/%s: %w", s.Table, pk, errContended))
}

var errContended = errors.New("the count kept changing; try again")

func (s *Store) classifyGive(pk string, err error) error {
	if err == nil {
		return nil
	}
	return s.fail("give", pk, err)
}
