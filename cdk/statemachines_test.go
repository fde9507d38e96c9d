package main

import (
	"encoding/json"
	"strings"
	"testing"

	"sshguard-unban/shared/functions"
)

// Express runs at most five minutes and has no .sync or .waitForTaskToken
// service integrations and no activities: the refresh definition uses none
// of them and ends (TimeoutSeconds) within the five minutes, so it fails as
// a timed-out execution the alarm sees rather than being cut off.
func TestRefreshFitsExpress(t *testing.T) {
	_, src := testSources(t)
	var def struct {
		TimeoutSeconds float64
		States         map[string]struct {
			Type     string
			Resource string
		}
	}
	if err := json.Unmarshal([]byte(src.RefreshASL), &def); err != nil {
		t.Fatal(err)
	}
	if def.TimeoutSeconds <= 0 || def.TimeoutSeconds > expressMaxSeconds {
		t.Errorf("refresh TimeoutSeconds %v, want 1..%d", def.TimeoutSeconds, expressMaxSeconds)
	}
	for name, st := range def.States {
		r := st.Resource
		if strings.HasSuffix(r, ".sync") || strings.Contains(r, ".sync:") || strings.HasSuffix(r, ".waitForTaskToken") || strings.Contains(r, ":activity:") {
			t.Errorf("%s: %s is not supported by Express workflows", name, r)
		}
	}
}

// The refresh waits for the report command until its timeout, then stores
// and announces: a timeout above maxCommandTimeoutSeconds would not fit in
// Express's five minutes.
func TestCommandTimeoutFitsTheRefresh(t *testing.T) {
	c := Defaults
	c.CommandTimeoutSeconds = maxCommandTimeoutSeconds + 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "commandTimeoutSeconds") {
		t.Errorf("commandTimeoutSeconds %d accepted: %v", c.CommandTimeoutSeconds, err)
	}
	c.CommandTimeoutSeconds = maxCommandTimeoutSeconds
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "commandTimeoutSeconds") {
		t.Errorf("commandTimeoutSeconds %d refused: %v", c.CommandTimeoutSeconds, err)
	}
	// The refresh's longest normal run: the command's timeout, one more
	// check, StoreBanLists and AnnounceNewBans at their functions' timeouts.
	worst := float64(maxCommandTimeoutSeconds) + 5 + specOf(t, functions.RefreshList).timeout + specOf(t, functions.Notify).timeout
	if worst > expressMaxSeconds {
		t.Errorf("a refresh can run %v s, over Express's %d", worst, expressMaxSeconds)
	}
}

func specOf(t *testing.T, handler string) fnSpec {
	t.Helper()
	for _, s := range fnSpecs {
		if s.handler == handler {
			return s
		}
	}
	t.Fatalf("no function %s", handler)
	return fnSpec{}
}
