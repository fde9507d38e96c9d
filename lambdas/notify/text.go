package notify

import (
	"fmt"
	"strings"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/workflow"
)

// lang holds every sentence the bot says, once per language. Replies are
// short: what happened, where, and what to do next.
type lang struct {
	zone *time.Location

	helpTitle, help                                            string
	thanks                                                     string
	refusedTitle, tooMany                                      string
	refusal                                                    map[string]string
	notBannedTitle, notBanned, notBannedNext                   string
	resultTitle, unblocked, wasNotBlocked, blacklistToo        string
	hostFailed, hostTimedOut, hostOffline, hostPending         string
	nothingBlocked, staleNote, tryNow, grace, partial, refresh string
	tryNowPartial                                              string
	failureTitle, failure                                      string
	alertTitle                                                 string
	banTitle, banHost, banAddress, banRange, banTime, banHowTo string
	banRangeHowTo, moreBans                                    string
}

var langs = map[string]lang{
	"ja": {
		zone:      time.FixedZone("JST", 9*60*60),
		helpTitle: "sshguard のブロック解除",
		help: "ブロックされた IP アドレスを書いてメンションしてください（例: 203.0.113.5）。\n" +
			"ボットが投稿したブロック通知を引用してメンションしても解除できます。\n" +
			"一度に 5 件まで。自分のアドレスは https://checkip.amazonaws.com などで確認できます。",
		thanks:       "どういたしまして！またいつでも呼んでください。",
		refusedTitle: "解除できるアドレスが見つかりませんでした",
		tooMany:      "一度に解除できるのは 5 件までです。アドレスを分けて送ってください。",
		refusal: map[string]string{
			message.ReasonCIDR:        "%s はアドレスの範囲です。ブロックされた 1 つのアドレスを書いてください（範囲ごとのブロックもそのアドレスで解除できます）。",
			message.ReasonUnspecified: "%s は特定のホストを指さないアドレスです。",
			message.ReasonLoopback:    "%s はループバックアドレスで、ブロックの対象になりません。",
			message.ReasonMulticast:   "%s はマルチキャストアドレスで、ブロックの対象になりません。",
			message.ReasonLinkLocal:   "%s はリンクローカルアドレスで、ブロックの対象になりません。",
			message.ReasonBroadcast:   "%s はブロードキャストアドレスで、ブロックの対象になりません。",
			message.ReasonAmbiguous:   "%s は先頭に 0 のある数字を含み、読み方があいまいです。0 を付けずに書き直してください。",
		},
		notBannedTitle: "ブロックされていません",
		notBanned:      "%s はどのホストでもブロックされていません（最新のブロック一覧で確認しました）。",
		notBannedNext:  "それでも接続できない場合は別の原因かもしれません。SRE に相談してください。",
		resultTitle:    "ブロック解除の結果",
		unblocked:      "%s: %s のブロックを解除しました",
		wasNotBlocked:  "%s: %s はブロックされていませんでした",
		blacklistToo:   "（ブラックリストからも削除）",
		hostFailed:     "%s: 解除できませんでした（%s）",
		hostTimedOut:   "%s: 時間内に応答がありませんでした",
		hostOffline:    "%s: ホストに接続できませんでした（停止中の可能性）",
		hostPending:    "%s: まだ処理中です",
		nothingBlocked: "どのホストでもブロックされていませんでした。",
		staleNote:      "ブロック一覧が古かったため、すべてのホストで確認しました。",
		tryNow:         "今すぐ接続を試してください。",
		tryNowPartial:  "解除できたホストには今すぐ接続できます。",
		grace: "解除後しばらく（ブロック時間の最大 1.5 倍）、sshguard はこのアドレスを再ブロックしません。その間に SSH の鍵や設定を確認してください。" +
			"認証の失敗が続くと、次は 2 倍の時間ブロックされます。",
		partial:       "一部のホストで解除できなかったため、SRE に連絡しました。しばらくしてからもう一度試すこともできます。",
		refresh:       "（ブロック一覧の更新に失敗しましたが、解除は完了しています。SRE に連絡しました。）",
		failureTitle:  "ブロック解除を完了できませんでした",
		failure:       "申し訳ありません。処理中にエラーが起きました。SRE に連絡しました。少し待ってからもう一度試すか、SRE に相談してください。（実行: %s）",
		alertTitle:    "unban の実行が失敗しました",
		banTitle:      "sshguard がアドレスをブロックしました",
		banHost:       "ホスト",
		banAddress:    "アドレス",
		banRange:      "アドレス範囲",
		banTime:       "時刻",
		banHowTo:      "自分のアドレスなら、このメッセージを引用してボットにメンションすると解除できます。",
		banRangeHowTo: "この範囲に自分のアドレスが含まれる場合は、自分のアドレスを書いてボットにメンションしてください。",
		moreBans:      "ほかに %d 件のブロックがありました（%s）。",
	},
	"en": {
		zone:      time.UTC,
		helpTitle: "Unblocking sshguard bans",
		help: "Mention me with the blocked IP address (e.g. 203.0.113.5).\n" +
			"You can also quote one of my ban notifications and mention me.\n" +
			"Up to 5 addresses at a time. https://checkip.amazonaws.com shows your address.",
		thanks:       "You're welcome! Call me any time.",
		refusedTitle: "No address I can unblock",
		tooMany:      "I can unblock up to 5 addresses at a time. Please send them in smaller groups.",
		refusal: map[string]string{
			message.ReasonCIDR:        "%s is an address range. Please send the one blocked address (a blocked range is released through any address in it).",
			message.ReasonUnspecified: "%s does not name a host.",
			message.ReasonLoopback:    "%s is a loopback address; sshguard never blocks it.",
			message.ReasonMulticast:   "%s is a multicast address; sshguard never blocks it.",
			message.ReasonLinkLocal:   "%s is a link-local address; sshguard never blocks it.",
			message.ReasonBroadcast:   "%s is a broadcast address; sshguard never blocks it.",
			message.ReasonAmbiguous:   "%s has a number with a leading zero, which can be read two ways. Please write it without leading zeros.",
		},
		notBannedTitle: "Not blocked",
		notBanned:      "%s is not blocked on any host (checked against the current block lists).",
		notBannedNext:  "If you still cannot connect, something else is wrong: please ask the SRE team.",
		resultTitle:    "Unblock result",
		unblocked:      "%s: unblocked %s",
		wasNotBlocked:  "%s: %s was not blocked",
		blacklistToo:   " (also removed from the blacklist)",
		hostFailed:     "%s: could not unblock (%s)",
		hostTimedOut:   "%s: did not answer in time",
		hostOffline:    "%s: unreachable (it may be stopped)",
		hostPending:    "%s: still working",
		nothingBlocked: "No host was blocking it.",
		staleNote:      "The block lists were out of date, so I checked every host.",
		tryNow:         "Please try to connect now.",
		tryNowPartial:  "You can connect to the unblocked hosts now.",
		grace: "For a while (up to 1.5 × the block time) sshguard will not block this address again: use it to check your SSH key and settings. " +
			"If failures go on, the next block lasts twice as long.",
		partial:       "Some hosts could not be unblocked, so I have told the SRE team. You can also try again in a few minutes.",
		refresh:       "(Refreshing the block lists failed, but the unblock is done. The SRE team has been told.)",
		failureTitle:  "Could not finish the unblock",
		failure:       "Sorry, something went wrong. I have told the SRE team. Please try again in a few minutes or ask them. (execution: %s)",
		alertTitle:    "An unban execution failed",
		banTitle:      "sshguard blocked an address",
		banHost:       "Host",
		banAddress:    "Address",
		banRange:      "Address range",
		banTime:       "Time",
		banHowTo:      "If this is your address, quote this message and mention me to unblock it.",
		banRangeHowTo: "If your address is in this range, mention me with your address.",
		moreBans:      "%d more blocks (%s).",
	},
}

