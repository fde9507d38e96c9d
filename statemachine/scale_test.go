package statemachine_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/ssmfake"
)

// Step Functions fails an execution whose state exceeds 256 KiB, and
// States.DataLimitExceeded cannot be caught: per-host detail must stay in S3.
const maxPayload = 256 << 10

// TestScale runs both machines over a fleet of 1,000 and of 5,000 tagged
// (simulated) hosts, each already blocking 20 attackers. The scheduled
// refresh stores every list; a wave of new attacks reaches every host and is
// announced; then an employee blocked on three hosts asks while 2% of the
// fleet is disconnected (a rolling restart).
func TestScale(t *testing.T) {
	for _, n := range []int{1000, 5000} {
		t.Run(strconv.Itoa(n)+"_hosts", func(t *testing.T) {
			if n > 1000 && testing.Short() {
				t.Skip("5,000 hosts: skipped with -short")
			}
			t.Parallel()
			const asked = "192.0.2.77"
			hosts := make([]hostSpec, n)
			for i := range hosts {
				hosts[i] = hostSpec{id: fmt.Sprintf("i-%017x", i+1), name: fmt.Sprintf("app-%04d", i+1)}
				for j := range 20 {
					hosts[i].blocks = append(hosts[i].blocks, fmt.Sprintf("2001:db8:%x::%x", i, j+1))
				}
			}
			blocking := []int{0, n / 2, n - 1}
			for _, i := range blocking {
				hosts[i].blocks = append(hosts[i].blocks, asked)
			}
			e := newEnv(t, hosts)
			payload := func(name string, x sfnrunner.Execution) {
				t.Helper()
				t.Logf("SCALE hosts=%d %s transitions=%d max_state_bytes=%d", n, name, x.Transitions, x.MaxStateBytes)
				if x.MaxStateBytes >= maxPayload/4 {
					t.Errorf("%s: largest state %d bytes; Step Functions' limit is %d", name, x.MaxStateBytes, maxPayload)
				}
			}

			first := e.refresh("scale-refresh-1")
			payload("refresh", first)
			if st := finalState(t, first); st.Refresh.StoredCount != n || st.Refresh.FailedCount != 0 {
				t.Fatalf("first refresh stored %d, failed %d of %d", st.Refresh.StoredCount, st.Refresh.FailedCount, n)
			}

			for i, h := range hosts {
				if err := e.hosts[h.id].Block(fmt.Sprintf("2001:db8:%x::ffff", i)); err != nil {
					t.Fatal(err)
				}
			}
			wave := e.refresh("scale-refresh-2")
			payload("refresh with a new ban on every host", wave)
			if wave.Entered("AnnounceNewBans") != 1 {
				t.Fatalf("states %v", wave.States)
			}
			notices := bodies(e.notices())
			if !strings.Contains(notices, "2001:db8::ffff") || !strings.Contains(notices, "app-0001") {
				t.Errorf("the notice lacks the first new ban:\n%.600s", notices)
			}
			if len(notices) > 40000 {
				t.Errorf("the notice is %d bytes long", len(notices))
			}

			// 2% of the fleet restarts; they come back after the reply.
			var down []string
			for i := 5; i < n; i += 50 {
				down = append(down, hosts[i].id)
				e.ssm.SetFault(hosts[i].id, ssmfake.Fault{Disconnected: true})
			}
			go func() {
				for len(e.replies()) == 0 {
					time.Sleep(10 * time.Millisecond)
				}
				for _, id := range down {
					e.ssm.SetFault(id, ssmfake.Fault{})
				}
			}()
			before := len(e.sent(unbanDoc))
			x := e.unban("scale-unban", "unban "+asked)
			payload("unban", x)
			if x.Status != sfnrunner.StatusSucceeded {
				t.Fatalf("unban: %s %s %s\nstates: %v", x.Status, x.Error, x.Cause, x.States)
			}
			cmds := e.sent(unbanDoc)[before:]
			if len(cmds) != 1 || len(cmds[0].Targets["tag:"+tagKey]) != 1 || len(cmds[0].Resolved) != n {
				t.Fatalf("unban commands %d; want one to the tag reaching all %d hosts", len(cmds), n)
			}
			for _, h := range e.hosts {
				if h.Blocks(asked) {
					t.Errorf("%s still blocks %s", h.Name, asked)
				}
			}
			reply := bodies(e.replies())
			for _, i := range blocking {
				if !strings.Contains(reply, hosts[i].name) {
					t.Errorf("the reply does not name %s:\n%s", hosts[i].name, reply)
				}
			}
			if want := fmt.Sprintf("and %d more did not answer", len(down)-5); !strings.Contains(reply, want) {
				t.Errorf("the reply does not count the %d silent hosts (%q):\n%s", len(down), want, reply)
			}
			// One SRE alert names the silent hosts, not one per host.
			if a := e.alerts(); len(a) != 1 || !strings.Contains(a[0].Body, strconv.Itoa(len(down))+" hosts in all") && len(down) > 50 {
				t.Errorf("%d alerts for %d silent hosts:\n%.2000s", len(a), len(down), bodies(a))
			}
			t.Logf("SCALE hosts=%d reply: %q", n, reply)
		})
	}
}
