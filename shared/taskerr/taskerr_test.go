package taskerr

import (
	"errors"
	"fmt"
	"testing"
)

// The names are what the ASL's ErrorEquals match: a rename here breaks
// Retry and Catch, so the test pins them.
func TestNames(t *testing.T) {
	tests := []struct {
		err  error
		name string
		tr   bool
	}{
		{Transient(errors.New("throttled")), "TransientError", true},
		{&InvalidInputError{Reason: "x"}, "InvalidInputError", false},
		// Wrapping hides the type from the Lambda runtime (it reports the
		// outer type), though errors.As still sees it.
		{fmt.Errorf("ctx: %w", Transient(errors.New("x"))), "wrapError", true},
	}
	for _, tt := range tests {
		if got := Name(tt.err); got != tt.name {
			t.Errorf("Name(%v) = %q, want %q", tt.err, got, tt.name)
		}
		if got := IsTransient(tt.err); got != tt.tr {
			t.Errorf("IsTransient(%v) = %v", tt.err, got)
		}
	}
	if Transient(nil) != nil {
		t.Error("Transient(nil) is not nil")
	}
}
