package statemachine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/local/s3local"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/workflow"
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

	status       string   // default SUCCEEDED
	reply        []string // substrings of the one reply
	notInReply   []string
	alerts       int
	unbanTo      []string // instance ids the unban command went to; "tag" for all hosts
	noLookup     bool     // the message alone answers: no lookup call
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
			name:         "banned on 2 of 3 hosts",
			setup:        freshLists,
			body:         "[To:1234]unban bot\nplease unban 192.0.2.12, thanks",
			reply:        []string{"Unblock result", "web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12", "web-2 (i-0aaaaaaaaaaaaaaa2): unblocked 192.0.2.0/24", "Please try to connect now"},
			notInReply:   []string{"db-1", "out of date"},
			unbanTo:      []string{web1, web2},
			unblocked:    map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.0/24"}},
			stillBlocked: map[string][]string{web1: {"198.51.100.7"}, db1: {"203.0.113.9"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				st := finalState(t, x)
				if st.Refresh == nil || len(st.Refresh.Stored) != 2 || st.RefreshError != nil {
					t.Errorf("lists not refreshed after the unban: %+v %+v", st.Refresh, st.RefreshError)
				}
				// The stored lists no longer show the block: asking again
				// answers "not blocked" without touching a host.
				again := e.unban("ask-again", "unban 192.0.2.12")
				if again.Status != sfnrunner.StatusSucceeded || finalState(t, again).Lookup.Action != workflow.ActionNotBanned {
					t.Errorf("second request: %s %s", again.Status, again.Output)
				}
			},
		},
		{
			name:         "not banned, fresh lists",
			setup:        freshLists,
			body:         "unban 203.0.113.50",
			reply:        []string{"Not blocked", "203.0.113.50 is not blocked on any host"},
			unbanTo:      []string{},
			stillBlocked: map[string][]string{web1: {"192.0.2.12"}},
		},
		{
			name:     "help",
			body:     "hello, what can you do?",
			reply:    []string{"Unblocking sshguard bans"},
			noLookup: true,
		},
		{
			name:     "thanks",
			body:     "thanks!",
			reply:    []string{"You're welcome"},
			noLookup: true,
		},
		{
			name:     "refused address",
			body:     "unban 127.0.0.1",
			reply:    []string{"No address I can unblock", "127.0.0.1 is a loopback address"},
			noLookup: true,
		},
		{
			name:     "too many addresses",
			body:     "unban 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6",
			reply:    []string{"up to 5 addresses"},
			noLookup: true,
		},
		{
			name:      "stale lists: unban on every host",
			setup:     func(e *env) { e.seedLists(time.Hour) },
			body:      "unban 192.0.2.12",
			reply:     []string{"out of date", "web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12", "web-2 (i-0aaaaaaaaaaaaaaa2): unblocked 192.0.2.0/24"},
			unbanTo:   []string{"tag"},
			unblocked: map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.0/24"}},
		},
		{
			name:      "index missing (never refreshed): unban on every host",
			body:      "unban 192.0.2.12",
			reply:     []string{"out of date", "web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12"},
			unbanTo:   []string{"tag"},
			unblocked: map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.0/24"}},
		},
		{
			name:    "index lists no host: unban on every host",
			setup:   func(e *env) { e.putEmptyIndex() },
			body:    "unban 192.0.2.12",
			reply:   []string{"out of date"},
			unbanTo: []string{"tag"},
		},
		{
			name: "empty ban lists, fresh: not banned",
			hosts: []hostSpec{
				{id: web1, name: "web-1"}, {id: web2, name: "web-2"},
			},
			setup:   freshLists,
			body:    "unban 192.0.2.12",
			reply:   []string{"Not blocked"},
			unbanTo: []string{},
		},
		{
			name: "host offline",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{Offline: true})
			},
			body:         "unban 192.0.2.12",
			reply:        []string{"web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12", "unreachable", "told the SRE team"},
			alerts:       1,
			unbanTo:      []string{web1, web2},
			unblocked:    map[string][]string{web1: {"192.0.2.12"}},
			stillBlocked: map[string][]string{web2: {"192.0.2.0/24"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				// The offline host has no fresh report: its list is kept
				// (and ages into stale), the others are stored.
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
			reply:     []string{"web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12", "did not answer in time"},
			alerts:    1,
			unbanTo:   []string{web1, web2},
			unblocked: map[string][]string{web1: {"192.0.2.12"}},
		},
		{
			name: "partial success: the script fails on a host",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{Fail: true})
			},
			body:    "unban 192.0.2.12",
			reply:   []string{"web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12", "could not unblock", "Some hosts could not be unblocked"},
			alerts:  1,
			unbanTo: []string{web1, web2},
		},
		{
			// A contract break (a lookup answer the machine does not know)
			// touches no host and still answers; the one stand-in handler
			// of these tests, since no real lookup returns it.
			name: "unknown lookup action",
			setup: func(e *env) {
				e.bridge.Handle("lookup", lambda.NewHandler(func(context.Context, workflow.LookupInput) (workflow.LookupResult, error) {
					return workflow.LookupResult{Action: "maybe"}, nil
				}))
			},
			body:    "unban 192.0.2.12",
			status:  sfnrunner.StatusFailed,
			reply:   []string{"Could not finish the unblock"},
			alerts:  1,
			unbanTo: []string{},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				if x.Error != "UnknownLookupAction" {
					t.Errorf("error %s", x.Error)
				}
			},
		},
		{
			name: "slow host: the wait loop goes round",
			setup: func(e *env) {
				freshLists(e)
				e.ssm.SetFault(web2, ssmfake.Fault{SlowPolls: 3})
			},
			body:      "unban 192.0.2.12",
			reply:     []string{"web-1 (i-0aaaaaaaaaaaaaaa1): unblocked 192.0.2.12", "web-2 (i-0aaaaaaaaaaaaaaa2): unblocked 192.0.2.0/24"},
			unbanTo:   []string{web1, web2},
			unblocked: map[string][]string{web1: {"192.0.2.12"}, web2: {"192.0.2.0/24"}},
			check: func(t *testing.T, e *env, x sfnrunner.Execution) {
				if n := x.Entered("CheckUnbanCommand"); n < 2 {
					t.Errorf("CheckUnbanCommand entered %d times, want a loop", n)
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
			checkMessages(t, e, 1, sc.alerts)
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
			if sc.noLookup && len(e.bridge.Calls("lookup")) > 0 {
				t.Error("lookup called for a message that needs none")
			}
			if sc.unbanTo != nil {
				checkUnbanTargets(t, e, sc.unbanTo)
			}
			for id, entries := range sc.unblocked {
				for _, b := range entries {
					if slices.Contains(e.hosts[id].Blocked(), b) {
						t.Errorf("%s still blocks %s", id, b)
					}
				}
			}
			for id, entries := range sc.stillBlocked {
				for _, b := range entries {
					if !slices.Contains(e.hosts[id].Blocked(), b) {
						t.Errorf("%s no longer blocks %s", id, b)
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

// checkUnbanTargets compares where unban commands went: instance ids, or
// "tag" for the all-hosts target.
func checkUnbanTargets(t *testing.T, e *env, want []string) {
	t.Helper()
	var got []string
	for _, c := range e.sent(unbanDoc) {
		got = append(got, c.InstanceIDs...)
		if len(c.Targets) > 0 {
			got = append(got, "tag")
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("unban sent to %v, want %v", got, w)
	}
}
