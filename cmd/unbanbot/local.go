package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"sshguard-unban/host/lab"
	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/local/chatworkfake"
	"sshguard-unban/local/latency"
	"sshguard-unban/local/system"
	"sshguard-unban/shared/pagelink"
)

// employee is the account the terminal speaks as.
const employee = "3000001"

// demoAddress is blocked on two of the three hosts at start, so there is
// something to unban right away.
const demoAddress = "203.0.113.5"

func runLocal(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.String("once", "", "send this one message, print the bot's reply and exit (0 only if a reply came)")
	attack := fs.Duration("attack", 0, "every this often, a random host is attacked by a random address (e.g. 20s); 0: no attacks")
	refreshEvery := fs.Duration("refresh-every", 15*time.Second, "how often the refresh state machine runs (the schedule)")
	simulate := fs.Bool("simulate", false, "use simulated hosts even where real sshguard hosts could run")
	locale := fs.String("locale", "ja", "reply language: ja or en")
	seed := fs.Bool("seed", true, "block "+demoAddress+" on two hosts at start")
	logFile := fs.String("log", "", "write the components' JSON logs to this file")
	timeout := fs.Duration("timeout", 60*time.Second, "with --once: how long to wait for the reply")
	latencyModel := fs.String("latency", "none", "latency model of the local endpoints: none, or aws (production timings, local/latency)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *locale != "ja" && *locale != "en" {
		fmt.Fprintf(stderr, "unbanbot local: --locale %q: the bot speaks ja or en\n", *locale)
		return 2
	}
	profile, ok := latency.Profiles[*latencyModel]
	if !ok {
		fmt.Fprintf(stderr, "unbanbot local: --latency %q: want none or aws\n", *latencyModel)
		return 2
	}
	var lat *latency.Profile
	if *latencyModel != "none" {
		lat = &profile
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var logOut io.Writer
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			fmt.Fprintln(stderr, "unbanbot local:", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stdout, format, a...)
	}
	// Messages arrive while someone may be typing: on a terminal, clear the
	// prompt line, print the message, and give the prompt back.
	interactive := isTerminal(stdout) && *once == ""
	sayAsync := func(format string, a ...any) {
		if !interactive {
			say(format, a...)
			return
		}
		say("\r\033[K"+format+"> ", a...)
	}

	fmt.Fprintln(stderr, "starting the local system (S3, SSM, Step Functions, Secrets Manager and Chatwork endpoints on 127.0.0.1)…")
	// The local policy, with one range SREs keep for themselves, so that
	// an approval round trip can be seen: /attack 192.0.2.200, ask for it,
	// then /sre approve CODE.
	pol := system.LocalPolicy()
	pol.NeverSelfService = []string{NeverSelfServiceDemo}
	sys, err := system.Start(ctx, system.Options{
		Simulate: *simulate, Locale: *locale, Log: logOut, Latency: lat, Policy: &pol,
		OnMessage: func(m chatworkfake.Message) { sayAsync("%s\n", renderMessage(m)) },
	})
	if err != nil {
		fmt.Fprintln(stderr, "unbanbot local:", err)
		return 1
	}
	defer sys.Close()

	say("\nHosts (tagged %s=%s):\n", system.TagKey, system.TagValue)
	for _, h := range sys.Hosts {
		say("  %s\n", h.Label())
	}
	if sys.Simulated {
		say("  NOTE: hosts are SIMULATED (%s). Run as root with sshguard installed for real ones.\n", sys.SimulateWhy)
	}
	say("Webhook: %s   AWS endpoint: %s   Chatwork API: %s\n", sys.WebhookURL, sys.AWSURL, sys.ChatURL)
	say("Pages: %sip (your address), %sbans (the ban list: /page prints a link)\n", sys.PublicURL, sys.PublicURL)
	say("Webhook token (for unbanbot sign --token): %s\n", sys.WebhookToken())
	if lat != nil {
		say("Latency model: %s (every endpoint takes the time its production counterpart would)\n", lat.Name)
	}
	say("\n")

	// The schedule's first run stores every host's list (a host's first
	// list announces nothing); the seed block comes after it, so the next
	// run announces it in the ban-notification room and /quote has a
	// notice to quote at once.
	refresh := func(what string) bool {
		if ex, err := sys.Refresh(ctx); err != nil || ex.Status != "SUCCEEDED" {
			fmt.Fprintf(stderr, "unbanbot local: %s: %v %s %s\n", what, err, ex.Error, ex.Cause)
			return false
		}
		return true
	}
	if !refresh("first refresh") {
		return 1
	}
	if *seed {
		for _, h := range sys.Hosts[:2] {
			if err := h.Attack(ctx, demoAddress); err != nil {
				fmt.Fprintln(stderr, "unbanbot local: seed attack:", err)
				return 1
			}
		}
		say("sshguard on %s and %s blocked %s (fake failed logins).\n", sys.Hosts[0].Name, sys.Hosts[1].Name, demoAddress)
		if !refresh("refresh after the seed") {
			return 1
		}
	}

	bg, cancelBG := context.WithCancel(ctx)
	defer cancelBG()
	go every(bg, *refreshEvery, func() {
		if ex, err := sys.Refresh(bg); err != nil && bg.Err() == nil {
			sayAsync("(refresh failed: %v)\n", err)
		} else if ex.Status != "SUCCEEDED" && bg.Err() == nil {
			sayAsync("(refresh %s: %s)\n", ex.Status, ex.Error)
		}
	})
	if *attack > 0 {
		go every(bg, *attack, func() { randomAttack(bg, sys, sayAsync) })
	}

	if *once != "" {
		return sendOnce(ctx, sys, *once, *timeout, say, stderr)
	}
	return repl(ctx, sys, stdin, say)
}

