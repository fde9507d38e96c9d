package notify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sshguard-unban/lambdas/notify"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/s3local"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

const (
	apiToken = "api-token"
	room     = "567890123"
	sreRoom  = "111"
	banRoom  = "222"
	asker    = "123456"
)

type env struct {
	h    *notify.Handler
	chat *chatworkfake.Server
}

// setup serves S3 and the Chatwork fake. Chatwork's clock moves when the
// client waits (for a rate limit), so a test never sleeps for real.
func setup(t *testing.T, locale string) env {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	s3srv := httptest.NewServer(s3local.New("bucket"))
	t.Cleanup(s3srv.Close)
	chat := chatworkfake.New(apiToken)
	// Chatwork's clock is the real one plus every wait the client asked
	// for (a rate-limit reset) without taking it.
	var mu sync.Mutex
	var ahead time.Duration
	chat.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(ahead) }
	chatSrv := httptest.NewServer(chat)
	t.Cleanup(chatSrv.Close)
	client := &chatwork.Client{
		BaseURL: chatSrv.URL + chatworkfake.BasePath,
		Token:   func(context.Context) (string, error) { return apiToken, nil },
		Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			ahead += d
			mu.Unlock()
			return nil
		},
		MaxAttempts: 4,
	}
	cfg := notify.Config{NotifyRoomID: banRoom, SRERoomID: sreRoom, Locale: locale, Bucket: "bucket", MarkPrefix: "replies/", MaxBanNotices: 3,
		AuditGap: 10 * time.Millisecond} // TestAuditMergedInABurst has the default
	h := notify.New(client, s3local.NewClient(s3srv.URL), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return env{h: h, chat: chat}
}

// alerts are the SRE room's alerts; audits its record of unbans.
func (e env) alerts() []chatworkfake.Message {
	return e.sre("[title]unban の実行で問題がありました", "[title]Problem in an unban execution")
}
func (e env) audits() []chatworkfake.Message {
	return e.sre("[title]unban の記録", "[title]unban record")
}

func (e env) sre(titles ...string) []chatworkfake.Message {
	var out []chatworkfake.Message
	for _, m := range e.chat.RoomMessages(sreRoom) {
		for _, t := range titles {
			if strings.Contains(m.Body, t) {
				out = append(out, m)
			}
		}
	}
	return out
}

func request() workflow.Request {
	return workflow.Request{RoomID: room, MessageID: "1790000000000000000", AccountID: asker, Body: "[To:1]bot\n203.0.113.5"}
}

func parsed(intent message.Intent, addrs ...string) *message.Result {
	return &message.Result{Intent: intent, Addresses: append([]string{}, addrs...)}
}

func freed(inst, host, addr string) workflow.HostOutcome {
	return workflow.HostOutcome{InstanceID: inst, Host: host, Status: workflow.HostSucceeded, Unban: &hostreport.Unban{
		Host: host, Backend: "nft-sets",
		Results: []hostreport.AddressResult{{Address: addr, WasBlocked: true, Removed: []string{addr}}},
	}}
}

func answered(targeted int, named ...workflow.HostOutcome) *workflow.CheckResult {
	c := &workflow.CheckResult{Done: true, Targeted: targeted, Named: named}
	for _, h := range named {
		if h.Status == workflow.HostSucceeded || h.Status == workflow.HostFailed {
			c.Answered++
		}
	}
	c.NotBlocked = targeted - len(named)
	c.Answered += c.NotBlocked
	return c
}