func langFor(locale string) lang {
	if l, ok := langs[locale]; ok {
		return l
	}
	return langs["ja"]
}

// userReply composes the answer to the asker from the execution state.
// problem is true when SREs should hear about it too.
func (l lang) userReply(st workflow.State) (text string, problem bool) {
	p := st.Parsed
	switch {
	case p == nil || p.Intent == message.IntentHelp:
		return chatwork.Info(l.helpTitle, l.help), false
	case p.Intent == message.IntentThanks:
		return l.thanks, false
	case len(p.Addresses) == 0:
		return chatwork.Info(l.refusedTitle, l.refusals(p)), false
	case st.Lookup != nil && st.Lookup.Action == workflow.ActionNotBanned:
		return chatwork.Info(l.notBannedTitle, fmt.Sprintf(l.notBanned, strings.Join(p.Addresses, ", "))+"\n"+l.notBannedNext), false
	}
	return l.result(st)
}

func (l lang) refusals(p *message.Result) string {
	if p.Reason == message.ReasonTooMany {
		return l.tooMany
	}
	var lines []string
	for _, r := range p.Refused {
		if f, ok := l.refusal[r.Reason]; ok {
			lines = append(lines, fmt.Sprintf(f, chatwork.Escape(r.Text)))
		}
	}
	if len(lines) == 0 {
		return l.help
	}
	return strings.Join(lines, "\n") + "\n" + l.help
}

