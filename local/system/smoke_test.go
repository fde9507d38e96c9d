package system

import (
	"context"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("simulated=%v (%s)", s.Simulated, s.SimulateWhy)
	if err := s.Hosts[0].Attack(ctx, "203.0.113.5"); err != nil {
		t.Fatal(err)
	}
	if err := s.Hosts[1].Attack(ctx, "203.0.113.5"); err != nil {
		t.Fatal(err)
	}
	ex, err := s.Refresh(ctx)
	t.Logf("refresh: %s %s %s %v", ex.Status, ex.Error, ex.Cause, err)
	status, id, err := s.Say(ctx, "3000001", "203.0.113.5 です")
	if err != nil || status != 200 {
		t.Fatal(status, err)
	}
	e, err := s.WaitExecution(ctx, ExecutionName(id))
	t.Logf("unban: %s %s %s states=%v\n%s", e.Status, e.Error, e.Cause, e.Run.States, e.Output)
	m, err := s.ReplyTo(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(m.Body)
	for _, h := range s.Hosts {
		b, _ := h.Blocked(ctx)
		t.Log(h.Label(), b)
	}
}
