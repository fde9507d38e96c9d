package statemachine_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/shared/pagelink"
	"sshguard-unban/shared/workflow"
)

const (
	sreAccount = "7777"
	pageKey    = "a page key for the state machine tests, 40+"
)

func listRequest(room, account, id string) []byte {
	in := struct {
		Request workflow.Request `json:"request"`
	}{workflow.Request{RoomID: room, MessageID: id, AccountID: account, Body: "[To:1000001]unbanbot さん\n一覧", SentAt: time.Now().Unix()}}
	b, _ := json.Marshal(in)
	return b
}

// An SRE says "一覧" in the SRE room: CheckPageAccess allows it and
// SendPageLink answers in the SRE room with a link signed for that SRE,
// valid 15 minutes. The link is in Chatwork only, not in the execution's
// history (its output).
func TestPageLinkBranch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	x := e.run("unban", "list-1", listRequest(sreRoom, sreAccount, "list-1"))
	if x.Status != sfnrunner.StatusSucceeded {
		t.Fatalf("%s %s %s", x.Status, x.Error, x.Cause)
	}
	msgs := e.chat.RoomMessages(sreRoom)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Body, "[rp aid="+sreAccount+" to="+sreRoom+"-list-1]") || !strings.Contains(msgs[0].Body, "15 minutes") {
		t.Fatalf("SRE room: %s", bodies(msgs))
	}
	body := msgs[0].Body
	link := strings.TrimSuffix(strings.Fields(body[strings.Index(body, "https://api.example/bans?"):])[0], "[/info]")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if acct, exp, err := pagelink.Verify([]byte(pageKey), u.Query(), time.Now()); err != nil || acct != sreAccount || time.Until(exp) > pagelink.Lifetime {
		t.Fatalf("link %q: %q %v %v", link, acct, exp, err)
	}
	if strings.Contains(string(x.Output), u.Query().Get(pagelink.ParamSig)) {
		t.Fatal("the signed link is in the execution's output")
	}
	if st := finalState(t, x); st.Policy == nil || st.Policy.Decision != workflow.DecisionAllow {
		t.Fatalf("policy %+v", st.Policy)
	}
	if n := len(e.sent(unbanDoc)); n != 0 {
		t.Fatalf("%d unban commands for a list request", n)
	}
}

// Anyone else gets a polite refusal where they asked, and no link: an
// employee in the asking room, and a non-SRE in the SRE room.
func TestPageLinkRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, threeHosts())
	for _, c := range []struct{ room, account, id string }{{askerRoom, asker, "list-2"}, {sreRoom, asker, "list-3"}} {
		x := e.run("unban", c.id, listRequest(c.room, c.account, c.id))
		if x.Status != sfnrunner.StatusSucceeded {
			t.Fatalf("%s: %s %s %s", c.id, x.Status, x.Error, x.Cause)
		}
		st := finalState(t, x)
		if st.Policy == nil || st.Policy.Decision != workflow.DecisionRefuse {
			t.Fatalf("%s: policy %+v", c.id, st.Policy)
		}
		msgs := e.chat.RoomMessages(c.room)
		last := msgs[len(msgs)-1].Body
		if !strings.Contains(last, "The ban list is for the SRE team, in the SRE room.") || strings.Contains(last, "https://") {
			t.Fatalf("%s: reply %q", c.id, last)
		}
	}
}
