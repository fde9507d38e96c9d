package main

import (
	"strings"
	"testing"

	"sshguard-unban/local/chatworkfake"
)

// The README's local command, end to end through the CLI (simulated hosts:
// the real ones are covered by local/system's tests).
func TestLocalOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local system")
	}
	out, errOut, code := runCLI(t, "", "local", "--simulate", "--locale", "en", "--once", "203.0.113.5 please")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"SIMULATED",
		"you (account 3000001)",
		"[unban-requests] bot:",
		"203.0.113.5: unblocked on git-1 and web-1.",
		"blocks: (nothing)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderMessage(t *testing.T) {
	got := renderMessage(chatworkfake.Message{RoomID: "2000001", Body: "[rp aid=1 to=2-3][info][title]T[/title]line 1\nline 2[/info]"})
	want := "[unban-requests] bot:\n  ┌─ T\n  │ line 1\n  │ line 2\n  └─\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

// /page prints a link to the ban-list page for the local SRE.
func TestLocalPageCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local system")
	}
	out, errOut, code := runCLI(t, "/page\n/quit\n", "local", "--simulate", "--seed=false")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"/page (a link to the ban-list page", "ban-list page for the SRE (account 9000001), valid 15m0s:", "/bans?a=9000001&e=", "&s=", "ip\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