func sendOnce(ctx context.Context, sys *system.System, text string, timeout time.Duration, say func(string, ...any), stderr io.Writer) int {
	say("%s\n", renderYou(text))
	status, id, err := sys.Say(ctx, employee, text)
	if err != nil || status != 200 {
		fmt.Fprintf(stderr, "unbanbot local: webhook answered %d: %v\n", status, err)
		return 1
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := sys.ReplyTo(wctx, id); err != nil {
		fmt.Fprintln(stderr, "unbanbot local:", err)
		return 1
	}
	printHosts(ctx, sys, say)
	return 0
}

// NeverSelfServiceDemo is the terminal's range that always needs an SRE's
// approval.
const NeverSelfServiceDemo = "192.0.2.128/25"

var replHelp = `Type a message to the bot as an employee (e.g. "203.0.113.5", "ありがとう", "help");
end a line with \ to go on on the next one.
Commands: /quote (quote the latest ban notification), /attack ADDRESS [HOST], /down HOST, /up HOST,
/as ACCOUNT (speak as another employee; ` + system.GuestAccountID + ` is a guest from another company),
/sre TEXT (the SRE ` + system.SREAccountID + ` says TEXT in the SRE room, e.g. "approve CODE"; addresses in
` + NeverSelfServiceDemo + ` need that; "/sre 一覧" asks for the ban-list page), /page (a link to the ban-list page
for the SRE, valid 15 minutes), /hosts, /refresh, /quit`

func repl(ctx context.Context, sys *system.System, stdin io.Reader, say func(string, ...any)) int {
	say("%s\n> ", replHelp)
	account := employee
	var pending []string // lines of a message continued with a trailing \
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return 0
		case line, ok = <-lines:
			if !ok {
				return 0
			}
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending = append(pending, cont)
			say("… ")
			continue
		}
		if len(pending) > 0 {
			line = strings.Join(append(pending, line), "\n")
			pending = nil
			send(ctx, sys, account, line, say)
			say("> ")
			continue
		}
		line = strings.TrimSpace(line)
		fields := strings.Fields(line)
		switch {
		case line == "":
		case line == "/quit" || line == "/exit":
			return 0
		case line == "/hosts":
			printHosts(ctx, sys, say)
		case line == "/page":
			link, err := sys.PageLink(system.SREAccountID, pagelink.Lifetime)
			if err != nil {
				say("no link: %v\n", err)
				break
			}
			say("ban-list page for the SRE (account %s), valid %v:\n  %s\nyour address as the API sees it: %sip\n", system.SREAccountID, pagelink.Lifetime, link, sys.PublicURL)
		case line == "/refresh":
			if ex, err := sys.Refresh(ctx); err != nil {
				say("refresh failed: %v\n", err)
			} else {
				say("refresh: %s\n", ex.Status)
			}
		case fields[0] == "/attack" && len(fields) >= 2:
			hosts := sys.Hosts
			if len(fields) > 2 {
				h := sys.HostByName(fields[2])
				if h == nil {
					say("no host %q (the hosts are %s)\n", fields[2], hostNames(sys))
					break
				}
				hosts = []*system.Host{h}
			}
			if _, err := netip.ParseAddr(fields[1]); err != nil {
				say("%q is not an IP address\n", fields[1])
				break
			}
			for _, h := range hosts {
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := h.Attack(actx, fields[1])
				cancel()
				switch {
				case errors.Is(err, lab.ErrStillCounted):
					say("sshguard on %s did not block %s: it still counts it as blocked since the unban and ignores its failed logins until its own timer ends.\n", h.Name, fields[1])
				case err != nil:
					say("sshguard on %s did not block %s: %s\n", h.Name, fields[1], firstLine(err.Error()))
				default:
					say("sshguard on %s blocked %s.\n", h.Name, fields[1])
				}
			}
		case (fields[0] == "/down" || fields[0] == "/up") && len(fields) == 2:
			h := sys.HostByName(fields[1])
			if h == nil {
				say("no host %q (the hosts are %s)\n", fields[1], hostNames(sys))
				break
			}
			sys.SetAgentConnected(h, fields[0] == "/up")
			if fields[0] == "/down" {
				say("%s's SSM agent is disconnected: SSM reports it ConnectionLost and its commands wait (until /up or their timeout).\n", h.Name)
			} else {
				say("%s's SSM agent is back: it runs the commands that waited.\n", h.Name)
			}
		case fields[0] == "/as" && len(fields) == 2:
			if !digitsOnly(fields[1]) {
				say("an account id is digits, like 3000002\n")
				break
			}
			account = fields[1]
			say("you are now account %s\n", account)
		case fields[0] == "/sre" && len(fields) > 1:
			text := strings.TrimSpace(strings.TrimPrefix(line, "/sre"))
			say("%s\n", renderYouIn(system.SRERoomID, system.SREAccountID, text))
			status, id, err := sys.SayIn(ctx, system.SRERoomID, system.SREAccountID, text)
			if err != nil || status != 200 {
				say("webhook answered %d %v\n", status, err)
				break
			}
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			_, err = sys.WaitExecution(wctx, webhook.ExecutionName(system.SRERoomID, id))
			cancel()
			if err != nil {
				say("%v\n", err)
			}
		case line == "/quote":
			notices := sys.Chat.RoomMessages(system.NotifyRoomID)
			if len(notices) == 0 {
				say("no ban notification yet\n")
				break
			}
			n := notices[len(notices)-1]
			text := fmt.Sprintf("[qt][qtmeta aid=%s time=%d]%s[/qt]", system.BotAccountID, n.Time.Unix(), n.Body)
			send(ctx, sys, account, text, say)
		case strings.HasPrefix(line, "/"):
			say("%s\n", replHelp)
		default:
			send(ctx, sys, account, line, say)
		}
		say("> ")
	}
}

