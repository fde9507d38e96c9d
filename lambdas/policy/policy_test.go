package policy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"sshguard-unban/lambdas/policy"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/dynalite"
	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/policystore"
	"sshguard-unban/shared/workflow"
)

const (
	apiToken = "api-token"
	room     = "567890123"
	sreRoom  = "111"
	ourOrg   = 5001
	otherOrg = 7777
	employee = "3000001"
	guest    = "4000001"
	sre      = "9000001"
)

type env struct {
	h     *policy.Handler
	chat  *chatworkfake.Server
	store *policystore.Store
	now   *time.Time
}

// setup: the room has an employee, an SRE and a guest from another
// company, as Chatwork lists them; the policy table is a real dynalite.
func setup(t *testing.T, cfg policy.Config) env {
	t.Helper()
	srv := dynalitetest.Start(t)
	ctx := context.Background()
	db := srv.Client()
	if err := dynalite.CreateTable(ctx, db, "policy"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 15, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := &policystore.Store{DB: db, Table: "policy", Now: clock}
	chat := chatworkfake.New(apiToken)
	chat.SetMembers(room,
		chatworkfake.Member{AccountID: 3000001, Name: "社員 太郎", OrganizationID: ourOrg, OrganizationName: "Example Inc."},
		chatworkfake.Member{AccountID: 9000001, Name: "SRE 花子", OrganizationID: ourOrg, OrganizationName: "Example Inc."},
		chatworkfake.Member{AccountID: 4000001, Name: "Guest", OrganizationID: otherOrg, OrganizationName: "Partner Co."})
	chatSrv := httptest.NewServer(chat)
	t.Cleanup(chatSrv.Close)
	client := &chatwork.Client{BaseURL: chatSrv.URL + chatworkfake.BasePath,
		Token: func(context.Context) (string, error) { return apiToken, nil }}
	cfg.Now = clock
	if cfg.NewCode == nil {
		cfg.NewCode = func() string { return "K7QX2M" }
	}
	h := policy.New(client, store, nil, nil, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return env{h: h, chat: chat, store: store, now: &now}
}

func check(t *testing.T, e env, account string, addrs ...string) workflow.PolicyResult {
	t.Helper()
	st := workflow.State{Request: workflow.Request{RoomID: room, MessageID: "1", AccountID: account, SentAt: e.now.Unix()},
		Parsed: &message.Result{Intent: message.IntentUnban, Addresses: addrs}}
	res, err := e.h.Handle(context.Background(), workflow.PolicyInput{Mode: workflow.PolicyCheck, Execution: "x", State: st})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var ours = policy.Config{AllowedOrganizations: []string{fmt.Sprint(ourOrg)}}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name, account string
		cfg           policy.Config
		want          string
	}{
		{"an employee of the allowed organization", employee, ours, workflow.DecisionAllow},
		{"a guest from another company", guest, ours, workflow.DecisionRefuse},
		{"someone not in the room at all", "5555555", ours, workflow.DecisionRefuse},
		{"a guest on the account allowlist", guest, policy.Config{AllowedOrganizations: []string{fmt.Sprint(ourOrg)}, AllowedAccounts: []string{guest}}, workflow.DecisionAllow},
		{"only an allowlist: others refused", employee, policy.Config{AllowedAccounts: []string{sre}}, workflow.DecisionRefuse},
		{"nothing configured: the room allowlist decides", guest, policy.Config{}, workflow.DecisionAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.cfg)
			res := check(t, e, tt.account, "203.0.113.5")
			if res.Decision != tt.want {
				t.Fatalf("decision %+v, want %s", res, tt.want)
			}
			if res.Decision == workflow.DecisionRefuse && res.Reason != workflow.ReasonGuest {
				t.Errorf("reason %q", res.Reason)
			}
		})
	}
}