func TestReplies(t *testing.T) {
	silent := answered(3, freed("i-0a", "web-1", "203.0.113.5"))
	silent.Silent = []workflow.HostOutcome{{InstanceID: "i-0c", Host: "db-1", Status: workflow.HostSilent, Detail: "the SSM agent is not connected (ConnectionLost)"}}
	silent.NotBlocked, silent.Answered = 1, 2
	tests := []struct {
		name      string
		locale    string
		kind      string
		state     workflow.State
		want      []string // substrings of the user reply
		wantNot   []string
		wantAlert bool
	}{
		{name: "help", kind: workflow.NotifyReply, state: workflow.State{Parsed: parsed(message.IntentHelp)},
			want: []string{"[info][title]sshguard のブロック解除", "例: 203.0.113.5", "checkip.amazonaws.com"}},
		{name: "thanks", kind: workflow.NotifyReply, state: workflow.State{Parsed: parsed(message.IntentThanks)}, want: []string{"どういたしまして"}, wantNot: []string{"[info]"}},
		{name: "keep the block", kind: workflow.NotifyReply, state: workflow.State{Parsed: parsed(message.IntentKeep, "192.0.2.66")},
			want: []string{"ブロックはそのままです", "192.0.2.66 のブロックは解除していません"}},
		{name: "refused prefix", kind: workflow.NotifyReply, state: workflow.State{Parsed: &message.Result{Intent: message.IntentUnban, Addresses: []string{},
			Refused: []message.Refusal{{Text: "192.0.2.0/24", Reason: message.ReasonCIDR}}, Reason: message.ReasonCIDR}},
			want: []string{"解除できるアドレスがありませんでした", "192.0.2.0/24 はアドレスの範囲です"}},
		{name: "six addresses: five freed, the sixth and the rest accounted for", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: &message.Result{Intent: message.IntentUnban, Addresses: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"},
				Refused: []message.Refusal{{Text: "192.0.2.6", Reason: message.ReasonOverLimit}}, Dropped: 2},
			Check: answered(2, freed("i-0a", "web-1", "192.0.2.1")),
		}, want: []string{"ブロックを解除しました", "192.0.2.1: web-1 でブロックを解除しました", "192.0.2.2: どのホストでもブロックされていませんでした（いま 2 台すべてに確認しました）",
			"192.0.2.6 は解除していません（一度に 5 件まで", "ほかに 2 件"}},
		{name: "not blocked anywhere, checked just now", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3)},
			want:    []string{"[title]ブロックされていませんでした", "203.0.113.5: どのホストでもブロックされていませんでした（いま 3 台すべてに確認しました）", "checkip.amazonaws.com"},
			wantNot: []string{"今すぐ接続", "SRE"}},
		{name: "not blocked: which hosts were asked", locale: "en", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Check:  &workflow.CheckResult{Done: true, Targeted: 7, Answered: 7, NotBlocked: 7, Checked: []string{"web-1", "git-1", "db-1", "app-1", "app-2", "app-3", "app-4"}}},
			want: []string{"Checked just now: app-1, app-2, app-3, app-4, db-1 and 2 more."}},
		{name: "private address", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "10.1.2.3"), Check: answered(3)},
			want: []string{"10.1.2.3 はプライベートアドレスです"}},
		{name: "a server's own address", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.10"), Check: answered(3),
			Lookup: &workflow.LookupResult{Servers: []workflow.Server{{Address: "203.0.113.10", Hosts: []string{"git-1"}, Count: 1}}}},
			want:    []string{"203.0.113.10: どのホストでもブロックされていませんでした", "203.0.113.10 は社内のサーバー（git-1）のアドレスです", "接続元", "checkip.amazonaws.com"},
			wantNot: []string{"プライベートアドレス"}},
		{name: "a server's own private address", locale: "en", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "10.0.1.5"), Check: answered(3),
			Lookup: &workflow.LookupResult{Servers: []workflow.Server{{Address: "10.0.1.5", Hosts: []string{"db-1"}, Count: 1}}}},
			want:    []string{"10.0.1.5 is the address of one of our own servers (db-1)"},
			wantNot: []string{"private address"}},
		{name: "unblocked on two hosts", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Check:  answered(3, freed("i-0a", "web-1", "203.0.113.5"), freed("i-0b", "git-1", "203.0.113.5")),
		}, want: []string{"[title]ブロックを解除しました", "203.0.113.5: git-1、web-1 でブロックを解除しました。", "今すぐ接続をお試しください。"},
			wantNot: []string{"SRE", "db-1"}},
		{name: "a failed host alerts SREs", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Check: answered(2, freed("i-0a", "web-1", "203.0.113.5"),
				workflow.HostOutcome{InstanceID: "i-0c", Host: "db-1", Status: workflow.HostFailed, Detail: "firewall_unreadable: cannot read nft set"}),
		}, want: []string{"一部のホストでブロックを解除しました", "db-1 では解除できませんでした。SRE に連絡しましたので、対応をお待ちください。", "今すぐ接続"}, wantNot: []string{"firewall_unreadable", "nft set"}, wantAlert: true},
		{name: "a silent host is named, the others answered", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: silent,
		}, want: []string{"web-1 でブロックを解除しました", "db-1 から応答がありません", "応答があり次第"}, wantAlert: true},
		{name: "inside a blocked /24: only this address exempted, with the time and sshguard's next block", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "192.0.2.5"),
			Check: answered(2, workflow.HostOutcome{InstanceID: "i-0a", Host: "web-1", Status: workflow.HostSucceeded, Unban: &hostreport.Unban{Host: "web-1",
				Results: []hostreport.AddressResult{{Address: "192.0.2.5", WasBlocked: true, BlockedBy: []string{"192.0.2.0/24"}, Removed: []string{},
					Exception: &hostreport.Exception{Address: "192.0.2.5", Entries: []string{"192.0.2.0/24"}, Expires: "2026-12-01T04:30:00Z"}}},
				Report: &hostreport.Report{Settings: &hostreport.Settings{BlockTime: 120, DetectionTime: 1800, Threshold: 30}}}}),
		}, want: []string{"192.0.2.5: web-1 でブロックを解除しました", "192.0.2.0/24 の範囲ごとのブロックに含まれていたため、このアドレスだけを 13:30 JST まで除外しました",
			"ログインに 3 回失敗すると（30 分以内に）、再び 4 分以上ブロックされます"}},
		{name: "blacklisted: left for an SRE, who is told", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "198.51.100.7"),
			Check: answered(2, workflow.HostOutcome{InstanceID: "i-0a", Host: "web-1", Status: workflow.HostSucceeded, Unban: &hostreport.Unban{Host: "web-1",
				Results: []hostreport.AddressResult{{Address: "198.51.100.7", WasBlocked: true, Blacklisted: true, StillBlocked: true, BlockedBy: []string{"198.51.100.7"}, Removed: []string{}}}}}),
		}, want: []string{"198.51.100.7 は web-1 で sshguard のブラックリスト", "SRE が判断します"}, wantNot: []string{"解除しました", "今すぐ接続"}, wantAlert: true},
		{name: "host name with markup is escaped", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(1, freed("i-0a", "[To:1]evil", "203.0.113.5")),
		}, want: []string{"［To:1］evil"}, wantNot: []string{"[To:1]evil"}},
		{name: "failure", kind: workflow.NotifyFailure, state: workflow.State{Parsed: parsed(message.IntentUnban, "203.0.113.5")}, want: []string{"申し訳ありません", "exec-1"}},
		{name: "english result", locale: "en", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "2001:db8::1"),
			Check:  answered(3, freed("i-0a", "web-1", "2001:db8::1"), freed("i-0b", "git-1", "2001:db8::1")),
		}, want: []string{"[title]Unblocked", "2001:db8::1: unblocked on git-1 and web-1.", "Please try to connect now."}},
		{name: "english not blocked", locale: "en", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "2001:db8::1"), Check: answered(4)},
			want: []string{"[title]Not blocked", "2001:db8::1: not blocked on any host (I just checked all 4)."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.locale)
			st := tt.state
			st.Request = request()
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: tt.kind, Execution: "exec-1", State: st}); err != nil {
				t.Fatal(err)
			}
			replies := e.chat.RoomMessages(room)
			if len(replies) != 1 {
				t.Fatalf("%d replies", len(replies))
			}
			body := replies[0].Body
			if !strings.HasPrefix(body, "[rp aid="+asker+" to="+room+"-1790000000000000000]") {
				t.Errorf("reply does not address the asker: %q", body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("reply lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(body, w) {
					t.Errorf("reply has %q:\n%s", w, body)
				}
			}
			if got := len(e.alerts()) > 0; got != tt.wantAlert {
				t.Errorf("SRE alert: %v, want %v", got, tt.wantAlert)
			}
		})
	}
}