func (l lang) result(st workflow.State) (string, bool) {
	names := map[string]string{}
	if st.Lookup != nil {
		for _, t := range st.Lookup.Targets {
			names[t.InstanceID] = t.Host
		}
	}
	var lines []string
	problem, anyRemoved, reported := false, false, 0
	if st.Check != nil {
		reported = len(st.Check.Hosts)
		for _, h := range st.Check.Hosts {
			label := hostLabel(h, names)
			switch h.Status {
			case workflow.HostSucceeded:
				lines = append(lines, l.hostLines(label, h.Unban, &anyRemoved)...)
			case workflow.HostTimedOut:
				lines, problem = append(lines, fmt.Sprintf(l.hostTimedOut, label)), true
			case workflow.HostOffline:
				lines, problem = append(lines, fmt.Sprintf(l.hostOffline, label)), true
			case workflow.HostPending:
				lines, problem = append(lines, fmt.Sprintf(l.hostPending, label)), true
			default:
				lines, problem = append(lines, fmt.Sprintf(l.hostFailed, label, chatwork.Escape(detail(h)))), true
			}
		}
	}
	var b strings.Builder
	if reported == 0 {
		problem = true // an unban ran but no host reported: SREs should look
	}
	if !anyRemoved && !problem {
		b.WriteString(l.nothingBlocked + "\n")
	}
	for _, line := range lines {
		b.WriteString("・" + line + "\n")
	}
	if st.Lookup != nil && st.Lookup.Stale {
		b.WriteString(l.staleNote + "\n")
	}
	switch {
	case anyRemoved && problem:
		b.WriteString(l.tryNowPartial + "\n" + l.grace + "\n")
	case anyRemoved:
		b.WriteString(l.tryNow + "\n" + l.grace + "\n")
	}
	if problem {
		b.WriteString(l.partial + "\n")
	}
	if st.RefreshError != nil {
		b.WriteString(l.refresh + "\n")
		problem = true
	}
	return chatwork.Info(l.resultTitle, b.String()), problem
}

// hostLines lists, per address, what one host did. Hosts where the address
// was not blocked are only mentioned when nothing else is said of them.
func (l lang) hostLines(label string, u *hostreport.Unban, anyRemoved *bool) []string {
	if u == nil {
		return nil
	}
	var out []string
	for _, r := range u.Results {
		if !r.WasBlocked {
			continue
		}
		*anyRemoved = true
		line := fmt.Sprintf(l.unblocked, label, strings.Join(r.Removed, ", "))
		if r.BlacklistRemoved {
			line += l.blacklistToo
		}
		out = append(out, line)
	}
	return out
}

func hostLabel(h workflow.HostOutcome, names map[string]string) string {
	name := h.Host
	if name == "" && h.Unban != nil {
		name = h.Unban.Host
	}
	if name == "" {
		name = names[h.InstanceID]
	}
	if name == "" {
		return h.InstanceID
	}
	return chatwork.Escape(name) + " (" + h.InstanceID + ")"
}

func detail(h workflow.HostOutcome) string {
	if h.Unban != nil && h.Unban.Error != "" {
		return h.Unban.Error
	}
	if h.Detail != "" {
		return h.Detail
	}
	return h.Status
}

// alert is the SRE room's message about an execution.
func (l lang) alert(execution string, st workflow.State, why string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "execution: %s\n", execution)
	if st.Request.RoomID != "" {
		fmt.Fprintf(&b, "asker: account %s in room %s (message %s)\n", st.Request.AccountID, st.Request.RoomID, st.Request.MessageID)
	}
	if st.Parsed != nil && len(st.Parsed.Addresses) > 0 {
		fmt.Fprintf(&b, "addresses: %s\n", strings.Join(st.Parsed.Addresses, ", "))
	}
	b.WriteString(chatwork.Escape(why))
	return chatwork.Info(l.alertTitle, b.String())
}

// banNotice announces one new block. Quoting it and mentioning the bot must
// parse to the address: the parser test in this package checks that.
func (l lang) banNotice(b workflow.NewBan) string {
	t, err := time.Parse(time.RFC3339, b.Time)
	if err != nil {
		t = time.Now()
	}
	host := chatwork.Escape(b.Host) + " (" + b.InstanceID + ")"
	when := t.In(l.zone).Format("2006-01-02 15:04:05 MST")
	if strings.Contains(b.Entry, "/") {
		return chatwork.Info(l.banTitle, fmt.Sprintf("%s: %s\n%s: %s\n%s: %s\n%s", l.banHost, host, l.banRange, b.Entry, l.banTime, when, l.banRangeHowTo))
	}
	return chatwork.Info(l.banTitle, fmt.Sprintf("%s: %s\n%s: %s\n%s: %s\n%s", l.banHost, host, l.banAddress, b.Entry, l.banTime, when, l.banHowTo))
}
