package chatwork_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/taskerr"
)

const token = "test-api-token"

func newClient(t *testing.T, fake *chatworkfake.Server) (*chatwork.Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	var slept []time.Duration
	c := &chatwork.Client{
		BaseURL: srv.URL + chatworkfake.BasePath,
		Token:   func(context.Context) (string, error) { return token, nil },
		Sleep: func(_ context.Context, d time.Duration) error {
			slept = append(slept, d)
			return nil
		},
	}
	return c, &slept
}

func TestPostMessage(t *testing.T) {
	fake := chatworkfake.New(token)
	c, _ := newClient(t, fake)
	body := "[rp aid=1 to=2-3]こんにちは & 203.0.113.5\n2 行目 +%="
	id, err := c.PostMessage(context.Background(), "567890123", body)
	if err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) != 1 || msgs[0].RoomID != "567890123" || msgs[0].Body != body || msgs[0].MessageID != id {
		t.Fatalf("recorded %+v, id %q", msgs, id)
	}
	if err := c.UpdateMessage(context.Background(), "567890123", id, "edited"); err != nil {
		t.Fatal(err)
	}
	if got := fake.Messages()[0].Body; got != "edited" {
		t.Fatalf("after update body = %q", got)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		inject    []int // statuses for the next requests
		wantErr   bool
		transient bool
		wantPosts int
		minSleeps int
	}{
		{name: "429 then ok", inject: []int{429}, wantPosts: 1, minSleeps: 1},
		{name: "503 twice then ok", inject: []int{503, 502}, wantPosts: 1, minSleeps: 2},
		{name: "500 forever gives a transient error", inject: []int{500, 500, 500, 500}, wantErr: true, transient: true},
		{name: "429 forever gives a transient error", inject: []int{429, 429, 429, 429}, wantErr: true, transient: true},
		{name: "403 is permanent, no retry", inject: []int{403}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := chatworkfake.New(token)
			for _, s := range tt.inject {
				fake.FailNext(s, 1)
			}
			c, slept := newClient(t, fake)
			_, err := c.PostMessage(context.Background(), "1", "hello")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if taskerr.IsTransient(err) != tt.transient {
					t.Fatalf("transient = %v, want %v (%v)", taskerr.IsTransient(err), tt.transient, err)
				}
				if taskerr.Name(err) != map[bool]string{true: "TransientError", false: "APIError"}[tt.transient] {
					t.Fatalf("error type %q", taskerr.Name(err))
				}
			}
			if got := len(fake.Messages()); got != tt.wantPosts {
				t.Fatalf("posted %d, want %d", got, tt.wantPosts)
			}
			if len(*slept) < tt.minSleeps {
				t.Fatalf("slept %v, want at least %d waits", *slept, tt.minSleeps)
			}
			if tt.name == "403 is permanent, no retry" && fake.Requests() != 1 {
				t.Fatalf("%d requests for a permanent error", fake.Requests())
			}
		})
	}
}

// A 429 waits until x-ratelimit-reset, not a guess.
func TestRateLimitWaitsForReset(t *testing.T) {
	fake := chatworkfake.New(token)
	now := time.Unix(1_800_000_000, 0)
	fake.Now = func() time.Time { return now }
	fake.TokenLimit = 1 // the second request in the window is refused
	c, slept := newClient(t, fake)
	c.Now = func() time.Time { return now }
	c.MaxWait = 10 * time.Minute
	c.Sleep = func(_ context.Context, d time.Duration) error {
		*slept = append(*slept, d)
		now = now.Add(d) // time passes for the fake too
		return nil
	}
	if _, err := c.PostMessage(context.Background(), "1", "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PostMessage(context.Background(), "1", "second"); err != nil {
		t.Fatal(err)
	}
	if len(fake.Messages()) != 2 {
		t.Fatalf("messages: %d", len(fake.Messages()))
	}
	if fake.Refused() != 0 {
		t.Fatalf("client ran into %d 429s; it should wait for the reset announced by x-ratelimit-remaining: 0", fake.Refused())
	}
	if len(*slept) == 0 || (*slept)[0] < 4*time.Minute {
		t.Fatalf("slept %v, want a wait until the window reset before the second post", *slept)
	}
}

func TestWrongTokenIsPermanent(t *testing.T) {
	fake := chatworkfake.New("other")
	c, _ := newClient(t, fake)
	_, err := c.PostMessage(context.Background(), "1", "x")
	var apiErr *chatwork.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || taskerr.IsTransient(err) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("token in error text")
	}
}

func TestEscape(t *testing.T) {
	if got := chatwork.Escape("web[1] [To:1]"); got != "web［1］ ［To:1］" {
		t.Fatalf("Escape = %q", got)
	}
	if got := chatwork.Info("T[", "a\n"); got != "[info][title]T［[/title]a[/info]" {
		t.Fatalf("Info = %q", got)
	}
}

// An office asks at once: the 11th post within 10 seconds in one room is
// refused by Chatwork's per-room limit (which the x-ratelimit-* headers do
// not describe). The client waits the room's window out and posts it.
func TestRoomPostingLimit(t *testing.T) {
	fake := chatworkfake.New(token)
	now := time.Unix(1_800_000_000, 0)
	fake.Now = func() time.Time { return now }
	c, slept := newClient(t, fake)
	c.Sleep = func(_ context.Context, d time.Duration) error {
		*slept = append(*slept, d)
		now = now.Add(d)
		return nil
	}
	for i := range 11 {
		if _, err := c.PostMessage(context.Background(), "567890123", fmt.Sprintf("reply %d", i)); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		now = now.Add(100 * time.Millisecond)
	}
	if n := len(fake.RoomMessages("567890123")); n != 11 {
		t.Fatalf("%d messages posted, want 11", n)
	}
	if fake.Refused() != 1 {
		t.Errorf("%d refusals, want exactly the 11th post's first try", fake.Refused())
	}
	if len(*slept) != 1 || (*slept)[0] < chatwork.RoomWindow || (*slept)[0] > chatwork.RoomWindow+time.Second {
		t.Errorf("waits %v, want one of the room window (10 s) plus jitter", *slept)
	}
	// Another room is not held back by this one.
	if _, err := c.PostMessage(context.Background(), "567890124", "elsewhere"); err != nil {
		t.Fatal(err)
	}
}