// A host that is down meets every request until it is back: the SRE room
// hears of it once per period, not once per request.
func TestSilentHostAlertedOncePerPeriod(t *testing.T) {
	e := setup(t, "ja")
	c := answered(2, freed("i-0a", "web-1", "203.0.113.5"))
	c.Silent = []workflow.HostOutcome{{InstanceID: "i-0c", Host: "db-1", Status: workflow.HostSilent, Detail: "not connected"}}
	for i := range 5 {
		r := request()
		r.MessageID = fmt.Sprint(1790000000000000000 + i)
		st := workflow.State{Request: r, Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: c}
		if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: fmt.Sprintf("exec-%d", i), State: st}); err != nil {
			t.Fatal(err)
		}
	}
	alerts := e.alerts()
	if len(alerts) != 1 || !strings.Contains(alerts[0].Body, "db-1") {
		t.Fatalf("%d alerts: %+v", len(alerts), alerts)
	}
	if n := len(e.chat.RoomMessages(room)); n != 5 {
		t.Fatalf("%d replies, want one per asker", n)
	}
}

// A whole office behind one address asks at once: 40 colleagues in one
// room, the same answer for all. They get it in a few messages that each
// mention their askers, inside Chatwork's 10 posts per 10 s per room, and
// each execution learns which message carries its answer.
func TestBurstMergedPerRoom(t *testing.T) {
	e := setup(t, "ja")
	const askers = 40
	ids := make([]string, askers)
	var wg sync.WaitGroup
	for i := range askers {
		wg.Go(func() {
			r := workflow.Request{RoomID: room, MessageID: fmt.Sprint(1790000000000000100 + i), AccountID: fmt.Sprint(3000000 + i)}
			st := workflow.State{Request: r, Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3, freed("i-0a", "web-1", "203.0.113.5"))}
			res, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: fmt.Sprintf("exec-%d", i), State: st})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = res.MessageIDs[0]
		})
	}
	wg.Wait()
	msgs := e.chat.RoomMessages(room)
	if len(msgs) == 0 || len(msgs) > 10 {
		t.Fatalf("%d messages for %d askers", len(msgs), askers)
	}
	byID := map[string]string{}
	mentioned := 0
	for _, m := range msgs {
		byID[m.MessageID] = m.Body
		mentioned += strings.Count(m.Body, "[To:") + strings.Count(m.Body, "[rp aid=")
	}
	if mentioned != askers {
		t.Errorf("%d mentions in %d messages, want each of %d askers once", mentioned, len(msgs), askers)
	}
	for i, id := range ids {
		body, ok := byID[id]
		acct := fmt.Sprint(3000000 + i)
		if !ok || !(strings.Contains(body, "[To:"+acct+"]") || strings.Contains(body, "[rp aid="+acct+" ")) {
			t.Errorf("asker %s: message %s does not mention them", acct, id)
		}
	}
	if e.chat.Refused() > 0 {
		t.Errorf("%d posts refused by Chatwork's limits", e.chat.Refused())
	}
	t.Logf("%d askers answered in %d messages", askers, len(msgs))
}

