package system

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2EFloodDoesNotStarveChatwork is #12's "genuine deliveries survive a
// flood": while someone on the internet floods the API with unsigned
// requests, as fast as this machine sends them, at every path they can
// guess, Chatwork delivers a stream of real mentions. Chatwork never
// resends, so every one of them must get its 200 and its answer. Then the
// control: the same flood aimed at the webhook's own path (a leaked URL)
// does throttle Chatwork — the throttle is real, and the path key is what
// keeps a flood off it (README, "Flood protection").
func TestE2EFloodDoesNotStarveChatwork(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of requests: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := start(t, ctx, Options{Simulate: true})
	refresh(t, ctx, s)

	guessed := []struct{ method, url string }{
		{http.MethodPost, s.APIURL + "/chatwork"},
		{http.MethodPost, s.APIURL + "/chatwork/"},
		{http.MethodPost, s.APIURL + "/chatwork/" + randomToken()},
		{http.MethodPost, s.APIURL + "/"},
		{http.MethodGet, s.WebhookURL},
	}
	deliver := func(t *testing.T, n int, flood func(i int) (string, string)) (statuses []int, ids []string, floodSent int64, floodStatus map[int]int64) {
		t.Helper()
		var sent atomic.Int64
		var mu sync.Mutex
		floodStatus = map[int]int64{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		junk := strings.Repeat(`{"webhook_event_type":"mention_to_me"}`, 30)
		for w := range 8 {
			wg.Go(func() {
				for i := w; ; i += 8 {
					select {
					case <-stop:
						return
					default:
					}
					method, url := flood(i)
					req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(junk))
					resp, err := localClient.Do(req)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					sent.Add(1)
					mu.Lock()
					floodStatus[resp.StatusCode]++
					mu.Unlock()
				}
			})
		}
		time.Sleep(300 * time.Millisecond) // the flood is on before Chatwork's first delivery
		statuses, ids = make([]int, n), make([]string, n)
		for i := range n {
			account := strconv.Itoa(3200000 + i)
			ids[i] = newMessageID()
			body := MentionBody(account, AskRoomID, ids[i], mention(fmt.Sprintf("192.0.2.%d を解除してください", 10+i)))
			status, err := s.Post(ctx, body, s.Sign(body))
			if err != nil {
				t.Fatalf("delivery %d: %v", i, err)
			}
			statuses[i] = status
			time.Sleep(200 * time.Millisecond) // a busy afternoon: 5 mentions a second
		}
		close(stop)
		wg.Wait()
		return statuses, ids, sent.Load(), floodStatus
	}

	t.Run("flood on guessed paths", func(t *testing.T) {
		const n = 20
		before := len(s.SFN.Executions())
		statuses, ids, flood, codes := deliver(t, n, func(i int) (string, string) {
			g := guessed[i%len(guessed)]
			return g.method, g.url
		})
		t.Logf("flood: %d requests during %d deliveries, answered %v", flood, n, codes)
		if flood < 10*n {
			t.Fatalf("only %d flood requests: not a flood", flood)
		}
		if codes[http.StatusNotFound] != flood {
			t.Errorf("flood answers %v: every guessed path must get API Gateway's 404", codes)
		}
		for i, st := range statuses {
			if st != http.StatusOK {
				t.Errorf("Chatwork's delivery %d got %d during the flood: it is never resent", i, st)
			}
		}
		// Every asker is answered: the deliveries started their executions.
		deadline := time.Now().Add(time.Minute)
		for len(s.SFN.Executions())-before < n && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if got := len(s.SFN.Executions()) - before; got != n {
			t.Fatalf("%d executions started, want %d", got, n)
		}
		for i := range n {
			account := strconv.Itoa(3200000 + i)
			for time.Now().Before(deadline) && len(answersTo(s, account, ids[i])) == 0 {
				time.Sleep(100 * time.Millisecond)
			}
			if rs := answersTo(s, account, ids[i]); len(rs) != 1 {
				t.Errorf("asker %s: %d answers, want 1: %v", account, len(rs), bodies(rs))
			}
		}
	})

	t.Run("control: the flood found the path", func(t *testing.T) {
		statuses, _, flood, codes := deliver(t, 10, func(int) (string, string) { return http.MethodPost, s.WebhookURL })
		throttled := 0
		for _, st := range statuses {
			if st == http.StatusTooManyRequests {
				throttled++
			}
		}
		t.Logf("flood: %d requests at the webhook's path, answered %v; %d of %d deliveries throttled", flood, codes, throttled, len(statuses))
		if codes[http.StatusUnauthorized] == 0 || codes[http.StatusTooManyRequests] == 0 {
			t.Errorf("flood answers %v: want 401 (unsigned) and 429 (throttled)", codes)
		}
		if throttled < len(statuses)/2 {
			t.Errorf("only %d of %d deliveries throttled: the route's throttle is not what protects it", throttled, len(statuses))
		}
	})
}
