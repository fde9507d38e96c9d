package system

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/lambdas/notify"
	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/sfnrunner"
)

// Issue 11 as people meet it: a guest from a partner company, an address
// SREs keep for themselves, an SRE who approves, declines or is away, an
// employee past their quota, an attacker quoted with "keep it blocked", and
// a replayed capture. Real sshguard on every host.

const (
	jaGuest        = "このボットでブロックを解除できるのは社内のアカウントの方のみです"
	jaWaiting      = "[title]SRE の承認をお待ちください[/title]"
	jaApprovedBy   = "SRE（アカウント " + SREAccountID + "）の承認のうえ解除しました。"
	jaDeclined     = "[title]解除を見送りました[/title]"
	jaExpired      = "時間内に SRE の承認が得られなかったため"
	jaKeep         = "[title]ブロックはそのままです[/title]"
	jaRetryWithout = "承認なしで再度ご依頼いただけるのは"
)

// policySystem: the default policy plus one prefix (198.51.100.0/24) that
// always needs an SRE's approval.
func policySystem(t *testing.T, approvalTimeout time.Duration, edit func(*app.Policy)) (context.Context, *System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	p := localPolicy(nil)
	p.NeverSelfService = []string{"198.51.100.0/24"}
	if edit != nil {
		edit(&p)
	}
	s := startReal(t, ctx, Options{Policy: &p, ApprovalTimeout: approvalTimeout})
	refresh(t, ctx, s)
	return ctx, s
}

var approveLine = regexp.MustCompile(`approve ([A-Z0-9]{6})`)

