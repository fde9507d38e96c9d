package hostreport_test

import (
	"testing"
	"time"

	"sshguard-unban/shared/hostreport"
)

// The block arithmetic measured on sshguard 2.4.2 (host/behaviour_test.go
// checks it against a real sshguard), for Debian's BLOCK_TIME=120.
func TestBlockArithmetic(t *testing.T) {
	s := hostreport.Settings{BlockTime: 120, Threshold: 30}
	for _, c := range []struct {
		n                     int
		pardon, first, latest time.Duration
	}{
		{0, 120 * time.Second, 120 * time.Second, 182 * time.Second},
		{1, 120 * time.Second, 120 * time.Second, 182 * time.Second},
		{2, 240 * time.Second, 240 * time.Second, 302 * time.Second},
		{5, 1920 * time.Second, 1920 * time.Second, 1982 * time.Second},
	} {
		if got := s.BlockPardon(c.n); got != c.pardon {
			t.Errorf("BlockPardon(%d) = %v, want %v", c.n, got, c.pardon)
		}
		if e, l := s.BlockEnds(c.n); e != c.first || l != c.latest {
			t.Errorf("BlockEnds(%d) = %v, %v, want %v, %v", c.n, e, l, c.first, c.latest)
		}
	}
	for th, want := range map[int]int{30: 3, 10: 1, 25: 3, 0: 0} {
		if got := (hostreport.Settings{Threshold: th}).FailedLoginsToBlock(); got != want {
			t.Errorf("THRESHOLD=%d: %d failed logins, want %d", th, got, want)
		}
	}
	// The default lifetime outlasts the rest of a fifth block in a row.
	_, fifth := s.BlockEnds(5)
	if d := time.Duration(hostreport.DefaultExceptionFactor*s.BlockTime) * time.Second; d < fifth {
		t.Errorf("default exception %v ends before a fifth block (%v)", d, fifth)
	}
}
