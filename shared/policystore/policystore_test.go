package policystore_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/shared/policystore"
	"sshguard-unban/shared/taskerr"
)

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func at(s string) time.Time          { t, _ := time.Parse(time.RFC3339, s); return t }
func unix(t time.Time) string        { return strconv.FormatInt(t.Unix(), 10) }
func (c *clock) store(db policystore.API) *policystore.Store {
	return &policystore.Store{DB: db, Table: "policy", Now: c.Now}
}

// one dynalite per test binary run would share state between tests; each
// test gets its own table in its own server instead (about 0.1 s).
func newStore(t *testing.T, start string) (*policystore.Store, *clock, *dynamodb.Client) {
	t.Helper()
	db := dynalitetest.Table(t, "policy")
	c := &clock{t: at(start)}
	return c.store(db), c, db
}

func TestTake(t *testing.T) {
	type step struct {
		advance   time.Duration
		key       string
		n, limit  int
		window    time.Duration
		ok        bool
		retryAt   string // RFC 3339; "" for zero
		afterGive int    // Give this many back after the step
	}
	cases := []struct {
		name  string
		start string
		steps []step
	}{
		{"fills the window, refuses until it ends, then starts again", "2026-12-02T10:15:00Z", []step{
			{key: "account#1", n: 3, limit: 5, window: time.Hour, ok: true},
			{key: "account#1", n: 2, limit: 5, window: time.Hour, ok: true},
			{key: "account#1", n: 1, limit: 5, window: time.Hour, retryAt: "2026-12-02T11:00:00Z"},
			{advance: 44*time.Minute + 59*time.Second, key: "account#1", n: 1, limit: 5, window: time.Hour, retryAt: "2026-12-02T11:00:00Z"},
			{advance: time.Second, key: "account#1", n: 5, limit: 5, window: time.Hour, ok: true},
		}},
		{"a refused take counts nothing", "2026-12-02T10:00:00Z", []step{
			{key: "a", n: 4, limit: 5, window: time.Hour, ok: true},
			{key: "a", n: 2, limit: 5, window: time.Hour, retryAt: "2026-12-02T11:00:00Z"},
			{key: "a", n: 1, limit: 5, window: time.Hour, ok: true},
		}},
		{"more than the limit never fits", "2026-12-02T10:00:00Z", []step{
			{key: "a", n: 6, limit: 5, window: time.Hour},
			{key: "a", n: 5, limit: 5, window: time.Hour, ok: true},
		}},
		{"a zero limit refuses everything", "2026-12-02T10:00:00Z", []step{
			{key: "a", n: 1, limit: 0, window: time.Hour},
		}},
		{"hourly and daily windows of one key, and other keys, are separate counters", "2026-12-02T00:10:00Z", []step{
			{key: "account#1", n: 5, limit: 5, window: time.Hour, ok: true},
			{key: "account#1", n: 20, limit: 20, window: 24 * time.Hour, ok: true},
			{key: "account#1", n: 1, limit: 20, window: 24 * time.Hour, retryAt: "2026-12-03T00:00:00Z"},
			{key: "account#2", n: 5, limit: 5, window: time.Hour, ok: true},
			{key: "address#203.0.113.5", n: 1, limit: 3, window: 24 * time.Hour, ok: true},
		}},
		{"windows are in UTC whatever the clock's zone", "2026-12-02T23:30:00+09:00", []step{
			{key: "a", n: 1, limit: 1, window: 24 * time.Hour, ok: true},
			{key: "a", n: 1, limit: 1, window: 24 * time.Hour, retryAt: "2026-12-03T00:00:00Z"},
		}},
		{"give returns units, never below zero", "2026-12-02T10:00:00Z", []step{
			{key: "a", n: 3, limit: 5, window: time.Hour, ok: true, afterGive: 2},
			{key: "a", n: 4, limit: 5, window: time.Hour, ok: true},
			{key: "a", n: 1, limit: 5, window: time.Hour, retryAt: "2026-12-02T11:00:00Z", afterGive: 9},
			{key: "a", n: 5, limit: 5, window: time.Hour, ok: true},
			{key: "a", n: 1, limit: 5, window: time.Hour, retryAt: "2026-12-02T11:00:00Z"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, clk, _ := newStore(t, c.start)
			ctx := context.Background()
			for i, st := range c.steps {
				clk.Add(st.advance)
				ok, retryAt, err := s.Take(ctx, st.key, st.n, st.limit, st.window)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want := time.Time{}
				if st.retryAt != "" {
					want = at(st.retryAt)
				}
				if ok != st.ok || !retryAt.Equal(want) {
					t.Fatalf("step %d: Take(%s, %d of %d) = %v, %v; want %v, %v", i, st.key, st.n, st.limit, ok, retryAt, st.ok, want)
				}
				if st.afterGive > 0 {
					if err := s.Give(ctx, st.key, st.afterGive, st.window); err != nil {
						t.Fatalf("step %d: give: %v", i, err)
					}
				}
			}
		})
	}
}

// Give on a window nothing was taken from leaves a zero count: the full
// limit can be taken, not one more.
func TestGiveToEmptyWindow(t *testing.T) {
	s, _, _ := newStore(t, "2026-12-02T10:00:00Z")
	ctx := context.Background()
	if err := s.Give(ctx, "a", 3, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := s.Take(ctx, "a", 2, 2, time.Hour); !ok || err != nil {
		t.Fatalf("take the limit after a give to an empty window: %v %v", ok, err)
	}
	if ok, _, _ := s.Take(ctx, "a", 1, 2, time.Hour); ok {
		t.Fatal("the give raised the limit")
	}
}

func TestTakeInvalid(t *testing.T) {
	s, _, _ := newStore(t, "2026-12-02T10:00:00Z")
	var invalid *taskerr.InvalidInputError
	for _, c := range []struct {
		key    string
		n      int
		window time.Duration
	}{{"a", 0, time.Hour}, {"a", -1, time.Hour}, {"a", 1, 0}, {"", 1, time.Hour}} {
		if _, _, err := s.Take(context.Background(), c.key, c.n, 5, c.window); !errors.As(err, &invalid) {
			t.Errorf("Take(%q, %d, %v): %v, want InvalidInputError", c.key, c.n, c.window, err)
		}
		if err := s.Give(context.Background(), c.key, c.n, c.window); !errors.As(err, &invalid) {
			t.Errorf("Give(%q, %d, %v): %v, want InvalidInputError", c.key, c.n, c.window, err)
		}
	}
}

// Many Lambdas take the last units at once: exactly the limit succeed, and
// the stored count is the limit.
func TestTakeConcurrent(t *testing.T) {
	s, _, db := newStore(t, "2026-12-02T10:00:00Z")
	ctx := context.Background()
	const limit, before, takers = 10, 7, 40
	if ok, _, err := s.Take(ctx, "account#1", before, limit, time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}
	var won, lost atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range takers {
		wg.Go(func() {
			<-start
			ok, retryAt, err := s.Take(ctx, "account#1", 1, limit, time.Hour)
			switch {
			case err != nil:
				t.Error(err)
			case ok:
				won.Add(1)
			case retryAt.Equal(at("2026-12-02T11:00:00Z")):
				lost.Add(1)
			default:
				t.Errorf("refused with retryAt %v", retryAt)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != limit-before || lost.Load() != takers-(limit-before) {
		t.Fatalf("%d takes won, %d lost; want %d and %d", won.Load(), lost.Load(), limit-before, takers-(limit-before))
	}
	// The count as DynamoDB holds it.
	out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("policy")})
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("scan: %v items, %v", len(out.Items), err)
	}
	item := out.Items[0]
	if n := item["n"].(*types.AttributeValueMemberN).Value; n != "10" {
		t.Errorf("stored count %s, want 10", n)
	}
	pk := item[policystore.KeyAttribute].(*types.AttributeValueMemberS).Value
	if !strings.HasPrefix(pk, "quota#account#1#2026-12-02T10:00:00Z") {
		t.Errorf("key %q", pk)
	}
	// TTL: the window's end plus a day.
	if ttl := item[policystore.TTLAttribute].(*types.AttributeValueMemberN).Value; ttl != unix(at("2026-12-03T11:00:00Z")) {
		t.Errorf("ttl %s, want the window's end plus a day", ttl)
	}
}

// Concurrent gives and takes around a nearly empty window keep the count
// between zero and the limit.
func TestGiveConcurrent(t *testing.T) {
	s, _, _ := newStore(t, "2026-12-02T10:00:00Z")
	ctx := context.Background()
	const limit = 3
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				err = s.Give(ctx, "a", 2, time.Hour)
			} else {
				_, _, err = s.Take(ctx, "a", 1, limit, time.Hour)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Whatever the interleaving, the count is in [0, limit]: taking up to
	// the limit tells how much is left.
	free := 0
	for {
		ok, _, err := s.Take(ctx, "a", 1, limit, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		free++
		if free > limit {
			t.Fatalf("more than the limit could be taken: the count went below zero")
		}
	}
}

func approval(code string, created time.Time) policystore.Approval {
	return policystore.Approval{
		Code: code, Execution: "arn:aws:states:ap-northeast-1:000000000000:execution:unban:chatwork-1-2",
		TaskToken: "token-" + code, RoomID: "567890123", AccountID: "3000001", MessageID: "1234567890123456789",
		Addresses: []string{"203.0.113.5", "2001:db8::1"}, Reason: "over quota",
		Created: created, Expires: created.Add(30 * time.Minute),
	}
}

func TestApprovals(t *testing.T) {
	s, clk, db := newStore(t, "2026-12-02T10:00:00Z")
	ctx := context.Background()
	created := clk.Now()
	a := approval("ABC234", created)
	if err := s.PutApproval(ctx, a); err != nil {
		t.Fatal(err)
	}
	want := a
	want.Status = policystore.ApprovalPending
	got, err := s.GetApproval(ctx, "ABC234")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("get:\n got %+v, %v\nwant %+v", got, err, want)
	}
	// Create only.
	other := approval("ABC234", created)
	other.TaskToken = "someone else's"
	if err := s.PutApproval(ctx, other); !errors.Is(err, policystore.ErrExists) {
		t.Fatalf("second put of the code: %v, want ErrExists", err)
	}
	// A retried waiting Task has a new token: its own execution renews it,
	// another execution cannot.
	later := a.Expires.Add(10 * time.Minute) // the retried Task's own timeout
	if err := s.RenewToken(ctx, "ABC234", a.Execution, "token-2", later); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := s.RenewToken(ctx, "ABC234", "someone-else", "token-3", later); !errors.Is(err, policystore.ErrNotPending) {
		t.Fatalf("renew by another execution: %v, want ErrNotPending", err)
	}
	if got, _ := s.GetApproval(ctx, "ABC234"); got.TaskToken != "token-2" || !got.Expires.Equal(later) {
		t.Fatalf("after renew: token %q, expires %v", got.TaskToken, got.Expires)
	}
	want.TaskToken, want.Expires = "token-2", later
	if _, err := s.GetApproval(ctx, "ZZZ999"); !errors.Is(err, policystore.ErrNotFound) {
		t.Fatalf("missing code: %v, want ErrNotFound", err)
	}
	if _, err := s.DecideApproval(ctx, "ZZZ999", policystore.ApprovalApproved, "sre"); !errors.Is(err, policystore.ErrNotFound) {
		t.Fatalf("deciding a missing code: %v, want ErrNotFound", err)
	}

	// Decide twice: the first decider wins, the second sees who it was.
	clk.Add(time.Minute)
	first, err := s.DecideApproval(ctx, "ABC234", policystore.ApprovalApproved, "4000001")
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != policystore.ApprovalApproved || first.DecidedBy != "4000001" || !first.DecidedAt.Equal(clk.Now()) || first.TaskToken != "token-2" {
		t.Fatalf("decided: %+v", first)
	}
	clk.Add(time.Second)
	second, err := s.DecideApproval(ctx, "ABC234", policystore.ApprovalDenied, "4000002")
	if !errors.Is(err, policystore.ErrNotPending) {
		t.Fatalf("second decision: %v, want ErrNotPending", err)
	}
	if !reflect.DeepEqual(second, first) {
		t.Fatalf("second decision sees %+v, want the first %+v", second, first)
	}

	// TTL: a week after Expires (as renewed).
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("policy"),
		Key: map[string]types.AttributeValue{policystore.KeyAttribute: &types.AttributeValueMemberS{Value: "approval#ABC234"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ttl := out.Item[policystore.TTLAttribute].(*types.AttributeValueMemberN).Value; ttl != unix(later.Add(7*24*time.Hour)) {
		t.Errorf("ttl %s, want a week after Expires", ttl)
	}
	// Past its TTL it is gone, though dynalite (like DynamoDB, for a while)
	// still holds it.
	clk.Set(later.Add(7 * 24 * time.Hour))
	if _, err := s.GetApproval(ctx, "ABC234"); !errors.Is(err, policystore.ErrNotFound) {
		t.Fatalf("after its TTL: %v, want ErrNotFound", err)
	}
}

func TestApprovalExpires(t *testing.T) {
	cases := []struct {
		name   string
		after  time.Duration // from creation; Expires is at 30 minutes
		status string
		ok     bool
	}{
		{"approve just before expiry", 30*time.Minute - time.Millisecond, policystore.ApprovalApproved, true},
		{"approve at expiry", 30 * time.Minute, policystore.ApprovalApproved, false},
		{"approve after expiry", time.Hour, policystore.ApprovalApproved, false},
		{"deny after expiry", time.Hour, policystore.ApprovalDenied, false},
		{"record the expiry", time.Hour, policystore.ApprovalExpired, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, clk, _ := newStore(t, "2026-12-02T10:00:00Z")
			ctx := context.Background()
			a := approval("XYZ789", clk.Now())
			if err := s.PutApproval(ctx, a); err != nil {
				t.Fatal(err)
			}
			clk.Add(c.after)
			got, err := s.DecideApproval(ctx, "XYZ789", c.status, "4000001")
			if c.ok {
				if err != nil || got.Status != c.status {
					t.Fatalf("%+v, %v; want %s", got, err, c.status)
				}
				return
			}
			if !errors.Is(err, policystore.ErrNotPending) || got.Status != policystore.ApprovalExpired || got.DecidedBy != "" {
				t.Fatalf("%+v, %v; want ErrNotPending and an expired, undecided approval", got, err)
			}
			if got.TaskToken != a.TaskToken {
				t.Errorf("task token %q lost", got.TaskToken)
			}
		})
	}
}

func TestDecideInvalidStatus(t *testing.T) {
	s, clk, _ := newStore(t, "2026-12-02T10:00:00Z")
	if err := s.PutApproval(context.Background(), approval("ABC234", clk.Now())); err != nil {
		t.Fatal(err)
	}
	var invalid *taskerr.InvalidInputError
	for _, status := range []string{"", policystore.ApprovalPending, "APPROVED"} {
		if _, err := s.DecideApproval(context.Background(), "ABC234", status, "x"); !errors.As(err, &invalid) {
			t.Errorf("status %q: %v, want InvalidInputError", status, err)
		}
	}
	if err := s.PutApproval(context.Background(), policystore.Approval{Code: "ABC235"}); !errors.As(err, &invalid) {
		t.Errorf("an approval without Expires: %v, want InvalidInputError", err)
	}
}

// Many SREs answer at once: exactly one decision is recorded, and every
// loser is told who won.
func TestDecideConcurrent(t *testing.T) {
	s, clk, _ := newStore(t, "2026-12-02T10:00:00Z")
	ctx := context.Background()
	if err := s.PutApproval(ctx, approval("ABC234", clk.Now())); err != nil {
		t.Fatal(err)
	}
	const deciders = 20
	results := make([]policystore.Approval, deciders)
	errs := make([]error, deciders)
	var wg sync.WaitGroup
	for i := range deciders {
		wg.Go(func() {
			status := policystore.ApprovalApproved
			if i%2 == 1 {
				status = policystore.ApprovalDenied
			}
			results[i], errs[i] = s.DecideApproval(ctx, "ABC234", status, string(rune('a'+i)))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two deciders won: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, policystore.ErrNotPending):
			t.Fatal(err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won")
	}
	for i, r := range results {
		if r.DecidedBy != results[winner].DecidedBy || r.Status != results[winner].Status {
			t.Errorf("decider %d sees %s by %s, the winner was %s by %s", i, r.Status, r.DecidedBy, results[winner].Status, results[winner].DecidedBy)
		}
	}
}

func TestMembers(t *testing.T) {
	s, clk, _ := newStore(t, "2026-12-02T10:00:00Z")
	ctx := context.Background()
	if _, _, ok, err := s.GetMembers(ctx, "567890123"); ok || err != nil {
		t.Fatalf("nothing cached yet: ok=%v %v", ok, err)
	}
	members := map[string]string{"3000001": "100", "3000002": "100", "3000003": "200", "3000004": ""}
	if err := s.PutMembers(ctx, "567890123", members, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMembers(ctx, "567890124", map[string]string{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	fetchedAt := clk.Now()
	clk.Add(10*time.Minute - time.Second)
	got, fetched, ok, err := s.GetMembers(ctx, "567890123")
	if err != nil || !ok || !reflect.DeepEqual(got, members) || !fetched.Equal(fetchedAt) {
		t.Fatalf("within ttl: %v %v %v %v", got, fetched, ok, err)
	}
	// Past the ttl: absent, though still stored (dynalite never deletes).
	clk.Add(time.Second)
	if _, _, ok, err := s.GetMembers(ctx, "567890123"); ok || err != nil {
		t.Fatalf("past ttl: ok=%v %v", ok, err)
	}
	// A new fetch replaces the old list.
	if err := s.PutMembers(ctx, "567890123", map[string]string{"3000009": "100"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, fetched, ok, err = s.GetMembers(ctx, "567890123")
	if err != nil || !ok || !reflect.DeepEqual(got, map[string]string{"3000009": "100"}) || !fetched.Equal(clk.Now()) {
		t.Fatalf("replaced: %v %v %v %v", got, fetched, ok, err)
	}
	if err := s.DeleteMembers(ctx, "567890123"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.GetMembers(ctx, "567890123"); ok || err != nil {
		t.Fatalf("deleted: ok=%v %v", ok, err)
	}
	if err := s.DeleteMembers(ctx, "567890123"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c := policystore.NewCode()
		if strings.ContainsAny(c, "0O1IL") {
			t.Fatalf("%q has a look-alike", c)
		}
		if n, ok := policystore.NormalizeCode(" " + strings.ToLower(c) + "\n"); !ok || n != c {
			t.Fatalf("NormalizeCode(%q) = %q, %v", c, n, ok)
		}
		seen[c] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct codes in 2000", len(seen))
	}
	for _, bad := range []string{"", "ABC23", "ABC2345", "ABC23O", "ABC 23"} {
		if _, ok := policystore.NormalizeCode(bad); ok {
			t.Errorf("NormalizeCode(%q) accepted", bad)
		}
	}
}

// Errors are classified as everywhere in the code base: throttling, 5xx
// and network errors are transient, a missing table is not.
func TestErrorsClassified(t *testing.T) {
	srv := dynalitetest.Start(t) // no table in it
	noTable := &policystore.Store{DB: srv.Client(), Table: "missing"}
	_, err := noTable.GetApproval(context.Background(), "ABC234")
	if err == nil || taskerr.IsTransient(err) || errors.Is(err, policystore.ErrNotFound) {
		t.Errorf("missing table: %v, want a permanent error that is not ErrNotFound", err)
	}

	// DynamoDB's error bodies, served over HTTP to the real client.
	answer := func(status int, typ string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(status)
			w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#` + typ + `","message":"x"}`))
		}))
	}
	for _, c := range []struct {
		status    int
		typ       string
		transient bool
	}{
		{400, "ThrottlingException", true},
		{400, "ProvisionedThroughputExceededException", true},
		{400, "RequestLimitExceeded", true},
		{500, "InternalServerError", true},
		{400, "ValidationException", false},
		{400, "AccessDeniedException", false},
	} {
		hs := answer(c.status, c.typ)
		db := dynamodb.New(dynamodb.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(hs.URL), Retryer: aws.NopRetryer{},
			Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
		})
		s := &policystore.Store{DB: db, Table: "policy"}
		_, _, err := s.Take(context.Background(), "a", 1, 5, time.Hour)
		if err == nil || taskerr.IsTransient(err) != c.transient {
			t.Errorf("%d %s: %v, transient=%v, want %v", c.status, c.typ, err, taskerr.IsTransient(err), c.transient)
		}
		hs.Close()
	}
	// A dead endpoint.
	srv.Close()
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint()), Retryer: aws.NopRetryer{},
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	_, _, _, err = (&policystore.Store{DB: db, Table: "policy"}).GetMembers(context.Background(), "1")
	if !taskerr.IsTransient(err) {
		t.Errorf("connection refused: %v, want transient", err)
	}
}