// approvalCode waits for the SRE room's approval request for the account
// and returns its code.
func approvalCode(t *testing.T, ctx context.Context, s *System, account string) string {
	t.Helper()
	for ctx.Err() == nil {
		for _, m := range s.Chat.RoomMessages(SRERoomID) {
			if g := approveLine.FindStringSubmatch(m.Body); g != nil && strings.Contains(m.Body, "account "+account+" ") {
				return g[1]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no approval request for %s in the SRE room: %v", account, bodies(s.Chat.RoomMessages(SRERoomID)))
	return ""
}

// answersTo are the messages answering the asker's message, progress
// messages not yet turned into anything excepted.
func answersTo(s *System, account, id string) []chatworkfake.Message {
	var out []chatworkfake.Message
	for _, m := range repliesTo(s, account, id) {
		if !notify.IsProgress(m.Body) {
			out = append(out, m)
		}
	}
	return out
}

// sreSays posts in the SRE room and returns the bot's answer there.
func sreSays(t *testing.T, ctx context.Context, s *System, account, text string) chatworkfake.Message {
	t.Helper()
	status, id, err := s.SayIn(ctx, SRERoomID, account, text)
	if err != nil || status != 200 {
		t.Fatalf("webhook: %d %v", status, err)
	}
	if _, err := s.WaitExecution(ctx, webhook.ExecutionName(SRERoomID, id)); err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Chat.RoomMessages(SRERoomID) {
		if strings.Contains(m.Body, "-"+id+"]") {
			return m
		}
	}
	t.Fatalf("no answer to %q in the SRE room", text)
	return chatworkfake.Message{}
}

func TestE2EGuestIsRefused(t *testing.T) {
	ctx, s, web, _, _ := e2eSystem(t)
	const addr = "203.0.113.61"
	attack(t, ctx, map[*Host][]string{web: {addr}})
	reply, ex, _ := ask(t, ctx, s, GuestAccountID, addr+" が入れません。解除お願いします")
	if !strings.Contains(reply.Body, jaGuest) {
		t.Errorf("reply: %s", reply.Body)
	}
	if !blocking(blocks(t, ctx, web), addr) {
		t.Errorf("%s was unblocked for a guest", addr)
	}
	if n := len(unbanCommandsFor(s, addr)); n != 0 {
		t.Errorf("%d unban commands for a guest's request", n)
	}
	if a := alertsFor(s, ex.Name); len(a) != 1 || !strings.Contains(a[0].Body, "account "+GuestAccountID+" was refused (guest") {
		t.Errorf("SRE alerts: %v", bodies(a))
	}
}

func TestE2EApproval(t *testing.T) {
	const addr = "198.51.100.77"
	ask := func(t *testing.T, ctx context.Context, s *System, account string) string {
		t.Helper()
		status, id, err := s.Say(ctx, account, addr+" がブロックされています。解除をお願いします")
		if err != nil || status != 200 {
			t.Fatalf("webhook: %d %v", status, err)
		}
		return id
	}
	// Before anyone answers: the asker is told SREs were asked, and the
	// host still blocks the address.
	waiting := func(t *testing.T, ctx context.Context, s *System, h *Host, account, id string) string {
		t.Helper()
		code := approvalCode(t, ctx, s, account)
		for ctx.Err() == nil && len(answersTo(s, account, id)) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if a := answersTo(s, account, id); len(a) != 1 || !strings.Contains(a[0].Body, jaWaiting) || !strings.Contains(a[0].Body, addr) {
			t.Fatalf("while waiting, the asker has %v", bodies(a))
		}
		if !blocking(blocks(t, ctx, h), addr) {
			t.Fatalf("%s unblocked before any approval", addr)
		}
		return code
	}
	final := func(t *testing.T, ctx context.Context, s *System, account, id string) chatworkfake.Message {
		t.Helper()
		ex, err := s.WaitExecution(ctx, ExecutionName(id))
		if err != nil || ex.Status != sfnrunner.StatusSucceeded {
			t.Fatalf("execution: %+v %v", ex, err)
		}
		a := answersTo(s, account, id)
		if len(a) != 2 {
			t.Fatalf("want the waiting notice and one answer, got %v", bodies(a))
		}
		return a[1]
	}

	// begin: the address is blocked on web-1, the account asks, the
	// request waits for an SRE.
	begin := func(t *testing.T, timeout time.Duration, account string) (ctx context.Context, s *System, web *Host, id, code string) {
		ctx, s = policySystem(t, timeout, nil)
		web = s.Hosts[0]
		attack(t, ctx, map[*Host][]string{web: {addr}})
		id = ask(t, ctx, s, account)
		return ctx, s, web, id, waiting(t, ctx, s, web, account, id)
	}

	t.Run("approved", func(t *testing.T) {
		ctx, s, web, id, code := begin(t, 0, "3000501")
		// The SRE cannot approve their own request; an employee in the SRE
		// room cannot approve at all.
		if m := sreSays(t, ctx, s, "3000599", "approve "+code); !strings.Contains(m.Body, "承認・見送りができるのは SRE のみです") {
			t.Errorf("a non-SRE's approve: %s", m.Body)
		}
		if m := sreSays(t, ctx, s, SREAccountID, "承認 "+code); !strings.Contains(m.Body, "承認しました（依頼者: アカウント 3000501、アドレス: "+addr+"）") {
			t.Errorf("the SRE's answer: %s", m.Body)
		}
		reply := final(t, ctx, s, "3000501", id)
		checkFreed(t, ctx, reply, addr, web)
		if !strings.Contains(reply.Body, jaApprovedBy) {
			t.Errorf("reply: %s", reply.Body)
		}
		// A second answer to the same code says who answered first.
		if m := sreSays(t, ctx, s, SREAccountID, "deny "+code); !strings.Contains(m.Body, "すでに"+SREAccountID+" が承認済みです") {
			t.Errorf("a second answer: %s", m.Body)
		}
	})
	t.Run("an SRE's own request needs another SRE", func(t *testing.T) {
		_, s, web, _, code := begin(t, 0, SREAccountID)
		if m := sreSays(t, context.Background(), s, SREAccountID, "approve "+code); !strings.Contains(m.Body, "ご自身のご依頼は、ほかの SRE の方が承認してください") {
			t.Errorf("own approval: %s", m.Body)
		}
		if !blocking(blocks(t, context.Background(), web), addr) {
			t.Errorf("%s unblocked by its own asker's approval", addr)
		}
	})
	t.Run("declined", func(t *testing.T) {
		ctx, s, web, id, code := begin(t, 0, "3000502")
		sreSays(t, ctx, s, SREAccountID, "deny "+code)
		if reply := final(t, ctx, s, "3000502", id); !strings.Contains(reply.Body, jaDeclined) {
			t.Errorf("reply: %s", reply.Body)
		}
		if !blocking(blocks(t, ctx, web), addr) {
			t.Errorf("%s unblocked though the SRE declined", addr)
		}
	})
	t.Run("no SRE answers in time", func(t *testing.T) {
		ctx, s, web, id, code := begin(t, 3*time.Second, "3000503")
		if reply := final(t, ctx, s, "3000503", id); !strings.Contains(reply.Body, jaExpired) {
			t.Errorf("reply: %s", reply.Body)
		}
		if !blocking(blocks(t, ctx, web), addr) {
			t.Errorf("%s unblocked without an approval", addr)
		}
		if m := sreSays(t, ctx, s, SREAccountID, "approve "+code); !strings.Contains(m.Body, "期限が切れています") {
			t.Errorf("a late approval: %s", m.Body)
		}
		if !blocking(blocks(t, ctx, web), addr) {
			t.Errorf("a late approval unblocked %s", addr)
		}
	})
}

// Past the hourly quota an employee's request waits for an SRE, and they
// hear when they could ask again without one.
func TestE2EOverQuota(t *testing.T) {
	ctx, s := policySystem(t, 0, func(p *app.Policy) { p.AccountPerHour = 1 })
	web := s.Hosts[0]
	attack(t, ctx, map[*Host][]string{web: {"203.0.113.71", "203.0.113.72"}})
	first, _, _ := ask(t, ctx, s, "3000601", "203.0.113.71 お願いします")
	checkFreed(t, ctx, first, "203.0.113.71", web)
	status, id, err := s.Say(ctx, "3000601", "203.0.113.72 もお願いします")
	if err != nil || status != 200 {
		t.Fatal(status, err)
	}
	code := approvalCode(t, ctx, s, "3000601")
	for ctx.Err() == nil && len(answersTo(s, "3000601", id)) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	a := answersTo(s, "3000601", id)
	if len(a) != 1 || !strings.Contains(a[0].Body, "ご依頼の件数が上限に達しました") || !strings.Contains(a[0].Body, jaRetryWithout) {
		t.Fatalf("over the quota: %v", bodies(a))
	}
	sreSays(t, ctx, s, SREAccountID, "approve "+code)
	if _, err := s.WaitExecution(ctx, ExecutionName(id)); err != nil {
		t.Fatal(err)
	}
	if a := answersTo(s, "3000601", id); len(a) != 2 {
		t.Fatalf("answers: %v", bodies(a))
	} else {
		checkFreed(t, ctx, a[1], "203.0.113.72", web)
	}
}

// An employee quotes the ban notice of an attacker and asks to keep it
// blocked: nothing is unbanned.
func TestE2EQuotedAttackerKeptBlocked(t *testing.T) {
	ctx, s, web, _, _ := e2eSystem(t)
	const addr = "203.0.113.66"
	seen := len(s.Chat.RoomMessages(NotifyRoomID))
	attack(t, ctx, map[*Host][]string{web: {addr}})
	refresh(t, ctx, s)
	var notice chatworkfake.Message
	for _, m := range s.Chat.RoomMessages(NotifyRoomID)[seen:] {
		if strings.Contains(m.Body, "アドレス: "+addr+"\n") {
			notice = m
		}
	}
	if notice.Body == "" {
		t.Fatal("no ban notice")
	}
	quote := fmt.Sprintf("[qt][qtmeta aid=%s time=%d]%s[/qt]\nこれ攻撃ですよね？ブロックしたままにしてください", BotAccountID, notice.Time.Unix(), notice.Body)
	reply, _, _ := ask(t, ctx, s, "3000701", quote)
	if !strings.Contains(reply.Body, jaKeep) || !strings.Contains(reply.Body, addr) {
		t.Errorf("reply: %s", reply.Body)
	}
	if !blocking(blocks(t, ctx, web), addr) || len(unbanCommandsFor(s, addr)) != 0 {
		t.Errorf("the attacker was unbanned")
	}
}

// A captured delivery replayed an hour later is acknowledged and ignored.
func TestE2EReplayedCapture(t *testing.T) {
	ctx, s, web, _, _ := e2eSystem(t)
	const addr = "203.0.113.67"
	attack(t, ctx, map[*Host][]string{web: {addr}})
	old := time.Now().Add(-time.Hour).Unix()
	body := []byte(fmt.Sprintf(`{"webhook_setting_id":"1","webhook_event_type":"mention_to_me","webhook_event_time":%d,`+
		`"webhook_event":{"from_account_id":3000801,"to_account_id":%s,"room_id":%s,"message_id":"1790000000000000801",`+
		`"body":"[To:%s]unbanbot さん\n%s","send_time":%d,"update_time":0}}`, old, BotAccountID, AskRoomID, BotAccountID, addr, old))
	status, err := s.Post(ctx, body, s.Sign(body))
	if err != nil || status != 200 {
		t.Fatalf("replay answered %d %v, want 200 (acknowledged)", status, err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(unbanCommandsFor(s, addr)); n != 0 || !blocking(blocks(t, ctx, web), addr) {
		t.Errorf("a replayed capture unbanned %s (%d commands)", addr, n)
	}
	if m := repliesTo(s, "3000801", "1790000000000000801"); len(m) != 0 {
		t.Errorf("a replay was answered: %v", bodies(m))
	}
}

// An address on sshguard's blacklist on one host: the first round frees it
// elsewhere and leaves the blacklist to an SRE, who is asked; approved, a
// second round removes it from the blacklist too; declined, it stays.
func TestE2EBlacklistedNeedsApproval(t *testing.T) {
	const addr = "198.51.100.7"
	start := func(t *testing.T) (context.Context, *System, *Host, *Host) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		hosts := []HostSpec{{Name: "web-1", Backend: "nft-sets", Blacklist: true, Blacklisted: []string{addr}}, {Name: "git-1", Backend: "iptables"}}
		s := startReal(t, ctx, Options{Hosts: hosts})
		refresh(t, ctx, s)
		attack(t, ctx, map[*Host][]string{s.Hosts[1]: {addr}})
		return ctx, s, s.Hosts[0], s.Hosts[1]
	}
	run := func(t *testing.T, answer string) (*System, chatworkfake.Message, *Host, *Host, context.Context) {
		ctx, s, web, git := start(t)
		const account = "3000901"
		status, id, err := s.Say(ctx, account, addr+" お願いします")
		if err != nil || status != 200 {
			t.Fatal(status, err)
		}
		code := approvalCode(t, ctx, s, account)
		if !blocking(blocks(t, ctx, web), addr) {
			t.Fatalf("%s left the blacklist before an SRE answered", addr)
		}
		if blocking(blocks(t, ctx, git), addr) {
			t.Errorf("%s: the plain block was not freed before the approval", git.Name)
		}
		sreSays(t, ctx, s, SREAccountID, answer+" "+code)
		if _, err := s.WaitExecution(ctx, ExecutionName(id)); err != nil {
			t.Fatal(err)
		}
		a := answersTo(s, account, id)
		if len(a) != 2 || !strings.Contains(a[0].Body, "sshguard のブラックリスト（恒久的なブロック）に載っています") {
			t.Fatalf("want the waiting notice and the answer, got %v", bodies(a))
		}
		return s, a[1], web, git, ctx
	}
	t.Run("approved", func(t *testing.T) {
		_, reply, web, git, ctx := run(t, "approve")
		checkFreed(t, ctx, reply, addr, git, web)
		if !strings.Contains(reply.Body, "sshguard のブラックリストからも削除しました") {
			t.Errorf("reply: %s", reply.Body)
		}
	})
	t.Run("declined", func(t *testing.T) {
		_, reply, web, git, ctx := run(t, "deny")
		if !strings.Contains(reply.Body, addr+": "+git.Name+" でブロックを解除しました。") ||
			!strings.Contains(reply.Body, "SRE がブラックリストからの削除を見送ったため、ブロックされたままです") {
			t.Errorf("reply: %s", reply.Body)
		}
		if !blocking(blocks(t, ctx, web), addr) {
			t.Errorf("%s left the blacklist though the SRE declined", addr)
		}
	})
}

// The SRE room takes the SREs' answers, and requests only from SREs.
func TestE2ESRERoomIsForSREs(t *testing.T) {
	ctx, s, web, _, _ := e2eSystem(t)
	const addr = "203.0.113.68"
	attack(t, ctx, map[*Host][]string{web: {addr}})
	m := sreSays(t, ctx, s, "3000999", addr+" お願いします")
	if !strings.Contains(m.Body, "このルームでのご依頼は SRE の方のみ受け付けています") {
		t.Errorf("a non-SRE's request in the SRE room: %s", m.Body)
	}
	if !blocking(blocks(t, ctx, web), addr) {
		t.Errorf("%s unblocked from the SRE room by a non-SRE", addr)
	}
}
