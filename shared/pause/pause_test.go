package pause_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sshguard-unban/shared/pause"
)

func TestFor(t *testing.T) {
	if err := pause.For(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a short pause: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pause.For(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled pause: %v, want context.Canceled", err)
	}
}
