package notify_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"sshguard-unban/lambdas/notify"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/shared/history"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/pagelink"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

var pageKey = []byte("a page key of at least thirty-two bytes")

func signer(now time.Time) pagelink.Signer {
	return pagelink.Signer{Key: func(context.Context) ([]byte, error) { return pageKey, nil },
		BaseURL: "https://api.example/", Now: func() time.Time { return now }}
}

// The help and "not blocked" replies send the asker to the service's own
// /ip page once the deployment knows its URL, and to a public page only
// when it does not.
func TestFindYourAddressLinksToTheIPPage(t *testing.T) {
	notBlocked := workflow.State{Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3)}
	help := workflow.State{Parsed: parsed(message.IntentHelp)}
	tests := []struct {
		name, locale, publicURL string
		state                   workflow.State
		want                    string
	}{
		{"help ja", "ja", "https://api.example/", help, "ご自分のアドレスは https://api.example/ip で確認できます"},
		{"help en", "en", "https://api.example", help, "You can see your address at https://api.example/ip (over the VPN"},
		{"not blocked ja", "ja", "https://api.example/", notBlocked, "ご自分のアドレスは https://api.example/ip で確認できます"},
		{"not blocked en", "en", "https://api.example/", notBlocked, "You can see your address at https://api.example/ip"},
		{"no public URL", "ja", "", help, "ご自分のアドレスは https://checkip.amazonaws.com で確認できます"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.locale)
			e.h.Cfg.PublicURL = tt.publicURL
			st := tt.state
			st.Request = request()
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-ip", State: st}); err != nil {
				t.Fatal(err)
			}
			got := bodies(e.chat.RoomMessages(room))
			if !strings.Contains(got, tt.want) {
				t.Fatalf("reply %q lacks %q", got, tt.want)
			}
			if tt.publicURL != "" && strings.Contains(got, "checkip") {
				t.Fatalf("reply %q still names the third-party page", got)
			}
		})
	}
}

func sreList(account string) workflow.State {
	return workflow.State{
		Request: workflow.Request{RoomID: sreRoom, MessageID: "1790000000000000001", AccountID: account, Body: "[To:1]bot\n一覧"},
		Parsed:  parsed(message.IntentList),
		Policy:  &workflow.PolicyResult{Decision: workflow.DecisionAllow},
	}
}

// An SRE's "一覧" is answered in the SRE room with a link that mentions
// them, works for 15 minutes and for their account only; the log never
// carries it.
func TestPageLink(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, locale := range []string{"ja", "en"} {
		t.Run(locale, func(t *testing.T) {
			e := setup(t, locale)
			var logs bytes.Buffer
			e.h.Log = slog.New(slog.NewJSONHandler(&logs, nil))
			e.h.PageLinks = signer(now)
			in := workflow.NotifyInput{Kind: workflow.NotifyPageLink, Execution: "exec-list", State: sreList("9000001")}
			if _, err := e.h.Handle(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			// A retry posts nothing more.
			if res, err := e.h.Handle(context.Background(), in); err != nil || !res.Duplicate {
				t.Fatalf("retry: %+v %v", res, err)
			}
			msgs := e.chat.RoomMessages(sreRoom)
			if len(msgs) != 1 {
				t.Fatalf("%d messages in the SRE room: %s", len(msgs), bodies(msgs))
			}
			body := msgs[0].Body
			want := map[string][]string{
				"ja": {"[rp aid=9000001 to=" + sreRoom + "-1790000000000000001]", "ブロック一覧", "19:15 JST まで（15 分間）", "https://api.example/bans?"},
				"en": {"[rp aid=9000001 to=" + sreRoom + "-1790000000000000001]", "Ban list", "until 10:15 UTC (15 minutes)", "https://api.example/bans?"},
			}[locale]
			for _, w := range want {
				if !strings.Contains(body, w) {
					t.Errorf("message %q lacks %q", body, w)
				}
			}
			i := strings.Index(body, "https://")
			link := strings.Fields(body[i:])[0]
			link = strings.TrimSuffix(link, "[/info]")
			u, err := url.Parse(link)
			if err != nil {
				t.Fatal(err)
			}
			if acct, _, err := pagelink.Verify(pageKey, u.Query(), now.Add(time.Minute)); err != nil || acct != "9000001" {
				t.Fatalf("link %q: %q %v", link, acct, err)
			}
			if _, _, err := pagelink.Verify(pageKey, u.Query(), now.Add(16*time.Minute)); err == nil {
				t.Fatal("the link works after 15 minutes")
			}
			if strings.Contains(logs.String(), u.Query().Get(pagelink.ParamSig)) {
				t.Fatalf("the log carries the signature: %s", logs.String())
			}
		})
	}
}

// notify hands out a link only for an allowed list request in the SRE
// room, whatever path led to it; a refused one is answered politely.
func TestPageLinkRefused(t *testing.T) {
	e := setup(t, "ja")
	e.h.PageLinks = signer(time.Now())
	wrong := map[string]func(*workflow.State){
		"another room":      func(st *workflow.State) { st.Request.RoomID = room },
		"refused by policy": func(st *workflow.State) { st.Policy.Decision = workflow.DecisionRefuse },
		"no policy":         func(st *workflow.State) { st.Policy = nil },
		"an unban request":  func(st *workflow.State) { st.Parsed = parsed(message.IntentUnban, "192.0.2.1") },
	}
	for name, f := range wrong {
		st := sreList("9000001")
		f(&st)
		_, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyPageLink, Execution: "exec-" + name, State: st})
		var bad *taskerr.InvalidInputError
		if !errors.As(err, &bad) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(e.chat.RoomMessages(sreRoom)) + len(e.chat.RoomMessages(room)); n != 0 {
		t.Fatalf("%d messages posted", n)
	}
	// The policy's refusal goes to ReplyToUser: a polite word, no link.
	st := sreList("3000001")
	st.Request.RoomID = room
	st.Policy = &workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonNotSRERoom}
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-refused", State: st}); err != nil {
		t.Fatal(err)
	}
	got := bodies(e.chat.RoomMessages(room))
	if !strings.Contains(got, "ブロック一覧は SRE の方のみ、SRE のルームでご利用いただけます。") || strings.Contains(got, "https://") {
		t.Fatalf("refusal %q", got)
	}
}

