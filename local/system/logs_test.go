package system

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLogsCarryNoSecrets runs requests through every component with their
// JSON logs captured: the logs say what happened, and never carry the
// Chatwork tokens or a webhook signature.
func TestLogsCarryNoSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs syncBuffer
	s, err := Start(ctx, Options{Simulate: true, Log: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Hosts[0].Attack(ctx, "203.0.113.5"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, id, err := s.Say(ctx, "3000001", "203.0.113.5")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplyTo(ctx, id); err != nil {
		t.Fatal(err)
	}
	body := MentionBody("3000001", AskRoomID, "1", "203.0.113.6")
	sig := s.Sign(body)
	if status, err := s.Post(ctx, append(body, ' '), sig); err != nil || status != 401 {
		t.Fatalf("forged: %d %v", status, err)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"started execution"`, `"msg":"posted"`, `"msg":"rejected webhook: bad or missing signature"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for name, secret := range map[string]string{"API token": s.apiToken, "webhook token": s.webhookToken, "signature": sig, "page key": string(s.pageKey)} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs contain the %s", name)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
