package statemachine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/local/s3local"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/local/taskbridge"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
)

// seedLists stores every host's current blocks as if a refresh had run age
// ago (a stale list when age exceeds lookup's freshness).
func (e *env) seedLists(age time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	then := time.Now().Add(-age).UTC()
	store := banlist.NewStore(s3local.NewClient(e.aws.URL), banlist.Location{Bucket: bucket, Prefix: prefix}, e.log)
	store.Now = func() time.Time { return then }
	var index []banlist.IndexHost
	for id, h := range e.hosts {
		rep := hostreport.Report{Host: h.Name, Time: then.Format(time.RFC3339), Backend: "simulated", Entries: []hostreport.Entry{}}
		for _, b := range h.Blocked() {
			fam := 4
			if strings.Contains(b, ":") {
				fam = 6
			}
			rep.Entries = append(rep.Entries, hostreport.Entry{Entry: b, Family: fam})
		}
		res, err := store.PutHost(ctx, banlist.HostList{InstanceID: id, Report: rep})
		if err != nil {
			e.t.Fatal(err)
		}
		index = append(index, banlist.NewIndexHost(res.Stored))
	}
	if err := store.UpdateIndex(ctx, index, time.Time{}); err != nil {
		e.t.Fatal(err)
	}
}

// putEmptyIndex stores an index that lists no host (a fleet whose hosts were
// all forgotten).
func (e *env) putEmptyIndex() {
	e.t.Helper()
	ix, _ := json.Marshal(banlist.Index{Version: banlist.IndexVersion, UpdatedAt: time.Now().UTC().Format(time.RFC3339), Hosts: []banlist.IndexHost{}})
	_, err := s3local.NewClient(e.aws.URL).PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(banlist.Location{Bucket: bucket, Prefix: prefix}.IndexKey()), Body: bytes.NewReader(ix),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

type scenario struct {
	name  string
	hosts []hostSpec // default threeHosts()
	setup func(e *env)
	body  string

	status     string   // default SUCCEEDED
	reply      []string // substrings of the reply (and any follow-up)
	notInReply []string
	replies    int // messages to the asker: default 1
	alerts     int
	toHosts    bool // the unban command went to every tagged host
	// unblocked: the host no longer drops the address; stillBlocked: it
	// does (the asked address's neighbours, or a host that never answered).
	unblocked    map[string][]string
	stillBlocked map[string][]string
	check        func(t *testing.T, e *env, x sfnrunner.Execution)
}

func freshLists(e *env) { e.refresh("initial-refresh") }

func TestUnbanScenarios(t *testing.T) {
	t.Parallel()
	web1, web2, db1 := "i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"
	scenarios := []scenario{
		{
			name:  "banned on 2 of 3 hosts, one of them through a /24",
			setup: freshLists,
			body:  "[To:1234]unban bot\nplease unban 192.0.2.12, thanks",
			reply: []string{"[title]Unblocked", "192.0.2.12: unblocked on web-1 and web-2.",
				"192.0.2.12 was inside the blocked range 192.0.2.0/24, so I exempted just this address", "Please try to connect now"},
			notInReply:   []string{"db-1", "SRE"},
			toHosts:      true,
			unblocked:    map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.12"}},
			stillBlocked: map[string][]string{web1: {"198.51.100.7"}, web2: {"192.0.2.13", "192.0.2.200"}, db1: {"203.0.113.9"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				st := finalState(t, x)
				if st.Refresh == nil || len(st.Refresh.Stored) != 3 {
					t.Errorf("lists not stored from the unban's reports: %+v", st.Refresh)
				}
				if n := len(e.sent(reportDoc)); n != 1 { // the initial refresh only
					t.Errorf("%d report commands: the unban's own output is the fresh list", n)
				}
				if st.Lookup == nil || st.Lookup.ListedHosts != 2 {
					t.Errorf("lookup record %+v, want the 2 hosts the lists showed", st.Lookup)
				}
				// Asked again: the hosts say it is not blocked any more.
				again := e.unban("ask-again", "unban 192.0.2.12")
				if again.Status != sfnrunner.StatusSucceeded {
					t.Errorf("second request: %s %s", again.Status, again.Output)
				}
				if r := bodies(e.replies()); !strings.Contains(r, "192.0.2.12: not blocked on any host (I just checked all 3).") {
					t.Errorf("second reply:\n%s", r)
				}
			},
		},
		{
			// The most common case: blocked a moment ago, after the last
			// refresh. The stored lists know nothing; the hosts do.
			name: "blocked after the last refresh",
			setup: func(e *env) {
				freshLists(e)
				if err := e.hosts[db1].Block("198.51.100.77"); err != nil {
					e.t.Fatal(err)
				}
			},
			body:      "198.51.100.77 お願いします",
			reply:     []string{"198.51.100.77: unblocked on db-1."},
			toHosts:   true,
			unblocked: map[string][]string{db1: {"198.51.100.77"}},
		},
		{
			name:      "lists never stored at all",
			body:      "unban 192.0.2.12",
			reply:     []string{"192.0.2.12: unblocked on web-1 and web-2."},
			toHosts:   true,
			unblocked: map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.12"}},
		},
		{
			name:         "not blocked anywhere: the hosts said so just now",
			setup:        func(e *env) { e.seedLists(time.Hour) },
			body:         "unban 203.0.113.50",
			reply:        []string{"[title]Not blocked", "203.0.113.50: not blocked on any host (I just checked all 3)."},
			toHosts:      true,
			stillBlocked: map[string][]string{web1: {"192.0.2.12"}},
		},
		{
			name:    "help",
			body:    "hello, what can you do?",
			reply:   []string{"Unblocking sshguard bans"},
			toHosts: false,
		},
		{
			name:  "thanks",
			body:  "thanks!",
			reply: []string{"You're welcome"},
		},
		{
			name:  "refused address",
			body:  "unban 127.0.0.1",
			reply: []string{"No address I can unblock", "127.0.0.1 is a loopback address"},
		},
		{
			name:         "keep it blocked: a quoted attacker",
			setup:        freshLists,
			body:         "[qt][qtmeta aid=1 time=1764045600]sshguard blocked an address\nAddress: 192.0.2.12[/qt]\nthat's an attack, keep it blocked please",
			reply:        []string{"Block left in place", "I did not unblock 192.0.2.12"},
			stillBlocked: map[string][]string{web1: {"192.0.2.12"}},
		},
		{
			name:    "six addresses: five unbanned, the sixth answered",
			setup:   freshLists,
			body:    "unban 192.0.2.12 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6",
			reply:   []string{"192.0.2.12: unblocked on web-1 and web-2.", "I did not unblock 192.0.2.6: I take up to 5 addresses at a time."},
			toHosts: true,
		},
		{
			// A stopped host: SSM says its agent is not connected. The
			// reply does not wait for it; when it is back, it runs the
			// command and a short follow-up says it freed the address too.
			name: "a silent host answers after the reply",
			setup: func(e *env) {
				freshLists(e)
				if err := e.hosts[db1].Block("192.0.2.12"); err != nil {
					e.t.Fatal(err)
				}
				e.ssm.SetFault(db1, ssmfake.Fault{Disconnected: true})
				go func() {
					for len(e.replies()) == 0 {
						time.Sleep(5 * time.Millisecond)
					}
					e.ssm.SetFault(db1, ssmfake.Fault{})
				}()
			},
			body:      "unban 192.0.2.12",
			reply:     []string{"192.0.2.12: unblocked on web-1 and web-2.", "db-1 did not answer", "A late answer from db-1: 192.0.2.12 is unblocked there too."},
			replies:   2,
			alerts:    1,
			toHosts:   true,
			unblocked: map[string][]string{web1: {"192.0.2.12"}, db1: {"192.0.2.12"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				if !strings.Contains(bodies(e.alerts()), "db-1") {
					t.Errorf("alert: %s", bodies(e.alerts()))
				}
				if i, j := slices.Index(x.States, "ReplyToUser"), slices.Index(x.States, "WaitForLateHosts"); i < 0 || j < i {
					t.Errorf("states %v: the reply must not wait for the silent host", x.States)
				}
			},
		},
		{
			name: "host offline (undeliverable)",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{Offline: true})
			},
			body:         "unban 192.0.2.12",
			reply:        []string{"192.0.2.12: unblocked on web-1.", "I could not reach web-2 (it may be stopped)", "told the SRE team"},
			alerts:       1,
			toHosts:      true,
			unblocked:    map[string][]string{web1: {"192.0.2.12"}},
			stillBlocked: map[string][]string{web2: {"192.0.2.12"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				// The offline host has no fresh report: its list is kept.
				if st := finalState(t, x); st.Refresh == nil || !slices.Contains(st.Refresh.Failed, web2) {
					t.Errorf("refresh result %+v", st.Refresh)
				}
			},
		},
		{
			name: "command timed out on a host",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{TimeOut: true})
			},
			body:      "unban 192.0.2.12",
			reply:     []string{"192.0.2.12: unblocked on web-1.", "web-2 did not answer in time"},
			alerts:    1,
			toHosts:   true,
			unblocked: map[string][]string{web1: {"192.0.2.12"}},
		},
		{
			name: "partial success: the script fails on a host",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{Fail: true})
			},
			body:    "unban 192.0.2.12",
			reply:   []string{"[title]Unblocked on some hosts", "web-2 could not unblock it"},
			alerts:  1,
			toHosts: true,
		},
		{
			// The lists cannot be read: that only loses the audit record;
			// the hosts are asked all the same.
			name: "lookup fails",
			setup: func(e *env) {
				freshLists(e)
				e.bridge.Inject("lookup", taskbridge.Fault{Kind: taskbridge.Permanent})
			},
			body:      "unban 192.0.2.12",
			reply:     []string{"192.0.2.12: unblocked on web-1 and web-2."},
			toHosts:   true,
			unblocked: map[string][]string{web1: {"192.0.2.12"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				if st := finalState(t, x); st.LookupError == nil {
					t.Error("no lookup_error in the state")
				}
			},
		},
		{
			name: "slow host: the reply waits for it, without a Wait state",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{SlowFor: 300 * time.Millisecond})
			},
			body:      "unban 192.0.2.12",
			reply:     []string{"192.0.2.12: unblocked on web-1 and web-2."},
			toHosts:   true,
			unblocked: map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.12"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				if n := x.Entered("CheckUnbanCommand"); n != 1 {
					t.Errorf("CheckUnbanCommand entered %d times, want one polling invocation", n)
				}
			},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			hosts := sc.hosts
			if hosts == nil {
				hosts = threeHosts()
			}
			e := newEnv(t, hosts)
			if sc.setup != nil {
				sc.setup(e)
			}
			x := e.unban("exec-1", sc.body)
			want := sc.status
			if want == "" {
				want = sfnrunner.StatusSucceeded
			}
			if x.Status != want {
				t.Fatalf("status %s (%s: %s), want %s\nstates: %v", x.Status, x.Error, x.Cause, want, x.States)
			}
			replies := sc.replies
			if replies == 0 {
				replies = 1
			}
			checkMessages(t, e, replies, sc.alerts)
			reply := bodies(e.replies())
			for _, s := range sc.reply {
				if !strings.Contains(reply, s) {
					t.Errorf("reply lacks %q:\n%s", s, reply)
				}
			}
			for _, s := range sc.notInReply {
				if strings.Contains(reply, s) {
					t.Errorf("reply has %q:\n%s", s, reply)
				}
			}
			if got := len(e.sent(unbanDoc)) > 0; got != sc.toHosts {
				t.Errorf("unban command sent: %v, want %v", got, sc.toHosts)
			}
			for _, c := range e.sent(unbanDoc) {
				if len(c.InstanceIDs) != 0 || len(c.Targets["tag:"+tagKey]) != 1 {
					t.Errorf("unban command %s targets %v %v, want the tag", c.CommandID, c.InstanceIDs, c.Targets)
				}
			}
			for id, addrs := range sc.unblocked {
				for _, a := range addrs {
					if e.hosts[id].Blocks(a) {
						t.Errorf("%s still blocks %s", id, a)
					}
				}
			}
			for id, addrs := range sc.stillBlocked {
				for _, a := range addrs {
					if !e.hosts[id].Blocks(a) {
						t.Errorf("%s no longer blocks %s", id, a)
					}
				}
			}
			if x.MaxStateBytes > 16<<10 {
				t.Errorf("largest state %d bytes: keep the history small", x.MaxStateBytes)
			}
			if sc.check != nil {
				sc.check(t, e, x)
			}
		})
	}
}

// checkMessages requires exactly replies messages in the asker's room and
// alerts in the SRE room.
func checkMessages(t *testing.T, e *env, replies, alerts int) {
	t.Helper()
	if got := e.replies(); len(got) != replies {
		t.Errorf("%d replies to the asker, want %d:\n%s", len(got), replies, bodies(got))
	}
	if got := e.alerts(); len(got) != alerts {
		t.Errorf("%d SRE alerts, want %d:\n%s", len(got), alerts, bodies(got))
	}
	for _, m := range e.replies() {
		if !strings.Contains(m.Body, "[rp aid="+asker) {
			t.Errorf("reply does not answer the asker: %s", m.Body)
		}
	}
}