// The member list is read from Chatwork once and cached: ten requests, one
// GET. Someone who joined since is looked up again (they are a member, or
// Chatwork would not have delivered their message), once.
func TestMembersCached(t *testing.T) {
	e := setup(t, ours)
	for range 10 {
		if res := check(t, e, employee, "203.0.113.5"); res.Decision != workflow.DecisionAllow {
			t.Fatal(res)
		}
	}
	if n := e.chat.Requests(); n != 1 {
		t.Errorf("%d Chatwork requests for ten checks, want 1", n)
	}
	*e.now = e.now.Add(2 * time.Second)
	e.chat.SetMembers(room,
		chatworkfake.Member{AccountID: 3000002, OrganizationID: ourOrg},
		chatworkfake.Member{AccountID: 4000002, OrganizationID: otherOrg})
	if res := check(t, e, "3000002", "203.0.113.5"); res.Decision != workflow.DecisionAllow {
		t.Errorf("an employee who just joined: %+v", res)
	}
	if res := check(t, e, "4000002", "203.0.113.5"); res.Decision != workflow.DecisionRefuse || res.Reason != workflow.ReasonGuest {
		t.Errorf("a guest who just joined: %+v", res)
	}
	if n := e.chat.Requests(); n != 2 {
		t.Errorf("%d Chatwork requests, want 2: the list fetched again once for both newcomers", n)
	}
}