// One reply per execution, whichever of reply/failure runs and however often.
func TestExactlyOneUserReply(t *testing.T) {
	e := setup(t, "ja")
	in := workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-dup", State: workflow.State{Request: request(), Parsed: parsed(message.IntentHelp)}}
	first, err := e.h.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{workflow.NotifyReply, workflow.NotifyFailure} {
		in.Kind = kind
		again, err := e.h.Handle(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.MessageIDs[0] != first.MessageIDs[0] {
			t.Fatalf("%s after a reply: %+v", kind, again)
		}
	}
	if n := len(e.chat.RoomMessages(room)); n != 1 {
		t.Fatalf("%d replies", n)
	}
	in.Execution, in.Kind = "exec-other", workflow.NotifyReply
	if _, err := e.h.Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if n := len(e.chat.RoomMessages(room)); n != 2 {
		t.Fatalf("%d replies after a second execution", n)
	}
}

// A host silent at reply time answers later: a short follow-up only if it
// freed the address.
func TestFollowUp(t *testing.T) {
	e := setup(t, "ja")
	check := answered(2, freed("i-0a", "web-1", "203.0.113.5"))
	check.Silent = []workflow.HostOutcome{{InstanceID: "i-0c", Host: "db-1", Status: workflow.HostSilent}}
	late := answered(3, freed("i-0a", "web-1", "203.0.113.5"), freed("i-0c", "db-1", "203.0.113.5"))
	st := workflow.State{Request: request(), Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: check, Late: late}
	for range 2 { // a retry posts nothing more
		if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyFollowUp, Execution: "exec-1", State: st}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.chat.RoomMessages(room)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Body, "先ほど応答のなかった db-1 でも、203.0.113.5 のブロックを解除しました") || strings.Contains(msgs[0].Body, "web-1") {
		t.Fatalf("follow-up %+v", msgs)
	}
	// The late host had nothing to free: no follow-up.
	st.Late = answered(3, freed("i-0a", "web-1", "203.0.113.5"))
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyFollowUp, Execution: "exec-2", State: st}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.chat.RoomMessages(room)); n != 1 {
		t.Fatalf("%d messages", n)
	}
}