func send(ctx context.Context, sys *system.System, account, text string, say func(string, ...any)) {
	say("%s\n", renderYouAs(account, text))
	status, id, err := sys.Say(ctx, account, text)
	if err != nil || status != 200 {
		say("webhook answered %d %v\n", status, err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := sys.ReplyTo(wctx, id); err != nil {
		say("%v\n", err)
	}
}

func printHosts(ctx context.Context, sys *system.System, say func(string, ...any)) {
	for _, h := range sys.Hosts {
		blocked, err := h.Blocked(ctx)
		if err != nil {
			say("  %s: %v\n", h.Label(), err)
			continue
		}
		if len(blocked) == 0 {
			blocked = []string{"(nothing)"}
		}
		say("  %s blocks: %s\n", h.Label(), strings.Join(blocked, ", "))
	}
}

var attackCounter int

func randomAttack(ctx context.Context, sys *system.System, say func(string, ...any)) {
	attackCounter++
	h := sys.Hosts[attackCounter%len(sys.Hosts)]
	addr := fmt.Sprintf("198.51.100.%d", 10+attackCounter%200)
	if err := h.Attack(ctx, addr); err != nil && !errors.Is(err, context.Canceled) {
		say("(attack on %s failed: %v)\n", h.Name, err)
		return
	}
	say("(sshguard on %s blocked %s after failed logins)\n", h.Name, addr)
}

func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

var roomNames = map[string]string{
	system.AskRoomID:    "unban-requests",
	system.NotifyRoomID: "ban-notifications",
	system.SRERoomID:    "sre",
}

var (
	tagRE   = regexp.MustCompile(`\[(rp|To|qtmeta)[^\]]*\]`)
	titleRE = regexp.MustCompile(`\[info\]\[title\](.*?)\[/title\]`)
)

// renderMessage shows a bot message the way Chatwork roughly would.
func renderMessage(m chatworkfake.Message) string {
	body := tagRE.ReplaceAllString(m.Body, "")
	body = titleRE.ReplaceAllString(body, "┌─ $1\n")
	body = strings.NewReplacer("[info]", "┌─\n", "[/info]", "\n└─", "[qt]", "> ", "[/qt]", "").Replace(body)
	var b strings.Builder
	edited := ""
	if m.Updated {
		edited = " (edited)"
	}
	fmt.Fprintf(&b, "[%s] bot%s:\n", roomNames[m.RoomID], edited)
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if !strings.HasPrefix(line, "┌") && !strings.HasPrefix(line, "└") {
			line = "│ " + line
		}
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

func renderYou(text string) string { return renderYouAs(employee, text) }

func renderYouAs(account, text string) string { return renderYouIn(system.AskRoomID, account, text) }

func renderYouIn(room, account, text string) string {
	return fmt.Sprintf("[%s] you (account %s) → [To:%s] unbanbot: %s", roomNames[room], account, system.BotAccountID, text)
}

// isTerminal reports whether w is a terminal (not a pipe or a file).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func hostNames(sys *system.System) string {
	var names []string
	for _, h := range sys.Hosts {
		names = append(names, h.Name)
	}
	return strings.Join(names, ", ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}

func digitsOnly(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
