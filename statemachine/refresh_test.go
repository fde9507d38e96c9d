package statemachine_test

import (
	"strings"
	"testing"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/local/taskbridge"
)

func TestRefreshStoresListsAndAnnouncesNewBans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	first := e.refresh("refresh-1")
	st := finalState(t, first)
	if st.Refresh == nil || len(st.Refresh.Stored) != 3 || len(st.Refresh.NewBans) != 0 {
		t.Fatalf("first refresh: %+v", st.Refresh)
	}
	// A host's first list announces nothing (a first deploy would post
	// every existing block).
	if n := len(e.notices()); n != 0 || first.Entered("AnnounceNewBans") != 0 {
		t.Errorf("first refresh announced %d bans", n)
	}

	if err := e.hosts["i-0aaaaaaaaaaaaaaa3"].Block("203.0.113.77"); err != nil {
		t.Fatal(err)
	}
	second := e.refresh("refresh-2")
	if second.Entered("AnnounceNewBans") != 1 {
		t.Fatalf("states %v", second.States)
	}
	notices := bodies(e.notices())
	if !strings.Contains(notices, "203.0.113.77") || !strings.Contains(notices, "db-1") || strings.Contains(notices, "192.0.2.12") {
		t.Errorf("notices:\n%s", notices)
	}
	if n := len(e.alerts()) + len(e.replies()); n != 0 {
		t.Errorf("%d messages outside the notice room", n)
	}
	t.Logf("refresh transitions: %d without new bans, %d with", first.Transitions, second.Transitions)
}

func TestRefreshHostOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	e.ssm.SetFault("i-0aaaaaaaaaaaaaaa2", ssmfake.Fault{Offline: true})
	x := e.refresh("refresh-1")
	st := finalState(t, x)
	if len(st.Refresh.Stored) != 2 || len(st.Refresh.Failed) != 1 {
		t.Errorf("refresh result %+v", st.Refresh)
	}
	// A host without a fresh list makes lookups take the all-hosts path;
	// that is the alarm, not a message per refresh.
	if n := len(e.alerts()); n != 0 {
		t.Errorf("%d alerts", n)
	}
}

func TestRefreshFaults(t *testing.T) {
	t.Parallel()
	refreshTargets := []target{
		{"RequestBanReports", "refresh-list", field("action", "request"), ""},
		{"CheckReportCommand", "wait-for-command", nil, ""},
		{"StoreBanLists", "refresh-list", field("action", "store"), ""},
		{"AnnounceNewBans", "notify", field("kind", "ban_notice"), ""},
	}
	for _, tg := range refreshTargets {
		for _, kind := range []string{taskbridge.Transient, taskbridge.Permanent} {
			t.Run(tg.state+"/"+kind, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, threeHosts())
				e.refresh("refresh-1")
				// A new ban, so that AnnounceNewBans runs.
				if err := e.hosts["i-0aaaaaaaaaaaaaaa3"].Block("203.0.113.77"); err != nil {
					t.Fatal(err)
				}
				f := taskbridge.Fault{Kind: kind, Match: tg.match}
				if kind == taskbridge.Transient {
					f.Times = 2
				}
				e.bridge.Inject(tg.function, f)
				x := e.run("refresh", "refresh-2", []byte(`{}`))
				if kind == taskbridge.Transient {
					if x.Status != sfnrunner.StatusSucceeded || x.Retries < 2 || len(e.notices()) != 1 || len(e.alerts()) != 0 {
						t.Fatalf("%s retries=%d notices=%d alerts=%d states=%v", x.Status, x.Retries, len(e.notices()), len(e.alerts()), x.States)
					}
					return
				}
				if x.Status != sfnrunner.StatusFailed || x.Error != "errorString" {
					t.Fatalf("%s %s %s", x.Status, x.Error, x.Cause)
				}
				if n := len(e.alerts()); n != 1 {
					t.Errorf("%d alerts, want 1:\n%s", n, bodies(e.alerts()))
				}
				if !strings.Contains(bodies(e.alerts()), "refresh-2") {
					t.Errorf("the alert does not name the execution:\n%s", bodies(e.alerts()))
				}
			})
		}
	}
}
