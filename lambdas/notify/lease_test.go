package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/s3local"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/s3obj"
)

// A burst on a loaded machine: the invocation holding the room's lease
// waits for the room window and works slowly, its lease runs out, and a
// newer invocation takes the room over and posts the waiting replies. The
// old holder must then post nothing (each asker gets one answer), and its
// release must not free the new holder's lease. Seen in CI as a merged
// answer posted twice.
func TestLostLeasePostsNothing(t *testing.T) {
	ctx := context.Background()
	s3srv := httptest.NewServer(s3local.New("bucket"))
	t.Cleanup(s3srv.Close)
	chat := chatworkfake.New("token")
	chatSrv := httptest.NewServer(chat)
	t.Cleanup(chatSrv.Close)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	newHandler := func() *Handler {
		client := &chatwork.Client{BaseURL: chatSrv.URL + chatworkfake.BasePath, Token: func(context.Context) (string, error) { return "token", nil }}
		return New(client, s3local.NewClient(s3srv.URL), Config{Bucket: "bucket", MarkPrefix: "replies/", Now: clock},
			slog.New(slog.NewJSONHandler(io.Discard, nil)))
	}
	a, b := newHandler(), newHandler()
	const roomID = "567890123"
	it := item{Execution: "chatwork-567890123-1", RoomID: roomID, AccountID: "3000001", MessageID: "1", Text: "解除しました", Created: clock()}
	body, _ := json.Marshal(it)
	if err := s3obj.Put(ctx, a.Store, "bucket", a.itemKey(it), body, ""); err != nil {
		t.Fatal(err)
	}

	old, err := a.takeRoom(ctx, roomID, "holder-a")
	if err != nil || old == nil {
		t.Fatalf("a takes the room: %v %v", old, err)
	}
	advance(leaseTTL + time.Second) // a was slow: its lease ran out
	taken, err := b.takeRoom(ctx, roomID, "holder-b")
	if err != nil || taken == nil {
		t.Fatalf("b takes the expired lease: %v %v", taken, err)
	}
	if err := a.flush(ctx, old, it); err != errLostLease {
		t.Fatalf("the old holder's flush: %v, want errLostLease", err)
	}
	if n := len(chat.RoomMessages(roomID)); n != 0 {
		t.Fatalf("the old holder posted %d messages", n)
	}
	a.releaseRoom(ctx, old)
	if err := b.hold(ctx, taken); err != nil {
		t.Fatalf("the old holder's release freed the new holder's lease: %v", err)
	}
	if err := b.flush(ctx, taken, it); err != nil {
		t.Fatal(err)
	}
	if n := len(chat.RoomMessages(roomID)); n != 1 {
		t.Fatalf("%d messages, want the one answer", n)
	}
}
