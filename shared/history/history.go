// Package history keeps the recent unban requests for the SREs' ban-list
// page, in the policy table (shared/policystore's single table): one item
// per UTC hour, "history#2026-12-01T23", whose list attribute grows by one
// record per answered request (UpdateItem with list_append, so concurrent
// notify runs never lose each other's records). Each item carries the
// table's TTL attribute: it goes 30 days after its hour.
//
// A record holds who asked, in which room, for which addresses, what came
// of it and the execution's name: never a message body. notify appends
// when it answers; a retried answer may append twice, so Recent keeps one
// record per execution (the first).
//
// The page reads the last 24 hours with one BatchGetItem (24 keys), so its
// role needs dynamodb:BatchGetItem on the table, restricted to keys that
// start with KeyPrefix (dynamodb:LeadingKeys); notify's needs
// dynamodb:UpdateItem on the same keys.
package history

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/policystore"
)

const (
	// KeyPrefix starts every history item's key.
	KeyPrefix = "history#"
	// Retention is how long an hour's item is kept after the hour.
	Retention = 30 * 24 * time.Hour
	// MaxPerHour × MaxRecordBytes bounds an hour's item well under
	// DynamoDB's 400 KB (past it an update fails as invalid, not as a
	// failed condition): past MaxPerHour, records of that hour are
	// dropped, which the writer logs.
	MaxPerHour = 700
	// MaxRecordBytes bounds one record's JSON; host names beyond it are
	// counted in MoreHosts instead (5 IPv6 addresses and an 80-character
	// execution name still fit).
	MaxRecordBytes = 512
	// Window is how far back Recent reads.
	Window = 24 * time.Hour
	// recordsAttribute holds an hour's records, a list of JSON strings.
	recordsAttribute = "records"
)

// Result kinds of a request.
const (
	ResultUnblocked  = "unblocked"   // freed on every host that blocked it
	ResultPartial    = "partial"     // freed somewhere, a host failed or was silent
	ResultNotBlocked = "not_blocked" // no host blocked it
	ResultUnknown    = "unknown"     // nothing freed, some host did not answer
	ResultRefused    = "refused"     // the policy refused the asker
	ResultDenied     = "denied"      // an SRE declined
	ResultExpired    = "expired"     // no SRE answered the approval in time
	ResultFailed     = "failed"      // the execution failed
	ResultKept       = "kept"        // the asker asked to keep the block
	ResultInvalid    = "invalid"     // nothing in the message could be unbanned
)

// Record is one answered request.
type Record struct {
	Time      time.Time `json:"time"`
	AccountID string    `json:"account_id"`
	RoomID    string    `json:"room_id"`
	Addresses []string  `json:"addresses"`
	Result    string    `json:"result"`
	// Hosts are the hosts that freed an address (at most MaxHosts names,
	// and fewer when the record would pass MaxRecordBytes); MoreHosts
	// counts those left out.
	Hosts     []string `json:"hosts,omitempty"`
	MoreHosts int      `json:"more_hosts,omitempty"`
	Execution string   `json:"execution"`
}

// MaxHosts bounds the host names one record keeps.
const MaxHosts = 20