func TestAlertOnce(t *testing.T) {
	e := setup(t, "ja")
	in := workflow.NotifyInput{Kind: workflow.NotifyAlert, Execution: "exec-1", State: workflow.State{
		Request: request(), Parsed: parsed(message.IntentUnban, "203.0.113.5"),
		Error: &workflow.TaskError{Error: "States.Timeout", Cause: "task timed out [To:1]"},
	}}
	for range 2 {
		if _, err := e.h.Handle(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.alerts()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Body, "States.Timeout") || !strings.Contains(msgs[0].Body, "203.0.113.5") || strings.Contains(msgs[0].Body, "[To:1]") {
		t.Fatalf("alerts %+v", msgs)
	}
	if len(e.chat.RoomMessages(room)) != 0 {
		t.Fatal("alert went to the asker's room")
	}
}

// Chatwork answering 429 and 5xx: the reply still arrives, once.
func TestChatworkHiccups(t *testing.T) {
	e := setup(t, "ja")
	e.chat.FailNext(429, 1)
	e.chat.FailNext(503, 1)
	in := workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-1", State: workflow.State{Request: request(), Parsed: parsed(message.IntentThanks)}}
	if _, err := e.h.Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if n := len(e.chat.RoomMessages(room)); n != 1 {
		t.Fatalf("%d replies", n)
	}
	// Down for good: a TransientError for the state machine's Retry, and
	// nothing recorded, so the retry posts.
	e.chat.FailNext(500, 4) // every attempt of one call
	in.Execution = "exec-2"
	_, err := e.h.Handle(context.Background(), in)
	if !taskerr.IsTransient(err) || taskerr.Name(err) != "TransientError" {
		t.Fatalf("err = %v", err)
	}
	if _, err := e.h.Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if n := len(e.chat.RoomMessages(room)); n != 2 {
		t.Fatalf("%d replies", n)
	}
}

// Ban notices: one per newly blocked entry, bounded, and quoting one parses
// back to its address.
func TestBanNotices(t *testing.T) {
	for _, locale := range []string{"ja", "en"} {
		t.Run(locale, func(t *testing.T) {
			e := setup(t, locale)
			var bans []workflow.NewBan
			for i := range 5 {
				bans = append(bans, workflow.NewBan{InstanceID: "i-0123456789abcdef0", Host: "web-1", Entry: fmt.Sprintf("192.0.2.%d", 10+i), Time: "2026-11-25T04:40:00Z"})
			}
			bans[1].Entry = "198.51.100.0/24"
			in := workflow.NotifyInput{Kind: workflow.NotifyBans, Execution: "refresh-1", NewBans: bans}
			for range 2 { // the second run is a retry: nothing new
				if _, err := e.h.Handle(context.Background(), in); err != nil {
					t.Fatal(err)
				}
			}
			msgs := e.chat.RoomMessages(banRoom)
			if len(msgs) != 4 { // 3 notices + 1 summary
				t.Fatalf("%d messages", len(msgs))
			}
			if !strings.Contains(msgs[3].Body, "192[.]0[.]2[.]13 (web-1)") || !strings.Contains(msgs[3].Body, "192[.]0[.]2[.]14 (web-1)") {
				t.Fatalf("summary %q", msgs[3].Body)
			}
			// Quoting the merged message unbans nobody (its addresses are
			// defanged): an employee among them writes their own.
			if got := message.Parse("[To:1234567]unbanbot さん\n[qt][qtmeta aid=1234567 time=1764045600]" + msgs[3].Body + "[/qt]"); len(got.Addresses) != 0 {
				t.Fatalf("quoted summary parses to %+v", got)
			}
			quote := "[To:1234567]unbanbot さん\n[qt][qtmeta aid=1234567 time=1764045600]" + msgs[0].Body + "[/qt]"
			if got := message.Parse(quote); got.Intent != message.IntentUnban || len(got.Addresses) != 1 || got.Addresses[0] != "192.0.2.10" {
				t.Fatalf("quoted notice parses to %+v\n%s", got, quote)
			}
			// A range notice asks for the user's own address instead.
			if got := message.Parse("[To:1]bot\n[qt][qtmeta aid=1 time=1764045600]" + msgs[1].Body + "[/qt]"); len(got.Addresses) != 0 {
				t.Fatalf("range notice parses to %+v", got)
			}
		})
	}
}

// An attacker hits three hosts in the same minute: one notice for the
// address names all three and the earliest time it was seen; quoting it
// unbans that address.
func TestBanNoticePerAddress(t *testing.T) {
	e := setup(t, "ja")
	bans := []workflow.NewBan{
		{InstanceID: "i-0000000000000000a", Host: "web-1", Entry: "192.0.2.66", Time: "2026-11-25T04:41:00Z"},
		{InstanceID: "i-0000000000000000b", Host: "git-1", Entry: "192.0.2.66", Time: "2026-11-25T04:40:00Z"},
		{InstanceID: "i-0000000000000000b", Host: "git-1", Entry: "198.51.100.9", Time: "2026-11-25T04:40:00Z"},
		{InstanceID: "i-0000000000000000c", Host: "db-1", Entry: "192.0.2.66", Time: "2026-11-25T04:41:00Z"},
	}
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyBans, Execution: "refresh-9", NewBans: bans}); err != nil {
		t.Fatal(err)
	}
	msgs := e.chat.RoomMessages(banRoom)
	if len(msgs) != 2 {
		t.Fatalf("%d notices, want one per address:\n%v", len(msgs), msgs)
	}
	first := msgs[0].Body
	for _, want := range []string{"192.0.2.66", "web-1 (i-0000000000000000a)", "git-1 (i-0000000000000000b)", "db-1 (i-0000000000000000c)", "2026-11-25 13:40:00 JST"} {
		if !strings.Contains(first, want) {
			t.Errorf("notice lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, "198.51.100.9") || !strings.Contains(msgs[1].Body, "198.51.100.9") {
		t.Errorf("notices mix addresses:\n%s\n---\n%s", first, msgs[1].Body)
	}
	quote := "[To:1234567]unbanbot さん\n[qt][qtmeta aid=1234567 time=1764045600]" + first + "[/qt]"
	if got := message.Parse(quote); got.Intent != message.IntentUnban || len(got.Addresses) != 1 || got.Addresses[0] != "192.0.2.66" {
		t.Fatalf("quoted notice parses to %+v", got)
	}
}

func TestInvalidInput(t *testing.T) {
	e := setup(t, "ja")
	for _, in := range []workflow.NotifyInput{
		{Kind: workflow.NotifyReply, State: workflow.State{Request: request()}},
		{Kind: workflow.NotifyReply, Execution: "x"},
		{Kind: "shout", Execution: "x", State: workflow.State{Request: request()}},
	} {
		_, err := e.h.Handle(context.Background(), in)
		if err == nil || taskerr.IsTransient(err) {
			t.Errorf("%+v: err = %v, want a permanent error", in, err)
		}
	}
	if e.chat.Requests() != 0 {
		t.Fatal("posted for invalid input")
	}
}

// Every refusal reason the parser can give has a sentence in every language.
func TestEveryRefusalExplained(t *testing.T) {
	reasons := []string{message.ReasonCIDR, message.ReasonUnspecified, message.ReasonLoopback, message.ReasonMulticast,
		message.ReasonLinkLocal, message.ReasonBroadcast, message.ReasonAmbiguous, message.ReasonOverLimit}
	for _, locale := range []string{"ja", "en"} {
		for _, r := range reasons {
			e := setup(t, locale)
			st := workflow.State{Request: request(), Parsed: &message.Result{Intent: message.IntentUnban, Addresses: []string{},
				Refused: []message.Refusal{{Text: "TEXT-" + r, Reason: r}}, Reason: r}}
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "x", State: st}); err != nil {
				t.Fatal(err)
			}
			if body := e.chat.RoomMessages(room)[0].Body; !strings.Contains(body, "TEXT-"+r) {
				t.Errorf("%s/%s: reply does not explain: %s", locale, r, body)
			}
		}
	}
}

