// Package pause waits for a while unless the context ends first: the one
// sleep every retry, poll and pacing loop of the handlers uses, so that a
// Lambda's deadline or a cancelled test stops them at once.
package pause

import (
	"context"
	"time"
)

// For waits d, or returns ctx's error as soon as ctx is done.
func For(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