// API is the part of *dynamodb.Client the store uses.
type API interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Store reads and writes the history items. Now is the clock (nil:
// time.Now).
type Store struct {
	DB    API
	Table string
	Now   func() time.Time
}

// ErrHourFull says an hour already holds MaxPerHour records.
var ErrHourFull = errors.New("history: this hour's record is full")

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// HourKey is the item key of the hour holding t.
func HourKey(t time.Time) string { return KeyPrefix + t.UTC().Format("2006-01-02T15") }

// Append adds r to its hour (r.Time, or now when zero).
func (s *Store) Append(ctx context.Context, r Record) error {
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	r.Time = r.Time.UTC().Truncate(time.Millisecond)
	if len(r.Hosts) > MaxHosts {
		r.MoreHosts += len(r.Hosts) - MaxHosts
		r.Hosts = r.Hosts[:MaxHosts]
	}
	raw, err := json.Marshal(r)
	for err == nil && len(raw) > MaxRecordBytes && len(r.Hosts) > 0 {
		r.Hosts, r.MoreHosts = r.Hosts[:len(r.Hosts)-1], r.MoreHosts+1
		raw, err = json.Marshal(r)
	}
	if err != nil {
		return err
	}
	if len(raw) > MaxRecordBytes {
		return fmt.Errorf("history: record of %s is %d bytes, over %d", r.Execution, len(raw), MaxRecordBytes)
	}
	pk := HourKey(r.Time)
	expires := r.Time.Truncate(time.Hour).Add(time.Hour + Retention)
	_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.Table),
		Key:                 map[string]types.AttributeValue{policystore.KeyAttribute: &types.AttributeValueMemberS{Value: pk}},
		UpdateExpression:    aws.String("SET #r = list_append(if_not_exists(#r, :empty), :new), #ttl = :ttl"),
		ConditionExpression: aws.String("attribute_not_exists(#r) OR size(#r) < :max"),
		ExpressionAttributeNames: map[string]string{
			"#r": recordsAttribute, "#ttl": policystore.TTLAttribute,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
			":new":   &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: string(raw)}}},
			":ttl":   &types.AttributeValueMemberN{Value: strconv.FormatInt(expires.Unix(), 10)},
			":max":   &types.AttributeValueMemberN{Value: strconv.Itoa(MaxPerHour)},
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("%s: %w", pk, ErrHourFull)
	}
	if err != nil {
		return awserr.Classify(fmt.Errorf("dynamodb update %s/%s: %w", s.Table, pk, err))
	}
	return nil
}

// maxBatchRounds bounds the rounds of UnprocessedKeys Recent retries.
const maxBatchRounds = 5

// Recent returns the records of the last Window, newest first, one per
// execution, at most limit (0: all).
func (s *Store) Recent(ctx context.Context, limit int) ([]Record, error) {
	now := s.now()
	var keys []map[string]types.AttributeValue
	for t := now.Add(-Window).Truncate(time.Hour); !t.After(now); t = t.Add(time.Hour) {
		keys = append(keys, map[string]types.AttributeValue{policystore.KeyAttribute: &types.AttributeValueMemberS{Value: HourKey(t)}})
	}
	var items []map[string]types.AttributeValue
	req := map[string]types.KeysAndAttributes{s.Table: {
		Keys:                     keys,
		ProjectionExpression:     aws.String("#r, #ttl"),
		ExpressionAttributeNames: map[string]string{"#r": recordsAttribute, "#ttl": policystore.TTLAttribute},
	}}
	for round := 0; len(req) > 0; round++ {
		if round == maxBatchRounds {
			return nil, awserr.Classify(fmt.Errorf("history: %d keys still unprocessed after %d rounds", len(req[s.Table].Keys), round))
		}
		out, err := s.DB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, awserr.Classify(fmt.Errorf("dynamodb batch get %s history: %w", s.Table, err))
		}
		items = append(items, out.Responses[s.Table]...)
		req = out.UnprocessedKeys
	}
	from := now.Add(-Window)
	var recs []Record
	for _, it := range items {
		if v, ok := it[policystore.TTLAttribute].(*types.AttributeValueMemberN); ok {
			if exp, err := strconv.ParseInt(v.Value, 10, 64); err == nil && exp <= now.Unix() {
				continue // past its TTL, not yet deleted
			}
		}
		l, _ := it[recordsAttribute].(*types.AttributeValueMemberL)
		if l == nil {
			continue
		}
		for _, v := range l.Value {
			sv, ok := v.(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			var r Record
			if json.Unmarshal([]byte(sv.Value), &r) != nil || r.Time.Before(from) || r.Time.After(now.Add(time.Minute)) {
				continue
			}
			recs = append(recs, r)
		}
	}
	// Oldest first to keep each execution's first record, then newest
	// first for the page.
	slices.SortStableFunc(recs, func(a, b Record) int { return a.Time.Compare(b.Time) })
	seen := map[string]bool{}
	recs = slices.DeleteFunc(recs, func(r Record) bool {
		if r.Execution == "" {
			return false
		}
		dup := seen[r.Execution]
		seen[r.Execution] = true
		return dup
	})
	slices.SortStableFunc(recs, func(a, b Record) int { return cmp.Compare(b.Time.UnixNano(), a.Time.UnixNano()) })
	if limit > 0 && len(recs) > limit {
		recs = recs[:limit]
	}
	return recs, nil
}