// The asker sees "確認しています…" while the hosts work, and that same
// message becomes the answer: one message, edited, mentioning them once.
func TestProgressBecomesTheAnswer(t *testing.T) {
	e := setup(t, "ja")
	st := workflow.State{Request: request(), Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3, freed("i-0a", "web-1", "203.0.113.5"))}
	prog, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyProgress, Execution: "exec-p", State: workflow.State{Request: st.Request}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.chat.RoomMessages(room)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Body, "確認しています") || !strings.HasPrefix(msgs[0].Body, "[rp aid="+asker+" to="+room+"-") {
		t.Fatalf("after progress: %+v", msgs)
	}
	// A retried or second delivery of the asynchronous invocation.
	again, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyProgress, Execution: "exec-p", State: workflow.State{Request: st.Request}})
	if err != nil || !again.Duplicate {
		t.Fatalf("second progress: %+v %v", again, err)
	}
	res, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-p", State: st})
	if err != nil {
		t.Fatal(err)
	}
	msgs = e.chat.RoomMessages(room)
	if len(msgs) != 1 || !msgs[0].Updated || res.MessageIDs[0] != prog.MessageIDs[0] {
		t.Fatalf("want the progress message edited into the reply, got %+v (reply %v)", msgs, res.MessageIDs)
	}
	if b := msgs[0].Body; !strings.Contains(b, "web-1 でブロックを解除しました") || strings.Contains(b, "確認しています") || strings.Count(b, "[rp aid=") != 1 {
		t.Errorf("edited body: %s", b)
	}
}

// The reply came first (the progress invocation was queued late): the
// progress is never posted after the answer.
func TestLateProgressAfterTheReply(t *testing.T) {
	e := setup(t, "ja")
	st := workflow.State{Request: request(), Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3)}
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-l", State: st}); err != nil {
		t.Fatal(err)
	}
	res, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyProgress, Execution: "exec-l", State: st})
	if err != nil || len(res.MessageIDs) != 0 {
		t.Fatalf("late progress: %+v %v", res, err)
	}
	if msgs := e.chat.RoomMessages(room); len(msgs) != 1 || strings.Contains(msgs[0].Body, "確認しています") {
		t.Fatalf("messages: %+v", msgs)
	}
}

// If the edit fails (Chatwork down for PUTs, or the asker deleted the
// progress message), the answer is posted instead.
func TestFailedEditStillAnswers(t *testing.T) {
	for _, status := range []int{500, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := setup(t, "ja")
			st := workflow.State{Request: request(), Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3, freed("i-0a", "web-1", "203.0.113.5"))}
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyProgress, Execution: "exec-f", State: st}); err != nil {
				t.Fatal(err)
			}
			e.chat.FailNextOn("PUT", status, 10)
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-f", State: st}); err != nil {
				t.Fatal(err)
			}
			msgs := e.chat.RoomMessages(room)
			if len(msgs) != 2 || !strings.Contains(msgs[1].Body, "web-1 でブロックを解除しました") {
				t.Fatalf("messages: %+v", msgs)
			}
		})
	}
}