// Past a quota the request needs an SRE's approval, and the reply can say
// when the asker may ask again without one.
func TestQuotas(t *testing.T) {
	e := setup(t, policy.Config{AccountPerHour: 5, AccountPerDay: 20, AddressPerDay: 3, SREAccounts: []string{sre}, SRERoomID: sreRoom})
	for i := range 5 {
		if res := check(t, e, employee, fmt.Sprintf("198.51.100.%d", i)); res.Decision != workflow.DecisionAllow {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
	res := check(t, e, employee, "198.51.100.99")
	if res.Decision != workflow.DecisionApprove || res.Reason != workflow.ReasonAccountQuota || res.RetryAt != "2026-12-01T11:00:00Z" || res.Code == "" {
		t.Fatalf("sixth address in the hour: %+v", res)
	}
	// The refused request took nothing: another asker is unaffected. An
	// address unbanned three times a day (episodes more than ten minutes
	// apart) needs approval the fourth time; a whole office asking within
	// the same minutes is one unban.
	for i := range 3 {
		for j := range 4 { // four colleagues behind it, at once
			if res := check(t, e, fmt.Sprint(3100000+10*i+j), "203.0.113.7"); res.Decision != workflow.DecisionAllow {
				t.Fatalf("unban %d of the address, asker %d: %+v", i, j, res)
			}
		}
		*e.now = e.now.Add(11 * time.Minute)
	}
	if res := check(t, e, "3100099", "203.0.113.7"); res.Decision != workflow.DecisionApprove || res.Reason != workflow.ReasonAddressQuota {
		t.Fatalf("fourth unban of one address in a day: %+v", res)
	}
	*e.now = e.now.Add(time.Hour)
	if res := check(t, e, employee, "198.51.100.99"); res.Decision != workflow.DecisionAllow {
		t.Errorf("the next hour: %+v", res)
	}
}

// An over-quota request gives back what it took from the other quotas: a
// five-address request past the hourly quota leaves the daily one as it was.
func TestQuotaAllOrNothing(t *testing.T) {
	e := setup(t, policy.Config{AccountPerHour: 5, AccountPerDay: 6, SREAccounts: []string{sre}, SRERoomID: sreRoom})
	if res := check(t, e, employee, "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"); res.Decision != workflow.DecisionAllow {
		t.Fatal(res)
	}
	if res := check(t, e, employee, "192.0.2.5", "192.0.2.6"); res.Decision != workflow.DecisionApprove {
		t.Fatalf("over the hour: %+v", res)
	}
	*e.now = e.now.Add(time.Hour)
	if res := check(t, e, employee, "192.0.2.5", "192.0.2.6"); res.Decision != workflow.DecisionAllow {
		t.Fatalf("the day's quota lost units to the refused request: %+v", res)
	}
}

func TestApprovalTriggers(t *testing.T) {
	never := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	e := setup(t, policy.Config{ManyHosts: 10, NeverSelfService: never, SREAccounts: []string{sre}, SRERoomID: sreRoom})
	if res := check(t, e, employee, "198.51.100.20"); res.Decision != workflow.DecisionApprove || res.Reason != workflow.ReasonNeverSelf {
		t.Errorf("never-self-service: %+v", res)
	}
	st := workflow.State{Request: workflow.Request{RoomID: room, MessageID: "1", AccountID: employee},
		Parsed: &message.Result{Intent: message.IntentUnban, Addresses: []string{"203.0.113.50"}},
		Lookup: &workflow.LookupResult{ListedHosts: 12, Hosts: 40}}
	res, err := e.h.Handle(context.Background(), workflow.PolicyInput{Mode: workflow.PolicyCheck, Execution: "x", State: st})
	if err != nil || res.Decision != workflow.DecisionApprove || res.Reason != workflow.ReasonManyHosts {
		t.Errorf("blocked on 12 hosts: %+v %v", res, err)
	}
}

// Only an allowlisted SRE, in the SRE room, can answer; an unknown code is
// said to be unknown.
func TestDecideRefusals(t *testing.T) {
	e := setup(t, policy.Config{SREAccounts: []string{sre}, SRERoomID: sreRoom})
	decide := func(roomID, account, code string) workflow.PolicyResult {
		st := workflow.State{Request: workflow.Request{RoomID: roomID, MessageID: "2", AccountID: account},
			Parsed: &message.Result{Intent: message.IntentApprove, Addresses: []string{}, Code: code}}
		res, err := e.h.Handle(context.Background(), workflow.PolicyInput{Mode: workflow.PolicyDecide, Execution: "y", State: st})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := decide(room, sre, "K7QX2M"); r.Reason != workflow.ReasonNotSRERoom {
		t.Errorf("in the wrong room: %+v", r)
	}
	if r := decide(sreRoom, employee, "K7QX2M"); r.Reason != workflow.ReasonNotSRE {
		t.Errorf("not an SRE: %+v", r)
	}
}

// The ban-list page's link goes to an allowlisted SRE in the SRE room
// only; without SREs configured, to nobody.
func TestPageAccess(t *testing.T) {
	cases := []struct {
		name          string
		cfg           policy.Config
		room, account string
		decision      string
		reason        string
	}{
		{"an SRE in the SRE room", policy.Config{SREAccounts: []string{sre}, SRERoomID: sreRoom}, sreRoom, sre, workflow.DecisionAllow, ""},
		{"an SRE in another room", policy.Config{SREAccounts: []string{sre}, SRERoomID: sreRoom}, room, sre, workflow.DecisionRefuse, workflow.ReasonNotSRERoom},
		{"an employee in the SRE room", policy.Config{SREAccounts: []string{sre}, SRERoomID: sreRoom}, sreRoom, employee, workflow.DecisionRefuse, workflow.ReasonNotSRE},
		{"a guest in the asking room", policy.Config{SREAccounts: []string{sre}, SRERoomID: sreRoom}, room, guest, workflow.DecisionRefuse, workflow.ReasonNotSRERoom},
		{"no SRE room configured", policy.Config{SREAccounts: []string{sre}}, sreRoom, sre, workflow.DecisionRefuse, workflow.ReasonNotSRERoom},
		{"no SREs configured", policy.Config{SRERoomID: sreRoom}, sreRoom, sre, workflow.DecisionRefuse, workflow.ReasonNotSRE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, c.cfg)
			st := workflow.State{Request: workflow.Request{RoomID: c.room, MessageID: "3", AccountID: c.account},
				Parsed: &message.Result{Intent: message.IntentList, Addresses: []string{}}}
			res, err := e.h.Handle(context.Background(), workflow.PolicyInput{Mode: workflow.PolicyPage, Execution: "z", State: st})
			if err != nil || res.Decision != c.decision || res.Reason != c.reason {
				t.Fatalf("= %+v, %v; want %s %s", res, err, c.decision, c.reason)
			}
		})
	}
}

// With no SRE to approve, a request that needs approval is refused at once
// (it would wait an hour for nobody), and the reply can say when to ask
// again; asking twice does not get past the address's daily quota.
func TestNoApproverAndAskingTwice(t *testing.T) {
	e := setup(t, policy.Config{AddressPerDay: 1})
	if res := check(t, e, employee, "203.0.113.8"); res.Decision != workflow.DecisionAllow {
		t.Fatal(res)
	}
	*e.now = e.now.Add(11 * time.Minute)
	for i := range 3 {
		res := check(t, e, fmt.Sprint(3100100+i), "203.0.113.8")
		if res.Decision != workflow.DecisionRefuse || res.Reason != workflow.ReasonAddressQuota || res.Code != "" {
			t.Fatalf("request %d after the address's quota, no SRE configured: %+v", i, res)
		}
	}
}
