package tailbuf

import (
	"strings"
	"testing"
)

func TestKeepsTheTail(t *testing.T) {
	var b Buffer
	b.Write([]byte("  first line\n"))
	if got := b.String(); got != "first line" {
		t.Fatalf("%q", got)
	}
	b.Write([]byte(strings.Repeat("x", Size)))
	b.Write([]byte("last\n"))
	got := b.String()
	if len(got) != Size-1 || !strings.HasSuffix(got, "xlast") || strings.Contains(got, "first") {
		t.Fatalf("kept %d bytes ending %q", len(got), got[len(got)-10:])
	}
}
