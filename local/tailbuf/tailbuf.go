// Package tailbuf keeps the last few KiB written to it: the stderr of a
// child process (dynalite, the browser driver), quoted in error messages
// when the process fails, without holding everything it ever printed.
package tailbuf

import (
	"bytes"
	"sync"
)

// Size is how much a Buffer keeps.
const Size = 4 << 10

// Buffer is an io.Writer that keeps the last Size bytes; safe for
// concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > Size {
		t.buf = t.buf[len(t.buf)-Size:]
	}
	return len(p), nil
}

// String is what is kept, trimmed.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
