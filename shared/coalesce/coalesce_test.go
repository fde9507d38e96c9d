package coalesce_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sshguard-unban/local/s3local"
	"sshguard-unban/shared/coalesce"
)

func newStore(t *testing.T) *coalesce.Store {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	srv := httptest.NewServer(s3local.New("data"))
	t.Cleanup(srv.Close)
	return &coalesce.Store{S3: s3local.NewClient(srv.URL), Bucket: "data", Prefix: "commands/coalesce/", Poll: 5 * time.Millisecond}
}

// A whole office behind one address asks within a second or two: the
// executions start one after another while commands are with the hosts.
// Every execution gets a command sent after it started (never an older
// answer), at most one command is with the hosts at a time, and far fewer
// commands are sent than there are askers.
func TestOfficeBurstSharesFewCommands(t *testing.T) {
	s := newStore(t)
	addrs := []string{"203.0.113.5"}
	var sent, inflight, maxInflight atomic.Int32
	var mu sync.Mutex
	var hosts sync.WaitGroup // the "hosts" answering
	sentAt := map[string]time.Time{}
	send := func(ctx context.Context) (string, time.Time, error) {
		n := sent.Add(1)
		if c := inflight.Add(1); c > maxInflight.Load() {
			maxInflight.Store(c)
		}
		id := fmt.Sprintf("cmd-%d", n)
		mu.Lock()
		sentAt[id] = time.Now()
		mu.Unlock()
		// The hosts answer 60 ms later; the wait-for-command that sees it
		// marks the command done.
		hosts.Go(func() {
			time.Sleep(60 * time.Millisecond)
			inflight.Add(-1)
			if err := s.Done(context.Background(), s.Key(addrs), id); err != nil {
				t.Error(err)
			}
		})
		return id, time.Now().Add(time.Minute), nil
	}
	const askers = 60
	var wg sync.WaitGroup
	for i := range askers {
		started := time.Now()
		wg.Go(func() {
			rec, _, err := s.Obtain(context.Background(), addrs, started, fmt.Sprintf("exec-%d", i), send)
			if err != nil {
				t.Error(err)
				return
			}
			if rec.SentAt.Before(started) {
				t.Errorf("exec-%d started %v but got command %s sent %v: an answer older than the request", i, started, rec.CommandID, rec.SentAt)
			}
		})
		time.Sleep(10 * time.Millisecond) // one asker every 10 ms: 0.6 s in all
	}
	wg.Wait()
	hosts.Wait()
	if maxInflight.Load() > 1 {
		t.Errorf("%d commands with the hosts at once, want at most 1", maxInflight.Load())
	}
	// About one command per round trip (60 ms) over 0.6 s, plus the last.
	if n := sent.Load(); n < 2 || n > 20 {
		t.Errorf("%d commands for %d askers", n, askers)
	}
	t.Logf("%d askers, %d commands", askers, sent.Load())
}

// A retried task of the same execution gets the command it already sent;
// a failed send leaves no claim behind for the next request to wait out.
func TestRetryAndFailedSend(t *testing.T) {
	s := newStore(t)
	addrs := []string{"192.0.2.7", "2001:db8::7"}
	started := time.Now()
	calls := 0
	send := func(context.Context) (string, time.Time, error) {
		calls++
		if calls == 1 {
			return "", time.Time{}, fmt.Errorf("ssm down")
		}
		return fmt.Sprintf("cmd-%d", calls), time.Now().Add(time.Minute), nil
	}
	if _, _, err := s.Obtain(context.Background(), addrs, started, "exec-a", send); err == nil {
		t.Fatal("failed send not reported")
	}
	begin := time.Now()
	first, shared, err := s.Obtain(context.Background(), addrs, started, "exec-a", send)
	if err != nil || shared || first.CommandID != "cmd-2" {
		t.Fatalf("retry after a failed send: %+v shared=%v %v", first, shared, err)
	}
	if time.Since(begin) > time.Second {
		t.Errorf("the retry waited %v for its own released claim", time.Since(begin))
	}
	again, shared, err := s.Obtain(context.Background(), []string{"2001:db8::7", "192.0.2.7"}, started, "exec-a", send)
	if err != nil || shared || again.CommandID != first.CommandID || calls != 2 {
		t.Fatalf("retried task: %+v shared=%v calls=%d %v", again, shared, calls, err)
	}
	// A colleague who started before the command was sent shares it.
	colleague, shared, err := s.Obtain(context.Background(), addrs, started, "exec-b", send)
	if err != nil || !shared || colleague.CommandID != first.CommandID {
		t.Fatalf("colleague: %+v shared=%v %v", colleague, shared, err)
	}
}

// Nobody marks the command done (every waiter crashed): a later request
// still gets its own command once the in-flight bound has passed.
func TestAbandonedCommandExpires(t *testing.T) {
	s := newStore(t)
	s.InflightTTL = 100 * time.Millisecond
	addrs := []string{"198.51.100.9"}
	n := 0
	send := func(context.Context) (string, time.Time, error) {
		n++
		return fmt.Sprintf("cmd-%d", n), time.Now(), nil
	}
	if _, _, err := s.Obtain(context.Background(), addrs, time.Now(), "exec-1", send); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Millisecond)
	time.Sleep(2 * time.Millisecond)
	begin := time.Now()
	rec, _, err := s.Obtain(context.Background(), addrs, later, "exec-2", send)
	if err != nil || rec.CommandID != "cmd-2" {
		t.Fatalf("%+v %v", rec, err)
	}
	if w := time.Since(begin); w < 80*time.Millisecond {
		t.Errorf("sent after %v: should have waited for the in-flight command first", w)
	}
}
