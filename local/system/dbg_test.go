package system

import (
	"context"
	"os"
	"testing"
	"time"

	"sshguard-unban/local/latency"
)

func TestDbgLatency(t *testing.T) {
	if os.Getenv("DBG") == "" {
		t.Skip()
	}
	ctx := context.Background()
	f, _ := os.Create("/tmp/dbg.log")
	defer f.Close()
	s := start(t, ctx, Options{Latency: &latency.AWS, Log: f})
	refresh(t, ctx, s)
	for i := range 3 {
		addr := []string{"198.51.100.5", "198.51.100.6", "198.51.100.7"}[i]
		s.Hosts[0].Attack(ctx, addr)
		f.WriteString(`{"msg":"ASK","t":"` + time.Now().Format(time.RFC3339Nano) + `"}` + "\n")
		sent := time.Now()
		_, id, _ := s.Say(ctx, "3000009", addr+" please")
		r, _ := s.ReplyTo(ctx, id)
		t.Logf("reply after %v", r.Time.Sub(sent))
		time.Sleep(2 * time.Second)
	}
}
