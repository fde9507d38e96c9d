package notify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
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

func setup(t *testing.T, locale string) env {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	s3srv := httptest.NewServer(s3local.New("bucket"))
	t.Cleanup(s3srv.Close)
	chat := chatworkfake.New(apiToken)
	chatSrv := httptest.NewServer(chat)
	t.Cleanup(chatSrv.Close)
	client := &chatwork.Client{
		BaseURL:     chatSrv.URL + chatworkfake.BasePath,
		Token:       func(context.Context) (string, error) { return apiToken, nil },
		Sleep:       func(context.Context, time.Duration) error { return nil },
		MaxAttempts: 4,
	}
	cfg := notify.Config{NotifyRoomID: banRoom, SRERoomID: sreRoom, Locale: locale, MarkPrefix: "replies/", MaxBanNotices: 3}
	h := notify.New(client, notify.S3Marks{Client: s3local.NewClient(s3srv.URL), Bucket: "bucket"}, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return env{h: h, chat: chat}
}

func request() workflow.Request {
	return workflow.Request{RoomID: room, MessageID: "1790000000000000000", AccountID: asker, Body: "[To:1]bot\n203.0.113.5"}
}

func parsed(intent message.Intent, addrs ...string) *message.Result {
	return &message.Result{Intent: intent, Addresses: append([]string{}, addrs...)}
}

func unbanned(inst, host, addr string, removed ...string) workflow.HostOutcome {
	return workflow.HostOutcome{InstanceID: inst, Host: host, Status: workflow.HostSucceeded, Unban: &hostreport.Unban{
		Host: host, Backend: "nft-sets",
		Results: []hostreport.AddressResult{{Address: addr, WasBlocked: len(removed) > 0, Removed: removed}},
	}}
}

func TestReplies(t *testing.T) {
	tests := []struct {
		name      string
		locale    string
		kind      string
		state     workflow.State
		want      []string // substrings of the user reply
		wantNot   []string
		wantAlert bool
	}{
		{name: "help", kind: workflow.NotifyReply, state: workflow.State{Parsed: parsed(message.IntentHelp)}, want: []string{"[info][title]sshguard のブロック解除", "例: 203.0.113.5"}},
		{name: "thanks", kind: workflow.NotifyReply, state: workflow.State{Parsed: parsed(message.IntentThanks)}, want: []string{"どういたしまして"}, wantNot: []string{"[info]"}},
		{name: "refused prefix", kind: workflow.NotifyReply, state: workflow.State{Parsed: &message.Result{Intent: message.IntentUnban, Addresses: []string{}, Refused: []message.Refusal{{Text: "192.0.2.0/24", Reason: message.ReasonCIDR}}, Reason: message.ReasonCIDR}}, want: []string{"192.0.2.0/24 はアドレスの範囲です"}},
		{name: "too many", kind: workflow.NotifyReply, state: workflow.State{Parsed: &message.Result{Intent: message.IntentUnban, Addresses: []string{}, Reason: message.ReasonTooMany}}, want: []string{"5 件まで"}},
		{name: "not banned", kind: workflow.NotifyReply, state: workflow.State{Parsed: parsed(message.IntentUnban, "203.0.113.5"), Lookup: &workflow.LookupResult{Action: workflow.ActionNotBanned}}, want: []string{"203.0.113.5 はどのホストでもブロックされていません", "SRE に相談"}},
		{name: "unblocked on two hosts", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Lookup: &workflow.LookupResult{Action: workflow.ActionUnban},
			Check: &workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{
				unbanned("i-0a", "web-1", "203.0.113.5", "203.0.113.5"),
				unbanned("i-0b", "git-1", "203.0.113.5", "203.0.113.0/24"),
			}},
		}, want: []string{"web-1 (i-0a): 203.0.113.5 のブロックを解除しました", "git-1 (i-0b): 203.0.113.0/24 のブロックを解除", "今すぐ接続", "1.5 倍"}, wantNot: []string{"SRE に連絡"}},
		{name: "partial: one host offline alerts SREs", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Lookup: &workflow.LookupResult{Action: workflow.ActionUnban},
			Check: &workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{
				unbanned("i-0a", "web-1", "203.0.113.5", "203.0.113.5"),
				{InstanceID: "i-0c", Status: workflow.HostOffline},
			}},
		}, want: []string{"web-1 (i-0a): 203.0.113.5 のブロックを解除", "i-0c: ホストに接続できませんでした", "SRE に連絡", "解除できたホストには今すぐ接続できます"}, wantNot: []string{"今すぐ接続を試してください"}, wantAlert: true},
		{name: "stale lists, nothing blocked anywhere", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Lookup: &workflow.LookupResult{Action: workflow.ActionUnban, Stale: true, AllHosts: true},
			Check:  &workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{unbanned("i-0a", "web-1", "203.0.113.5")}},
		}, want: []string{"どのホストでもブロックされていませんでした", "すべてのホストで確認"}, wantNot: []string{"今すぐ接続"}},
		{name: "refresh failed after unban", kind: workflow.NotifyReply, state: workflow.State{
			Parsed:       parsed(message.IntentUnban, "203.0.113.5"),
			Check:        &workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{unbanned("i-0a", "web-1", "203.0.113.5", "203.0.113.5")}},
			RefreshError: &workflow.TaskError{Error: "TransientError", Cause: "s3 down"},
		}, want: []string{"解除は完了しています"}, wantAlert: true},
		{name: "host name with markup is escaped", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "203.0.113.5"),
			Check:  &workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{unbanned("i-0a", "[To:1]evil", "203.0.113.5", "203.0.113.5")}},
		}, want: []string{"［To:1］evil"}, wantNot: []string{"[To:1]evil"}},
		{name: "failure", kind: workflow.NotifyFailure, state: workflow.State{Parsed: parsed(message.IntentUnban, "203.0.113.5")}, want: []string{"申し訳ありません", "exec-1"}},
		{name: "english result", locale: "en", kind: workflow.NotifyReply, state: workflow.State{
			Parsed: parsed(message.IntentUnban, "2001:db8::1"),
			Check:  &workflow.CheckResult{Done: true, Hosts: []workflow.HostOutcome{unbanned("i-0a", "web-1", "2001:db8::1", "2001:db8::1")}},
		}, want: []string{"web-1 (i-0a): unblocked 2001:db8::1", "try to connect now"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.locale)
			st := tt.state
			st.Request = request()
			res, err := e.h.Handle(context.Background(), workflow.NotifyInput{Kind: tt.kind, Execution: "exec-1", State: st})
			if err != nil {
				t.Fatal(err)
			}
			msgs := e.chat.RoomMessages(room)
			if len(msgs) != 1 || res.Duplicate || len(res.MessageIDs) != 1 || res.MessageIDs[0] != msgs[0].MessageID {
				t.Fatalf("room messages %+v, result %+v", msgs, res)
			}
			body := msgs[0].Body
			if !strings.HasPrefix(body, "[rp aid="+asker+" to="+room+"-1790000000000000000]") {
				t.Fatalf("reply does not notify the asker: %q", body)
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
			if got := len(e.chat.RoomMessages(sreRoom)); got != map[bool]int{true: 1, false: 0}[tt.wantAlert] {
				t.Errorf("%d SRE alerts, want alert=%v", got, tt.wantAlert)
			}
		})
	}
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
	// A different execution answers again.
	in.Execution, in.Kind = "exec-other", workflow.NotifyReply
	if _, err := e.h.Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if n := len(e.chat.RoomMessages(room)); n != 2 {
		t.Fatalf("%d replies after a second execution", n)
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
	msgs := e.chat.RoomMessages(sreRoom)
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

// Ban notices: one per new block, bounded, and quoting one parses back to
// its address.
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
			if !strings.Contains(msgs[3].Body, "192.0.2.13") || !strings.Contains(msgs[3].Body, "192.0.2.14") {
				t.Fatalf("summary %q", msgs[3].Body)
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
		message.ReasonLinkLocal, message.ReasonBroadcast, message.ReasonAmbiguous}
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