// Without a page (no key configured) the SRE hears that it is not set up.
func TestPageLinkNotConfigured(t *testing.T) {
	e := setup(t, "en")
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyPageLink, Execution: "exec-x", State: sreList("9000001")}); err != nil {
		t.Fatal(err)
	}
	if got := bodies(e.chat.RoomMessages(sreRoom)); !strings.Contains(got, "The ban-list page is not set up") {
		t.Fatalf("message %q", got)
	}
}

// Every answered unban request is recorded for the page (who, where,
// which addresses, the result and the hosts, the execution; never the
// body), and a history that cannot be written never fails the answer.
func TestHistoryRecorded(t *testing.T) {
	db := dynalitetest.Table(t, "policy")
	store := &history.Store{DB: db, Table: "policy"}
	e := setup(t, "en")
	e.h.History = store
	partial := answered(3, freed("i-0a", "web-1", "203.0.113.5"))
	partial.Silent = []workflow.HostOutcome{{InstanceID: "i-0c", Host: "db-1", Status: workflow.HostSilent}}
	cases := []struct {
		execution, kind string
		state           workflow.State
		result          string
		hosts           []string
	}{
		{"e-freed", workflow.NotifyReply, workflow.State{Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3, freed("i-0a", "web-1", "203.0.113.5"), freed("i-0b", "git-1", "203.0.113.5"))}, history.ResultUnblocked, []string{"git-1", "web-1"}},
		{"e-partial", workflow.NotifyReply, workflow.State{Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: partial}, history.ResultPartial, []string{"web-1"}},
		{"e-none", workflow.NotifyReply, workflow.State{Parsed: parsed(message.IntentUnban, "198.51.100.9"), Check: answered(3)}, history.ResultNotBlocked, nil},
		{"e-guest", workflow.NotifyReply, workflow.State{Parsed: parsed(message.IntentUnban, "198.51.100.9"), Policy: &workflow.PolicyResult{Decision: workflow.DecisionRefuse, Reason: workflow.ReasonGuest}}, history.ResultRefused, nil},
		{"e-denied", workflow.NotifyReply, workflow.State{Parsed: parsed(message.IntentUnban, "198.51.100.9"), Approval: &workflow.Approval{Status: workflow.DecisionDenied}}, history.ResultDenied, nil},
		{"e-failed", workflow.NotifyFailure, workflow.State{Parsed: parsed(message.IntentUnban, "198.51.100.8")}, history.ResultFailed, nil},
		{"e-help", workflow.NotifyReply, workflow.State{Parsed: parsed(message.IntentHelp)}, "", nil},
	}
	for _, c := range cases {
		st := c.state
		st.Request = request()
		if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: c.kind, Execution: c.execution, State: st}); err != nil {
			t.Fatalf("%s: %v", c.execution, err)
		}
	}
	recs, err := store.Recent(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]history.Record{}
	for _, r := range recs {
		got[r.Execution] = r
	}
	for _, c := range cases {
		r, ok := got[c.execution]
		if c.result == "" {
			if ok {
				t.Errorf("%s recorded: %+v", c.execution, r)
			}
			continue
		}
		if !ok || r.Result != c.result || strings.Join(r.Hosts, ",") != strings.Join(c.hosts, ",") ||
			r.AccountID != asker || r.RoomID != room || len(r.Addresses) != 1 {
			t.Errorf("%s: %+v, want %s on %v", c.execution, r, c.result, c.hosts)
		}
	}

	// A table that does not exist: the answer still goes out, the error
	// is logged.
	var logs bytes.Buffer
	e2 := setup(t, "en")
	e2.h.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	e2.h.History = &history.Store{DB: db, Table: "no-such-table"}
	st := workflow.State{Request: request(), Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3)}
	if _, err := e2.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "e-lost", State: st}); err != nil {
		t.Fatalf("a lost history record failed the answer: %v", err)
	}
	if len(e2.chat.RoomMessages(room)) != 1 || !strings.Contains(logs.String(), "could not record the request in the history") {
		t.Fatalf("messages %d, logs %s", len(e2.chat.RoomMessages(room)), logs.String())
	}
	if strings.Contains(logs.String(), "203.0.113.5\\n") || strings.Contains(logs.String(), "[To:1]bot") {
		t.Fatalf("the log carries the body: %s", logs.String())
	}
}

var _ notify.History = (*history.Store)(nil)
var _ notify.PageLinks = pagelink.Signer{}

func bodies(ms []chatworkfake.Message) string {
	var b []string
	for _, m := range ms {
		b = append(b, m.Body)
	}
	return strings.Join(b, "\n---\n")
}
