package statemachine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/statemachine"
)

// TestRedrive redrives an unban the way Step Functions does: the
// unsuccessful state runs again with the input it had, the states before it
// are not run again, $$.Execution.StartTime stays the original. The worst
// case for a redrive is a state whose work was done but whose result was
// lost (the Lambda timed out after posting, the execution was stopped in
// the console): so each Task of the path is redriven after a run in which
// it had completed. Whatever state it restarts at, the asker has one reply
// and one follow-up, the SREs one alert for the silent host, and the hosts
// one unban command.
func TestRedrive(t *testing.T) {
	t.Parallel()
	tasks := taskStates(t, statemachine.Unban)
	web1, db1 := "i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa3"
	e := newEnv(t, threeHosts())
	freshLists(e)
	if err := e.hosts[web1].Block("198.51.100.99"); err != nil { // announced after the reply
		t.Fatal(err)
	}
	e.silentUntilReplied(db1, "192.0.2.12")
	const name = "chatwork-1001-1790000000000000042"
	first := e.unban(name, "please unban 192.0.2.12")
	if first.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("first run: %s %s %s\nstates %v", first.Status, first.Error, first.Cause, first.States)
	}
	counts := func() [4]int {
		return [4]int{len(e.replies()), len(e.alerts()), len(e.notices()), len(e.sent(unbanDoc))}
	}
	want := counts()
	if want != [4]int{2, 1, 1, 1} {
		t.Fatalf("first run: replies, alerts, notices, unban commands = %v; want the reply and the follow-up, the silent-host alert, the new ban, one command", want)
	}

	redriven := 0
	for _, st := range first.States {
		if !tasks[st] {
			continue
		}
		redriven++
		t.Run(st, func(t *testing.T) {
			in := first.Inputs[st]
			if len(in) == 0 {
				t.Fatalf("no input recorded for %s", st)
			}
			o := e.over
			o.Redrive = &sfnrunner.Redrive{StartAt: st, StartMillis: first.StartMillis}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			x, err := runner(t).RunWith(ctx, o, "unban", name, in)
			if err != nil {
				t.Fatal(err)
			}
			e.bridge.Idle()
			if x.Status != sfnrunner.StatusSucceeded {
				t.Fatalf("redrive from %s: %s %s %s", st, x.Status, x.Error, x.Cause)
			}
			if x.States[0] != st || x.States[len(x.States)-1] != "Done" {
				t.Errorf("the redrive ran %v; want %s to Done", x.States, st)
			}
			t.Logf("redrive from %s: %v", st, x.States)
			if got := counts(); got != want {
				t.Errorf("after the redrive from %s: replies, alerts, notices, unban commands = %v, want %v\n%s",
					st, got, want, bodies(append(e.replies(), e.alerts()...)))
			}
		})
	}
	if redriven < 6 {
		t.Errorf("only %d task states were on the path: %v", redriven, first.States)
	}
	for _, h := range e.hosts {
		if h.Blocks("192.0.2.12") {
			t.Errorf("%s blocks 192.0.2.12", h.Name)
		}
	}
	if r := bodies(e.replies()); !strings.Contains(r, "192.0.2.12: unblocked on web-1 and web-2.") {
		t.Errorf("replies:\n%s", r)
	}
}

// TestRedriveKeepsStartTime: a redriven RemoveBlockOnHosts gets the
// original $$.Execution.StartTime, so it shares the command its first
// attempt sent (sent after that start) instead of sending another.
func TestRedriveKeepsStartTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	freshLists(e)
	const name = "chatwork-1001-1790000000000000043"
	first := e.unban(name, "please unban 192.0.2.12")
	if first.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("first run: %s %s", first.Status, first.Error)
	}
	var in struct {
		Started string `json:"started"`
	}
	o := e.over
	o.Redrive = &sfnrunner.Redrive{StartAt: "RemoveBlockOnHosts", StartMillis: first.StartMillis}
	time.Sleep(20 * time.Millisecond)
	x, err := runner(t).RunWith(context.Background(), o, "unban", name, first.Inputs["RemoveBlockOnHosts"])
	if err != nil {
		t.Fatal(err)
	}
	e.bridge.Idle()
	calls := e.bridge.Calls("unban")
	if len(calls) != 2 {
		t.Fatalf("%d unban calls", len(calls))
	}
	if err := json.Unmarshal(calls[1].Input, &in); err != nil {
		t.Fatal(err)
	}
	if at, _ := time.Parse(time.RFC3339Nano, in.Started); at.UnixMilli() != first.StartMillis {
		t.Errorf("the redriven unban got started=%s, want the original start %s", in.Started, time.UnixMilli(first.StartMillis).UTC().Format(time.RFC3339Nano))
	}
	if x.Status != sfnrunner.StatusSucceeded || len(e.sent(unbanDoc)) != 1 || len(e.replies()) != 1 {
		t.Errorf("redrive: %s, %d unban commands, %d replies", x.Status, len(e.sent(unbanDoc)), len(e.replies()))
	}
}

// taskStates names the Task states of a definition.
func taskStates(t *testing.T, def string) map[string]bool {
	t.Helper()
	var d struct {
		States map[string]struct{ Type string }
	}
	if err := json.Unmarshal([]byte(def), &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for n, s := range d.States {
		if s.Type == "Task" {
			out[n] = true
		}
	}
	return out
}