// A whole office asks at once: the first few see a progress message, the
// rest do not (the room's posts go to the merged answers), and every asker
// ends with exactly one answer, inside the room's posting limit.
func TestProgressInABurst(t *testing.T) {
	e := setup(t, "ja")
	const askers = 40
	var wg sync.WaitGroup
	reqs := make([]workflow.State, askers)
	for i := range askers {
		r := workflow.Request{RoomID: room, MessageID: fmt.Sprint(1790000000000000100 + i), AccountID: fmt.Sprint(3000000 + i)}
		reqs[i] = workflow.State{Request: r, Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3, freed("i-0a", "web-1", "203.0.113.5"))}
		wg.Go(func() {
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyProgress, Execution: fmt.Sprintf("exec-%d", i), State: reqs[i]}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	progress := len(e.chat.RoomMessages(room))
	if progress == 0 || progress > notify.DefaultRoomPosts-2 {
		t.Fatalf("%d progress messages for %d askers", progress, askers)
	}
	for i := range askers {
		wg.Go(func() {
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: fmt.Sprintf("exec-%d", i), State: reqs[i]}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mentions := map[string]int{}
	for _, m := range e.chat.RoomMessages(room) {
		if strings.Contains(m.Body, "確認しています") {
			t.Errorf("a progress message was left unanswered: %s", m.Body)
		}
		for i := range askers {
			acct := fmt.Sprint(3000000 + i)
			mentions[acct] += strings.Count(m.Body, "[To:"+acct+"]") + strings.Count(m.Body, "[rp aid="+acct+" ")
		}
	}
	for acct, n := range mentions {
		if n != 1 {
			t.Errorf("asker %s is answered %d times", acct, n)
		}
	}
	if e.chat.Refused() > 0 {
		t.Errorf("%d requests refused by Chatwork's limits", e.chat.Refused())
	}
	t.Logf("%d askers: %d progress messages, %d messages in all", askers, progress, len(e.chat.RoomMessages(room)))
}

// A ban notice says how long sshguard means to block the entry, from the
// hosts' BLOCK_TIME (Debian's default 120 s; released 0–BLOCK_TIME/2+2 s
// after its pardon time), or that a blacklisted entry stays; quoting it
// still unbans exactly that address.
func TestBanNoticeBlockLength(t *testing.T) {
	ban := func(host string, blockTime int, blacklisted bool) workflow.NewBan {
		return workflow.NewBan{InstanceID: "i-0" + host, Host: host, Entry: "192.0.2.66", Time: "2026-11-25T04:41:00Z", BlockTime: blockTime, Blacklisted: blacklisted}
	}
	tests := []struct {
		name, locale string
		bans         []workflow.NewBan
		want, not    string
	}{
		{"debian default", "ja", []workflow.NewBan{ban("web-1", 120, false)}, "ブロック期間: 初めてのブロックなら 2〜4 分で自動的に解除されます（繰り返しブロックされると、そのたびに 2 倍の長さになります）", "ブラックリスト"},
		{"debian default, english", "en", []workflow.NewBan{ban("web-1", 120, false)}, "Block length: if this is its first block, sshguard lifts it by itself in 2 to 4 minutes (each repeat block lasts twice as long)", "blacklist"},
		{"hosts differ", "ja", []workflow.NewBan{ban("web-1", 120, false), ban("git-1", 600, false)}, "2〜16 分", ""},
		{"blacklisted everywhere", "ja", []workflow.NewBan{ban("web-1", 120, true)}, "ブロック期間: ブラックリストに載っているため、自動では解除されません", "初めて"},
		{"blacklisted on one host", "en", []workflow.NewBan{ban("web-1", 120, false), ban("git-1", 120, true)}, "(blacklisted on git-1: never lifted there by itself)", ""},
		{"settings unknown", "ja", []workflow.NewBan{ban("web-1", 0, false)}, "", "ブロック期間"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.locale)
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyBans, Execution: "refresh-1", NewBans: tt.bans}); err != nil {
				t.Fatal(err)
			}
			msgs := e.chat.RoomMessages(banRoom)
			if len(msgs) != 1 {
				t.Fatalf("%d notices", len(msgs))
			}
			body := msgs[0].Body
			if !strings.Contains(body, tt.want) || (tt.not != "" && strings.Contains(body, tt.not)) {
				t.Errorf("notice:\n%s\nwant %q, not %q", body, tt.want, tt.not)
			}
			quote := "[To:1234567]unbanbot さん\n[qt][qtmeta aid=1234567 time=1764045600]" + body + "[/qt]"
			if got := message.Parse(quote); got.Intent != message.IntentUnban || len(got.Addresses) != 1 || got.Addresses[0] != "192.0.2.66" {
				t.Fatalf("quoted notice parses to %+v", got)
			}
		})
	}
}

