package system

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sshguard-unban/shared/pagelink"
)

// The local API serves the pages next to the webhook, through the same
// API Gateway adapter and Lambda pool: an SRE asks the bot for the list in
// the SRE room and opens the link it posts; the link the terminal mints
// (PageLink) opens too; an expired one and a bare visit get 403; /ip says
// the caller's address.
func TestLocalPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := start(t, ctx, Options{Simulate: true, Locale: "en"})
	if err := s.Hosts[0].Attack(ctx, "203.0.113.5"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// A request, so the history has something.
	_, id, err := s.Say(ctx, "3000001", "203.0.113.5")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplyTo(ctx, id); err != nil {
		t.Fatal(err)
	}

	status, mid, err := s.SayIn(ctx, SRERoomID, SREAccountID, "一覧")
	if err != nil || status != 200 {
		t.Fatalf("webhook %d %v", status, err)
	}
	if x, err := s.WaitExecution(ctx, "chatwork-"+SRERoomID+"-"+mid); err != nil || x.Status != "SUCCEEDED" {
		t.Fatalf("list execution: %+v %v", x, err)
	}
	var link string
	for _, m := range s.Chat.RoomMessages(SRERoomID) {
		if i := strings.Index(m.Body, s.PublicURL+"bans?"); i >= 0 {
			link = strings.TrimSuffix(strings.Fields(m.Body[i:])[0], "[/info]")
		}
	}
	if link == "" {
		t.Fatalf("no link in the SRE room: %+v", s.Chat.RoomMessages(SRERoomID))
	}
	minted, err := s.PageLink(SREAccountID, pagelink.Lifetime)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := s.PageLink(SREAccountID, -time.Minute)
	for _, l := range []string{link, minted} {
		code, body := fetch(t, ctx, l, "text/html")
		if code != 200 || !strings.Contains(body, "web-1") || !strings.Contains(body, "203.0.113.5") || !strings.Contains(body, "unblocked") {
			t.Fatalf("%s: %d\n%s", l, code, body)
		}
	}
	for _, l := range []string{expired, s.PublicURL + "bans", strings.Replace(minted, "a="+SREAccountID, "a=3000001", 1)} {
		if code, body := fetch(t, ctx, l, "text/html"); code != 403 || body != "Forbidden\n" {
			t.Errorf("%s: %d %q", l, code, body)
		}
	}
	if code, body := fetch(t, ctx, s.PublicURL+"ip", "*/*"); code != 200 || body != "127.0.0.1\n" {
		t.Errorf("/ip: %d %q", code, body)
	}
	if code, body := fetch(t, ctx, s.PublicURL+"ip", "text/html"); code != 200 || !strings.Contains(body, `value="127.0.0.1"`) {
		t.Errorf("/ip page: %d %q", code, body)
	}
}

func fetch(t *testing.T, ctx context.Context, u, accept string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	resp, err := localClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