// An attack wave: 40 new blocks in one refresh. A few notices, one merged
// message for the rest, and not one post refused by Chatwork's 10 posts per
// 10 seconds, even with replies going out in the same room meanwhile.
func TestBanWaveInsideTheRoomLimit(t *testing.T) {
	// It waits out one real room window (about 10 s).
	e := setup(t, "ja")
	cfg := e.h.Cfg
	cfg.NotifyRoomID, cfg.MaxBanNotices = room, notify.DefaultMaxBanNotices // the askers' room: replies and notices share its limit
	e.h.Cfg = cfg
	var bans []workflow.NewBan
	for i := range 40 {
		bans = append(bans, workflow.NewBan{InstanceID: "i-0a", Host: "web-1", Entry: fmt.Sprintf("198.51.100.%d", 10+i), Time: "2026-11-25T04:40:00Z", BlockTime: 120})
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r := workflow.Request{RoomID: room, MessageID: fmt.Sprint(1790000000000000500 + i), AccountID: fmt.Sprint(3100000 + i)}
			st := workflow.State{Request: r, Parsed: parsed(message.IntentUnban, fmt.Sprintf("203.0.113.%d", i)), Check: answered(3)}
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: fmt.Sprintf("exec-%d", i), State: st}); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyBans, Execution: "refresh-wave", NewBans: bans}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	notices := 0
	for _, m := range e.chat.RoomMessages(room) {
		if strings.Contains(m.Body, "sshguard が") {
			notices++
		}
	}
	if notices != notify.DefaultMaxBanNotices+1 {
		t.Errorf("%d notices for 40 blocks, want %d and one merged", notices, notify.DefaultMaxBanNotices)
	}
	if e.chat.Refused() > 0 {
		t.Errorf("%d posts refused by Chatwork's room limit", e.chat.Refused())
	}
}

// Every unban is recorded in the SRE room: who, which address, what the
// hosts did, the execution. A whole office asking at once is a few merged
// messages, not one per asker.
func TestAuditMergedInABurst(t *testing.T) {
	e := setup(t, "ja")
	cfg := e.h.Cfg
	cfg.AuditGap = notify.DefaultAuditGap
	e.h.Cfg = cfg
	const askers = 30
	var wg sync.WaitGroup
	for i := range askers {
		wg.Go(func() {
			r := workflow.Request{RoomID: room, MessageID: fmt.Sprint(1790000000000000700 + i), AccountID: fmt.Sprint(3200000 + i)}
			st := workflow.State{Request: r, Parsed: parsed(message.IntentUnban, "203.0.113.5"), Check: answered(3, freed("i-0a", "web-1", "203.0.113.5"))}
			st.Check.Freed = map[string]int{"203.0.113.5": 1}
			if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: fmt.Sprintf("exec-%d", i), State: st}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	audits := e.audits()
	lines := 0
	for _, m := range audits {
		lines += strings.Count(m.Body, "203.0.113.5 freed on 1 of 3 hosts")
	}
	if lines != askers {
		t.Errorf("%d audit lines for %d unbans", lines, askers)
	}
	if len(audits) > 5 {
		t.Errorf("%d audit messages for one burst", len(audits))
	}
	if !strings.Contains(audits[0].Body, "account 3200") || !strings.Contains(audits[0].Body, "(execution exec-") {
		t.Errorf("audit: %s", audits[0].Body)
	}
	if e.chat.Refused() > 0 {
		t.Errorf("%d posts refused", e.chat.Refused())
	}
	t.Logf("%d unbans recorded in %d SRE messages", askers, len(audits))
}

// The record says what an approved second round did.
func TestAuditBlacklistRound(t *testing.T) {
	e := setup(t, "ja")
	st := workflow.State{Request: request(), Parsed: parsed(message.IntentUnban, "198.51.100.7"),
		Check:          &workflow.CheckResult{Done: true, Targeted: 2, Answered: 2, Freed: map[string]int{"198.51.100.7": 1}, Blacklisted: map[string]int{"198.51.100.7": 1}},
		BlacklistCheck: &workflow.CheckResult{Done: true, Targeted: 2, Answered: 2, Freed: map[string]int{"198.51.100.7": 1}},
		Policy:         &workflow.PolicyResult{Decision: workflow.DecisionApprove, Reason: workflow.ReasonBlacklisted, Code: "K7QX2M"},
		Approval:       &workflow.Approval{Status: workflow.DecisionApproved, By: "9000001"}}
	if _, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: workflow.NotifyReply, Execution: "exec-bl", State: st}); err != nil {
		t.Fatal(err)
	}
	a := e.audits()
	if len(a) != 1 || !strings.Contains(a[0].Body, "198.51.100.7 removed from the blacklist on 1 of 2 hosts") || !strings.Contains(a[0].Body, "approved by 9000001") {
		t.Errorf("audit: %v", a)
	}
}
