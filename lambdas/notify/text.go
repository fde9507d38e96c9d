package notify

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/workflow"
)

// lang holds every sentence the bot says, once per language. Replies are
// short and specific: which address, which hosts, what happened, and what to
// do next. Japanese is polite (です/ます, お試しください); nothing internal
// (states, error types) reaches the asker.
type lang struct {
	zone *time.Location
	list func([]string) string // "web-1、git-1" / "web-1 and git-1"
	// listSome lists the first of more: "web-1, git-1 and 3 more", not
	// "web-1 and git-1 and 3 more".
	listSome func([]string) string
	sep      string // between two sentences on one line

	helpTitle, help, findAddress string
	progress                     string
	thanks                       string
	refusedTitle                 string
	refusal                      map[string]string
	dropped                      string
	keepTitle, keep, keepNone    string

	titleUnblocked, titlePartial, titleNotBlocked, titleUnknown string
	freed, notBlockedChecked, notBlockedAnswered, hostFailed    string
	hostOffline, hostTimedOut                                   string
	silent, more                                                string
	tryNow, grace, graceUnknown, notBlockedNext, privateAddress string
	serverAddress, checkedHosts                                 string
	excepted, blacklisted, stillBlocked                         string
	minutes, seconds                                            string // "%d 分"
	minutesSpan, span                                           string // "%d〜%d 分", "%s〜%s"
	merged                                                      string
	followUpText                                                string

	failureTitle, failure string

	// Policy (issue 11): refusals, approvals, SREs' answers, the audit.
	guestTitle, guest, sreRoomOnly, noApprover             string
	approvalTitle, approvalAsker, approvalSRE, retryAfter  string
	policyWhy                                              map[string]string
	approvedBy, deniedTitle, denied, expiredTitle, expired string
	decidedTitle, decidedApproved, decidedDenied           string
	blacklistApproved, blacklistDenied, blacklistExpired   string
	decideRefused, alreadyState                            map[string]string
	auditTitle                                             string
	alertTitle                                             string
	// The ban-list page (issue 13): the link, and why there is none.
	pageTitle, pageLink, pageMissing, pageRefused string
	// ipURL is where the asker sees their own address (Config.PublicURL's
	// /ip page, or checkIPURL without one); findAddress has it as its %s.
	ipURL                                                      string
	banTitle, banHost, banAddress, banRange, banTime, banHowTo string
	banRangeHowTo, moreBans, moreBansTitle                     string
	banFor, banFirst, banForever, banForeverOn                 string
}

// checkIPURL is where anyone can see the address the internet sees for
// them, for a deployment that does not know its own URL (Config.PublicURL
// empty); otherwise the service's own /ip page says it.
const checkIPURL = "https://checkip.amazonaws.com"

var langs = map[string]lang{
	"ja": {
		zone:      time.FixedZone("JST", 9*60*60),
		list:      func(s []string) string { return strings.Join(s, "、") },
		listSome:  func(s []string) string { return strings.Join(s, "、") },
		helpTitle: "sshguard のブロック解除",
		help: "ブロックされた IP アドレスを書いて、ボットにメンションしてください（例: 203.0.113.5）。\n" +
			"ボットのブロック通知を引用してメンションしても解除できます。一度に 5 件までです。",
		findAddress:  "ご自分のアドレスは %s で確認できます（VPN をお使いなら VPN を通した状態で）。",
		progress:     "確認しています…（各ホストに問い合わせています。数秒お待ちください）",
		thanks:       "どういたしまして。また何かあればいつでもどうぞ。",
		refusedTitle: "解除できるアドレスがありませんでした",
		refusal: map[string]string{
			message.ReasonCIDR:        "%s はアドレスの範囲です。ブロックされた 1 つのアドレスを書いてください（範囲ごとのブロックでも、そのアドレスだけ解除できます）。",
			message.ReasonUnspecified: "%s は特定のホストを指さないアドレスです。",
			message.ReasonLoopback:    "%s はループバックアドレスで、ブロックされることはありません。",
			message.ReasonMulticast:   "%s はマルチキャストアドレスで、ブロックされることはありません。",
			message.ReasonLinkLocal:   "%s はリンクローカルアドレスで、ブロックされることはありません。",
			message.ReasonBroadcast:   "%s はブロードキャストアドレスで、ブロックされることはありません。",
			message.ReasonAmbiguous:   "%s は先頭に 0 の付いた数字を含み、読み方が一通りに決まりません。0 を付けずに書き直してください。",
			message.ReasonOverLimit:   "%s は解除していません（一度に 5 件までのため）。お手数ですが、もう一度お送りください。",
		},
		dropped:   "ほかに %d 件はアドレスとして読み取りませんでした。",
		keepTitle: "ブロックはそのままです",
		keep:      "%s のブロックは解除していません（そのままにするようにとのことでしたので）。解除が必要になりましたら、あらためてメンションしてください。",
		keepNone:  "ブロックはそのままにします。解除が必要になりましたら、アドレスを書いてメンションしてください。",

		titleUnblocked:     "ブロックを解除しました",
		titlePartial:       "一部のホストでブロックを解除しました",
		titleNotBlocked:    "ブロックされていませんでした",
		titleUnknown:       "確認できなかったホストがあります",
		freed:              "%s: %s でブロックを解除しました。",
		notBlockedChecked:  "%s: どのホストでもブロックされていませんでした（いま %d 台すべてに確認しました）。",
		notBlockedAnswered: "%s: 応答した %d 台ではブロックされていませんでした。",
		hostFailed:         "%s では解除できませんでした。SRE に連絡しましたので、対応をお待ちください。",
		hostOffline:        "%s には接続できませんでした（停止中かもしれません）。SRE に連絡しました。",
		hostTimedOut:       "%s から時間内に応答がありませんでした。SRE に連絡しました。",
		silent:             "%s から応答がありません（停止中かもしれません）。応答があり次第、結果をお知らせします。SRE にも連絡しました。",
		more:               "%s ほか %d 台",
		tryNow:             "今すぐ接続をお試しください。",
		grace:              "ログインに %d 回失敗すると（%s以内に）、再び %s以上ブロックされます。SSH の鍵や設定をご確認のうえ接続してください。",
		graceUnknown:       "ブロックされるたびに、次のブロックは 2 倍の長さになります。SSH の鍵や設定をご確認のうえ接続してください。",
		excepted:           "%s は %s の範囲ごとのブロックに含まれていたため、このアドレスだけを %s まで除外しました（範囲のほかのアドレスはブロックされたままです）。",
		blacklisted:        "%s は %s で sshguard のブラックリスト（恒久的なブロック）に載っているため、解除していません。解除するかどうかは SRE が判断します。SRE に連絡しました。",
		stillBlocked:       "%s は %s でまだブロックされています。SRE に連絡しました。",
		minutes:            "%d 分",
		seconds:            "%d 秒",
		minutesSpan:        "%d〜%d 分",
		span:               "%s〜%s",
		notBlockedNext:     "それでも接続できない場合は、別のアドレスから接続しているのかもしれません。",
		privateAddress:     "%s はプライベートアドレスです。サーバーから見えるのはルーターや VPN の外側のアドレスなので、そちらを書いてください。",
		checkedHosts:       "いま確認したホスト: %s",
		serverAddress:      "%s は社内のサーバー（%s）のアドレスです。サーバーのアドレスではなく、接続元（お使いの端末、オフィスや VPN の出口）のアドレスを書いてください。",
		merged:             "（同じご依頼 %d 件にまとめてお答えします）",
		followUpText:       "先ほど応答のなかった %s でも、%s のブロックを解除しました。今すぐ接続をお試しください。",

		guestTitle:    "解除できませんでした",
		guest:         "申し訳ありません。このボットでブロックを解除できるのは社内のアカウントの方のみです。SRE にご相談ください（SRE にも連絡しました）。",
		approvalTitle: "SRE の承認をお待ちください",
		approvalAsker: "%s の解除には SRE の承認が必要です（理由: %s）。SRE に承認を依頼しましたので、承認され次第解除してお知らせします。%s以内にお返事がない場合もお知らせします。",
		sreRoomOnly:   "このルームでのご依頼は SRE の方のみ受け付けています。お手数ですが、いつものルームでボットにメンションしてください。",
		noApprover:    "%s の解除には SRE の承認が必要ですが（理由: %s）、承認できる SRE が設定されていません。SRE に直接ご相談ください。",
		approvalSRE:   "%s\n承認する: [To:%s] approve %s\n見送る: [To:%s] deny %s\n（%s以内）",
		retryAfter:    "承認なしで再度ご依頼いただけるのは %s 以降です。",
		policyWhy: map[string]string{
			"account_quota": "ご依頼の件数が上限に達しました",
			"address_quota": "このアドレスは今日すでに何度も解除されています",
			"never_self":    "SRE の確認が必要なアドレスです",
			"many_hosts":    "多くのホストでブロックされています",
			"blacklisted":   "sshguard のブラックリスト（恒久的なブロック）に載っています",
		},
		approvedBy:        "SRE（アカウント %s）の承認のうえ解除しました。",
		deniedTitle:       "解除を見送りました",
		denied:            "SRE が %s の解除を見送りました。詳しくは SRE にお問い合わせください。",
		expiredTitle:      "SRE の承認が得られませんでした",
		expired:           "時間内に SRE の承認が得られなかったため、%s は解除していません。お手数ですが、SRE に直接ご相談ください。",
		decidedTitle:      "承認依頼 %s",
		blacklistApproved: "SRE（アカウント %s）の承認のうえ、sshguard のブラックリストからも削除しました。",
		blacklistDenied:   "%s は %s で sshguard のブラックリストに載っており、SRE がブラックリストからの削除を見送ったため、ブロックされたままです。",
		blacklistExpired:  "%s は %s で sshguard のブラックリストに載っており、時間内に SRE の承認が得られなかったため、ブロックされたままです。SRE に直接ご相談ください。",
		decidedApproved:   "承認しました（依頼者: アカウント %s、アドレス: %s）。解除して依頼者にお知らせします。",
		decidedDenied:     "見送りました（依頼者: アカウント %s、アドレス: %s）。依頼者にお知らせします。",
		decideRefused: map[string]string{
			"not_sre":         "承認・見送りができるのは SRE のみです。",
			"own_request":     "ご自身のご依頼は、ほかの SRE の方が承認してください。",
			"not_sre_room":    "承認・見送りは SRE のルームでお願いします。",
			"no_such_code":    "コード %s の承認依頼は見つかりませんでした。",
			"already_decided": "コード %s の承認依頼は、すでに%s。",
		},
		alreadyState:  map[string]string{"approved": "%s が承認済みです", "denied": "%s が見送り済みです", "expired": "期限が切れています%s"},
		auditTitle:    "unban の記録",
		pageTitle:     "ブロック一覧",
		pageLink:      "ブロック一覧のページです。%s まで（15 分間）開けます。あなたのアカウント宛てのリンクで、開いた方は誰でも見られますので、ほかの方には共有しないでください。\n%s",
		pageMissing:   "ブロック一覧のページは、このデプロイでは設定されていません。",
		pageRefused:   "ブロック一覧は SRE の方のみ、SRE のルームでご利用いただけます。",
		failureTitle:  "ブロック解除を完了できませんでした",
		failure:       "申し訳ありません。処理中にエラーが起きたため、解除を完了できませんでした。SRE に連絡しました。数分後にもう一度お試しいただくか、SRE にご相談ください。（SRE へのお問い合わせ用の番号: %s）",
		alertTitle:    "unban の実行で問題がありました",
		banTitle:      "sshguard がアドレスをブロックしました",
		banHost:       "ホスト",
		banAddress:    "アドレス",
		banRange:      "アドレス範囲",
		banTime:       "確認時刻",
		banHowTo:      "ご自分のアドレスでしたら、このメッセージを引用してボットにメンションすると解除できます。",
		banRangeHowTo: "この範囲にご自分のアドレスが含まれる場合は、そのアドレスを書いてボットにメンションしてください。",
		moreBansTitle: "sshguard がほかにもブロックしました",
		moreBans:      "ほかに %d 件のブロックがありました（まとめてお知らせします）:\n%s\nこの中にご自分のアドレスがあれば、そのアドレスを書いてボットにメンションしてください（このメッセージを引用しても解除されません）。",
		banFor:        "ブロック期間",
		banFirst:      "初めてのブロックなら %sで自動的に解除されます（繰り返しブロックされると、そのたびに 2 倍の長さになります）",
		banForever:    "ブラックリストに載っているため、自動では解除されません（解除するかどうかは SRE が判断します）",
		banForeverOn:  "（%s ではブラックリストに載っているため、自動では解除されません）",
	},
	"en": {
		zone:      time.UTC,
		list:      englishList,
		listSome:  func(s []string) string { return strings.Join(s, ", ") },
		sep:       " ",
		helpTitle: "Unblocking sshguard bans",
		help: "Mention me with the blocked IP address (for example 203.0.113.5).\n" +
			"You can also quote one of my ban notifications and mention me. Up to 5 addresses at a time.",
		findAddress:  "You can see your address at %s (over the VPN, if you use one).",
		progress:     "Checking… (asking every host now; this takes a few seconds)",
		thanks:       "You're welcome. Ask me any time.",
		refusedTitle: "No address I can unblock",
		refusal: map[string]string{
			message.ReasonCIDR:        "%s is an address range. Please send the one blocked address (I can free it even from a blocked range).",
			message.ReasonUnspecified: "%s does not name a host.",
			message.ReasonLoopback:    "%s is a loopback address; it is never blocked.",
			message.ReasonMulticast:   "%s is a multicast address; it is never blocked.",
			message.ReasonLinkLocal:   "%s is a link-local address; it is never blocked.",
			message.ReasonBroadcast:   "%s is a broadcast address; it is never blocked.",
			message.ReasonAmbiguous:   "%s has a number with a leading zero, which can be read two ways. Please write it without leading zeros.",
			message.ReasonOverLimit:   "I did not unblock %s: I take up to 5 addresses at a time. Please send it again.",
		},
		dropped:   "%d more items did not look like addresses.",
		keepTitle: "Block left in place",
		keep:      "I did not unblock %s, as you asked to keep it blocked. Mention me again if it needs unblocking later.",
		keepNone:  "I will leave the block in place. Mention me with the address if it needs unblocking later.",

		titleUnblocked:     "Unblocked",
		titlePartial:       "Unblocked on some hosts",
		titleNotBlocked:    "Not blocked",
		titleUnknown:       "Some hosts did not answer",
		freed:              "%s: unblocked on %s.",
		notBlockedChecked:  "%s: not blocked on any host (I just checked all %d).",
		notBlockedAnswered: "%s: not blocked on the %d hosts that answered.",
		hostFailed:         "%s could not unblock it. I have told the SRE team; please wait for them.",
		hostOffline:        "I could not reach %s (it may be stopped). I have told the SRE team.",
		hostTimedOut:       "%s did not answer in time. I have told the SRE team.",
		silent:             "%s did not answer (possibly stopped). I will tell you as soon as there is an answer. I have told the SRE team.",
		more:               "%s and %d more",
		tryNow:             "Please try to connect now.",
		grace:              "Another %d failed logins within %s will block it again, for %s or longer. Please check your SSH key and settings before you connect.",
		graceUnknown:       "Each new block lasts twice as long as the one before. Please check your SSH key and settings before you connect.",
		excepted:           "%s was inside the blocked range %s, so I exempted just this address until %s (the rest of the range stays blocked).",
		blacklisted:        "%s is on sshguard's blacklist (a permanent block) on %s, so I did not unblock it: the SRE team decides. I have told them.",
		stillBlocked:       "%s is still blocked on %s. I have told the SRE team.",
		minutes:            "%d minutes",
		seconds:            "%d seconds",
		minutesSpan:        "%d to %d minutes",
		span:               "%s to %s",
		notBlockedNext:     "If you still cannot connect, you may be connecting from another address.",
		privateAddress:     "%s is a private address. The servers see the address outside your router or VPN: please send that one.",
		checkedHosts:       "Checked just now: %s.",
		serverAddress:      "%s is the address of one of our own servers (%s). Please send the address you connect from (your device, or your office's or VPN's exit), not the server's.",
		merged:             "(one answer for %d identical requests)",
		followUpText:       "A late answer from %s: %s is unblocked there too. Please try to connect now.",

		guestTitle:    "Not unblocked",
		guest:         "Sorry, only accounts of our own organization can unblock addresses with me. Please ask the SRE team (I have told them).",
		approvalTitle: "Waiting for the SRE team",
		sreRoomOnly:   "In this room I take requests from the SRE team only. Please mention me in the usual room.",
		noApprover:    "Unblocking %s needs the SRE team's approval (%s), but no one is set up to approve. Please ask the SRE team directly.",
		approvalAsker: "Unblocking %s needs the SRE team's approval (%s), so I have asked them. I will unblock it and tell you as soon as they approve, and tell you too if they have not answered within %s.",
		approvalSRE:   "%s\nTo approve: [To:%s] approve %s\nTo decline: [To:%s] deny %s\n(within %s)",
		retryAfter:    "You can ask again without approval from %s.",
		policyWhy: map[string]string{
			"account_quota": "you have reached the limit of requests",
			"address_quota": "this address has been unblocked several times today",
			"never_self":    "this address always needs an SRE's check",
			"many_hosts":    "it is blocked on many hosts",
			"blacklisted":   "it is on sshguard's blacklist, a permanent block",
		},
		approvedBy:        "Unblocked with the approval of the SRE team (account %s).",
		deniedTitle:       "Not unblocked",
		denied:            "The SRE team declined to unblock %s. Please ask them for details.",
		expiredTitle:      "No approval in time",
		expired:           "The SRE team did not approve in time, so I did not unblock %s. Please ask them directly.",
		decidedTitle:      "Approval request %s",
		blacklistApproved: "With the approval of the SRE team (account %s), I also removed it from sshguard's blacklist.",
		blacklistDenied:   "%s is on sshguard's blacklist on %s, and the SRE team declined to remove it, so it stays blocked there.",
		blacklistExpired:  "%s is on sshguard's blacklist on %s, and the SRE team did not approve in time, so it stays blocked there. Please ask them directly.",
		decidedApproved:   "Approved (asked by account %s: %s). I will unblock it and tell the asker.",
		decidedDenied:     "Declined (asked by account %s: %s). I will tell the asker.",
		decideRefused: map[string]string{
			"not_sre":         "Only the SRE team can approve or decline.",
			"own_request":     "Your own request needs another SRE's approval.",
			"not_sre_room":    "Please approve or decline in the SRE room.",
			"no_such_code":    "There is no approval request with the code %s.",
			"already_decided": "The approval request %s was already %s.",
		},
		alreadyState:  map[string]string{"approved": "approved by %s", "denied": "declined by %s", "expired": "expired%s"},
		auditTitle:    "unban record",
		pageTitle:     "Ban list",
		pageLink:      "Here is the ban-list page. It opens until %s (15 minutes) for anyone who has the link, and it is issued to your account: please do not share it.\n%s",
		pageMissing:   "The ban-list page is not set up in this deployment.",
		pageRefused:   "The ban list is for the SRE team, in the SRE room.",
		failureTitle:  "Could not finish the unblock",
		failure:       "Sorry, something went wrong and I could not finish the unblock. I have told the SRE team. Please try again in a few minutes, or ask them. (reference for the SRE team: %s)",
		alertTitle:    "Problem in an unban execution",
		banTitle:      "sshguard blocked an address",
		banHost:       "Host",
		banAddress:    "Address",
		banRange:      "Address range",
		banTime:       "Seen at",
		banHowTo:      "If this is your address, quote this message and mention me to unblock it.",
		banRangeHowTo: "If your address is in this range, mention me with your address.",
		moreBansTitle: "sshguard blocked more addresses",
		moreBans:      "%d more addresses were blocked:\n%s\nIf your address is among them, mention me with it (quoting this message unblocks nothing).",
		banFor:        "Block length",
		banFirst:      "if this is its first block, sshguard lifts it by itself in %s (each repeat block lasts twice as long)",
		banForever:    "blacklisted: sshguard never lifts it by itself (the SRE team decides)",
		banForeverOn:  " (blacklisted on %s: never lifted there by itself)",
	},
}

func englishList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	case 2:
		return s[0] + " and " + s[1]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func langFor(locale string) lang {
	l, ok := langs[locale]
	if !ok {
		l = langs["ja"]
	}
	l.ipURL = checkIPURL
	return l
}

// IPPage is the /ip page of a deployment whose API is at publicURL ("" when
// there is none).
func IPPage(publicURL string) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimSuffix(publicURL, "/") + "/ip"
}

// findAddressText says where the asker sees their own address.
func (l lang) findAddressText() string { return fmt.Sprintf(l.findAddress, l.ipURL) }

// reply is the answer to the asker, and what the SRE room should hear of it.
type reply struct {
	body   string
	failed string // why SREs should look ("" if nothing failed)
}

func (l lang) failureReply(execution string) reply {
	return reply{body: chatwork.Info(l.failureTitle, fmt.Sprintf(l.failure, execution))}
}

// userReply composes the answer to the asker from the execution state.
func (l lang) userReply(st workflow.State) reply {
	if r, ok := l.policyReply(st); ok {
		return r
	}
	p := st.Parsed
	switch {
	case p == nil || p.Intent == message.IntentHelp:
		return reply{body: chatwork.Info(l.helpTitle, l.help+"\n"+l.findAddressText())}
	case p.Intent == message.IntentThanks:
		return reply{body: l.thanks}
	case p.Intent == message.IntentKeep:
		text := l.keepNone
		if len(p.Addresses) > 0 {
			text = fmt.Sprintf(l.keep, l.list(p.Addresses))
		}
		return reply{body: chatwork.Info(l.keepTitle, text)}
	case len(p.Addresses) == 0:
		return reply{body: chatwork.Info(l.refusedTitle, l.refusals(p)+"\n"+l.help)}
	}
	return l.result(st)
}

// policyReply answers what the policy decided instead of the hosts: a
// refused guest, an approval denied or never given, and an SRE's own
// approve/deny.
func (l lang) policyReply(st workflow.State) (reply, bool) {
	p, pol, ap := st.Parsed, st.Policy, st.Approval
	addrs := ""
	if p != nil {
		addrs = l.list(p.Addresses)
	}
	switch {
	case p != nil && (p.Intent == message.IntentApprove || p.Intent == message.IntentDeny):
		return l.decidedReply(p.Code, pol), true
	case p != nil && p.Intent == message.IntentList:
		// The link itself is SendPageLink's; a reply here is a refusal.
		return reply{body: chatwork.Info(l.pageTitle, l.pageRefused)}, true
	case pol != nil && pol.Decision == workflow.DecisionRefuse && pol.Reason == workflow.ReasonGuest:
		return reply{body: chatwork.Info(l.guestTitle, l.guest),
			failed: fmt.Sprintf("account %s was refused (%s: %s); addresses %s", st.Request.AccountID, pol.Reason, pol.Detail, addrs)}, true
	case pol != nil && pol.Decision == workflow.DecisionRefuse && pol.Reason == workflow.ReasonNotSRE:
		return reply{body: chatwork.Info(l.guestTitle, l.sreRoomOnly)}, true
	case pol != nil && pol.Decision == workflow.DecisionRefuse && pol.Reason != workflow.ReasonBlacklisted:
		// An approval was needed, but no SRE is configured to give one.
		text := fmt.Sprintf(l.noApprover, addrs, l.policyWhy[pol.Reason])
		if pol.RetryAt != "" {
			text += l.sep + fmt.Sprintf(l.retryAfter, l.clock(pol.RetryAt))
		}
		return reply{body: chatwork.Info(l.guestTitle, text),
			failed: fmt.Sprintf("account %s needed an approval (%s: %s) for %s, and no sreAccounts are configured", st.Request.AccountID, pol.Reason, pol.Detail, addrs)}, true
	case pol != nil && pol.Reason == workflow.ReasonBlacklisted:
		// Asked after the hosts: the answer is their result (result()).
	case ap != nil && ap.Status == workflow.DecisionDenied:
		return reply{body: chatwork.Info(l.deniedTitle, fmt.Sprintf(l.denied, addrs))}, true
	case ap != nil && ap.Status == "expired":
		return reply{body: chatwork.Info(l.expiredTitle, fmt.Sprintf(l.expired, addrs)),
			failed: "approval " + codeOf(pol) + " was not answered in time"}, true
	}
	return reply{}, false
}

func codeOf(p *workflow.PolicyResult) string {
	if p == nil {
		return ""
	}
	return p.Code
}

// decidedReply answers an SRE's approve/deny in the SRE room.
func (l lang) decidedReply(code string, pol *workflow.PolicyResult) reply {
	title := fmt.Sprintf(l.decidedTitle, code)
	if pol == nil {
		return reply{body: chatwork.Info(title, fmt.Sprintf(l.decideRefused[workflow.ReasonNoSuchCode], code))}
	}
	a := pol.Approval
	switch {
	case pol.Decision == workflow.DecisionApproved && a != nil:
		return reply{body: chatwork.Info(title, fmt.Sprintf(l.decidedApproved, a.AccountID, l.list(a.Addresses)))}
	case pol.Decision == workflow.DecisionDenied && a != nil:
		return reply{body: chatwork.Info(title, fmt.Sprintf(l.decidedDenied, a.AccountID, l.list(a.Addresses)))}
	case pol.Reason == workflow.ReasonAlreadyDecided && a != nil:
		state := fmt.Sprintf(l.alreadyState[a.Status], a.By)
		if a.Status == "expired" {
			state = fmt.Sprintf(l.alreadyState["expired"], "")
		}
		return reply{body: chatwork.Info(title, fmt.Sprintf(l.decideRefused[workflow.ReasonAlreadyDecided], code, state))}
	case pol.Reason == workflow.ReasonNoSuchCode:
		return reply{body: chatwork.Info(title, fmt.Sprintf(l.decideRefused[pol.Reason], code))}
	}
	return reply{body: chatwork.Info(title, l.decideRefused[pol.Reason])}
}

// approvalTexts are the asker's "waiting for approval" and the SRE room's
// request.
func (l lang) approvalTexts(st workflow.State, botID string, wait time.Duration) (asker, sre string) {
	pol, asked := st.Policy, st.Parsed.Addresses
	if len(pol.Addresses) > 0 {
		asked = pol.Addresses // the blacklisted ones
	}
	addrs := l.list(asked)
	why := l.policyWhy[pol.Reason]
	asker = fmt.Sprintf(l.approvalAsker, addrs, why, l.duration(wait))
	if pol.RetryAt != "" {
		asker += l.sep + fmt.Sprintf(l.retryAfter, l.clock(pol.RetryAt))
	}
	head := fmt.Sprintf("account %s (room %s) asks to unblock %s: %s (%s).", st.Request.AccountID, st.Request.RoomID,
		strings.Join(asked, ", "), pol.Reason, chatwork.Escape(pol.Detail))
	sre = chatwork.Info(fmt.Sprintf(l.decidedTitle, pol.Code), fmt.Sprintf(l.approvalSRE, head, botID, pol.Code, botID, pol.Code, l.duration(wait)))
	return chatwork.Info(l.approvalTitle, asker), sre
}

// auditLine is one unban in the SRE room's record: "account 123 (room 9):
// 192.0.2.1 freed on 2 of 3 hosts, 1 silent; approved by 456 (execution E)".
func auditLine(execution string, st workflow.State) string {
	var parts []string
	c := st.Check
	for _, a := range st.Parsed.Addresses {
		switch {
		case c == nil:
			parts = append(parts, a)
		case c.Freed[a] > 0:
			parts = append(parts, fmt.Sprintf("%s freed on %d of %d hosts", a, c.Freed[a], c.Targeted))
		default:
			parts = append(parts, fmt.Sprintf("%s not blocked on %d hosts", a, c.Answered))
		}
	}
	if bc := st.BlacklistCheck; bc != nil {
		for _, a := range st.Parsed.Addresses {
			if n := bc.Freed[a]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s removed from the blacklist on %d of %d hosts", a, n, bc.Targeted))
			}
		}
	}
	line := fmt.Sprintf("account %s (room %s): %s", st.Request.AccountID, st.Request.RoomID, strings.Join(parts, ", "))
	if c != nil {
		if n := max(c.SilentCount, len(c.Silent)); n > 0 {
			line += fmt.Sprintf(", %d silent", n)
		}
	}
	if a := st.Approval; a != nil && a.Status == workflow.DecisionApproved {
		line += "; approved by " + a.By
	}
	return chatwork.Escape(line + " (execution " + execution + ")")
}

// refusals explains, one line each, what the message held that was not
// unbanned.
func (l lang) refusals(p *message.Result) string {
	var lines []string
	for _, r := range p.Refused {
		if f, ok := l.refusal[r.Reason]; ok {
			lines = append(lines, fmt.Sprintf(f, chatwork.Escape(r.Text)))
		}
	}
	if p.Dropped > 0 {
		lines = append(lines, fmt.Sprintf(l.dropped, p.Dropped))
	}
	return strings.Join(lines, "\n")
}

// result answers an unban request from the hosts' own answers: for each
// address, where it was freed or that it was blocked nowhere (and how many
// hosts said so just now); the hosts that failed or stayed silent; what was
// refused; what to do next.
func (l lang) result(st workflow.State) reply {
	p, c := st.Parsed, st.Check
	if c == nil {
		c = &workflow.CheckResult{}
	}
	// What each host did, by address.
	freedOn := map[string][]string{}
	blacklistedOn := map[string][]string{}
	stillOn := map[string][]string{}
	exceptions := map[string]*hostreport.Exception{}
	var settings *hostreport.Settings
	var failed, silent, why []string
	named := c.Named
	if bc := st.BlacklistCheck; bc != nil {
		// The second round (blacklisted entries an SRE approved
		// removing): its answers come after the first's, per host.
		named = append(slices.Clone(named), bc.Named...)
	}
	for _, h := range named {
		switch h.Status {
		case workflow.HostSucceeded:
			if h.Unban == nil {
				continue
			}
			for _, r := range h.Unban.Results {
				switch {
				case r.Blacklisted && !r.BlacklistRemoved:
					blacklistedOn[r.Address] = append(blacklistedOn[r.Address], hostName(h))
				case r.StillBlocked:
					stillOn[r.Address] = append(stillOn[r.Address], hostName(h))
				case r.WasBlocked:
					freedOn[r.Address] = append(freedOn[r.Address], hostName(h))
					if r.Exception != nil && exceptions[r.Address] == nil {
						exceptions[r.Address] = r.Exception
					}
					if settings == nil && h.Unban.Report != nil {
						settings = h.Unban.Report.Settings
					}
				}
			}
		case workflow.HostSilent, workflow.HostPending:
			silent = append(silent, hostName(h))
		case workflow.HostOffline:
			failed = append(failed, fmt.Sprintf(l.hostOffline, hostName(h)))
			why = append(why, hostName(h)+": "+detail(h))
		case workflow.HostTimedOut:
			failed = append(failed, fmt.Sprintf(l.hostTimedOut, hostName(h)))
			why = append(why, hostName(h)+": "+detail(h))
		default:
			// The detail is for the SRE room (why), not for the asker.
			failed = append(failed, fmt.Sprintf(l.hostFailed, hostName(h)))
			why = append(why, hostName(h)+": "+detail(h))
		}
	}
	for _, h := range c.Silent {
		silent = append(silent, hostName(h))
	}
	for a, hosts := range freedOn {
		// Freed in the second round: no longer blacklisted there.
		blacklistedOn[a] = slices.DeleteFunc(blacklistedOn[a], func(h string) bool { return slices.Contains(hosts, h) })
	}
	approvalAsked := st.Policy != nil && st.Policy.Reason == workflow.ReasonBlacklisted && st.Policy.Decision == workflow.DecisionApprove
	var lines []string
	anyFreed, notBlocked := false, false
	for _, a := range p.Addresses {
		switch {
		case len(freedOn[a]) > 0:
			anyFreed = true
			total := c.Freed[a]
			if st.BlacklistCheck != nil {
				total += st.BlacklistCheck.Freed[a]
			}
			lines = append(lines, fmt.Sprintf(l.freed, a, l.namesOf(freedOn[a], total)))
			if x := exceptions[a]; x != nil {
				lines = append(lines, fmt.Sprintf(l.excepted, a, strings.Join(x.Entries, ", "), l.clock(x.Expires)))
			}
		case len(blacklistedOn[a]) > 0 || len(stillOn[a]) > 0:
			// said below
		case len(silent) == 0 && len(failed) == 0:
			lines = append(lines, fmt.Sprintf(l.notBlockedChecked, a, c.Targeted))
			notBlocked = true
		default:
			lines = append(lines, fmt.Sprintf(l.notBlockedAnswered, a, c.Answered))
		}
		if hosts := blacklistedOn[a]; len(hosts) > 0 {
			switch ap := st.Approval; {
			case !approvalAsked:
				lines = append(lines, fmt.Sprintf(l.blacklisted, a, l.names(hosts)))
				why = append(why, fmt.Sprintf("%s is blacklisted on %s: left in place for an SRE to decide", a, strings.Join(hosts, ", ")))
			case ap != nil && ap.Status == workflow.DecisionDenied:
				lines = append(lines, fmt.Sprintf(l.blacklistDenied, a, l.names(hosts)))
			case ap != nil && ap.Status == "expired":
				lines = append(lines, fmt.Sprintf(l.blacklistExpired, a, l.names(hosts)))
			default: // approved, yet still blacklisted there
				lines = append(lines, fmt.Sprintf(l.stillBlocked, a, l.names(hosts)))
				why = append(why, fmt.Sprintf("%s is still blacklisted on %s after an approved removal", a, strings.Join(hosts, ", ")))
			}
		}
		if hosts := stillOn[a]; len(hosts) > 0 {
			lines = append(lines, fmt.Sprintf(l.stillBlocked, a, l.names(hosts)))
			why = append(why, fmt.Sprintf("%s is still blocked after the unban on %s", a, strings.Join(hosts, ", ")))
		}
	}
	if notBlocked && len(c.Checked) > 0 {
		var hosts []string
		for _, h := range c.Checked {
			hosts = append(hosts, chatwork.Escape(h))
		}
		lines = append(lines, fmt.Sprintf(l.checkedHosts, l.namesOf(hosts, c.Answered)))
	}
	lines = append(lines, failed...)
	if len(silent) > 0 {
		lines = append(lines, fmt.Sprintf(l.silent, l.namesOf(silent, len(silent)+c.SilentCount-len(c.Silent))))
	}
	if r := l.refusals(p); r != "" {
		lines = append(lines, r)
	}
	problem := len(why) > 0 || len(silent) > 0
	title := l.titleNotBlocked
	switch {
	case anyFreed && problem:
		title = l.titlePartial
	case anyFreed:
		title = l.titleUnblocked
	case problem:
		title = l.titleUnknown
	}
	if a := st.Approval; a != nil && a.Status == workflow.DecisionApproved {
		if approvalAsked {
			lines = append(lines, fmt.Sprintf(l.blacklistApproved, chatwork.Escape(a.By)))
		} else {
			lines = append(lines, fmt.Sprintf(l.approvedBy, chatwork.Escape(a.By)))
		}
	}
	if anyFreed {
		lines = append(lines, l.tryNow+l.sep+l.graceText(settings))
	} else if !problem {
		for _, a := range p.Addresses {
			if s := serverOf(st.Lookup, a); s != nil {
				var hosts []string
				for _, h := range s.Hosts {
					hosts = append(hosts, chatwork.Escape(h))
				}
				lines = append(lines, fmt.Sprintf(l.serverAddress, a, l.namesOf(hosts, s.Count)))
			} else if ip, err := netip.ParseAddr(a); err == nil && ip.IsPrivate() {
				lines = append(lines, fmt.Sprintf(l.privateAddress, a))
			}
		}
		lines = append(lines, l.notBlockedNext+l.sep+l.findAddressText())
	}
	r := reply{body: chatwork.Info(title, strings.Join(lines, "\n"))}
	if len(why) > 0 {
		r.failed = strings.Join(why, "; ")
	}
	if c.Targeted == 0 && !problem {
		r.failed = "the unban command reached no host: check the target tag and the SSM agents"
	}
	return r
}

// serverOf is the lookup's record of addr as the hosts' own address.
func serverOf(lk *workflow.LookupResult, addr string) *workflow.Server {
	if lk == nil {
		return nil
	}
	for i := range lk.Servers {
		if lk.Servers[i].Address == addr {
			return &lk.Servers[i]
		}
	}
	return nil
}

// graceText says what follows from the host's sshguard settings about the
// next block (measured on sshguard 2.4.2: each block of an address lasts
// twice the one before, so the next one lasts at least 2 × BLOCK_TIME).
// Nothing is promised about how long sshguard keeps ignoring the address:
// the host cannot know when its block started.
func (l lang) graceText(s *hostreport.Settings) string {
	if s == nil || s.BlockTime <= 0 || s.DetectionTime <= 0 || s.FailedLoginsToBlock() <= 0 {
		return l.graceUnknown
	}
	return fmt.Sprintf(l.grace, s.FailedLoginsToBlock(), l.duration(time.Duration(s.DetectionTime)*time.Second), l.duration(s.BlockPardon(2)))
}

// duration prints whole minutes or seconds.
func (l lang) duration(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf(l.minutes, int(d/time.Minute))
	}
	return fmt.Sprintf(l.seconds, int(d/time.Second))
}

// clock prints an RFC 3339 time as the asker's clock time.
func (l lang) clock(rfc string) string {
	t, err := time.Parse(time.RFC3339, rfc)
	if err != nil {
		return rfc
	}
	return t.In(l.zone).Format("15:04 MST")
}

// names lists host names, shortened past five.
func (l lang) names(hosts []string) string { return l.namesOf(hosts, 0) }

// namesOf names up to five hosts of total (at least the named ones): the
// state names at most workflow.MaxNamed hosts and counts the rest.
func (l lang) namesOf(hosts []string, total int) string {
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	total = max(total, len(hosts))
	if shown := min(len(hosts), 5); total > shown {
		return fmt.Sprintf(l.more, l.listSome(hosts[:shown]), total-shown)
	}
	return l.list(hosts)
}

// followUp is the message after the reply when a host that was silent then
// has freed an address since ("" when none did).
func (l lang) followUp(st workflow.State) string {
	if st.Check == nil || st.Late == nil {
		return ""
	}
	silent, answered := map[string]bool{}, map[string]bool{}
	for _, h := range st.Check.Silent {
		silent[h.InstanceID] = true
	}
	for _, h := range st.Check.Named {
		answered[h.InstanceID] = true
	}
	// Past the cap, a silent host is one the reply did not name as answered.
	unnamedSilent := st.Check.SilentCount > len(st.Check.Silent)
	freed := map[string][]string{}
	for _, h := range st.Late.Named {
		wasSilent := silent[h.InstanceID] || (unnamedSilent && !answered[h.InstanceID])
		if !wasSilent || h.Status != workflow.HostSucceeded || h.Unban == nil {
			continue
		}
		for _, r := range h.Unban.Results {
			if r.WasBlocked {
				freed[hostName(h)] = append(freed[hostName(h)], r.Address)
			}
		}
	}
	if len(freed) == 0 {
		return ""
	}
	var hosts, addrs []string
	for h, as := range freed {
		hosts = append(hosts, h)
		addrs = append(addrs, as...)
	}
	slices.Sort(addrs)
	return fmt.Sprintf(l.followUpText, l.names(hosts), l.list(slices.Compact(addrs)))
}

func hostName(h workflow.HostOutcome) string {
	name := h.Host
	if name == "" && h.Unban != nil {
		name = h.Unban.Host
	}
	if name == "" {
		return h.InstanceID
	}
	return chatwork.Escape(name)
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

// banNotice announces one newly blocked address or prefix with every host
// that blocks it (one message per entry, not per host). Quoting it and
// mentioning the bot must parse to the address: the parser test in this
// package checks that.
func (l lang) banNotice(bans []workflow.NewBan) string {
	first := time.Time{}
	var hosts []string
	for _, b := range bans {
		if t, err := time.Parse(time.RFC3339, b.Time); err == nil && (first.IsZero() || t.Before(first)) {
			first = t
		}
		hosts = append(hosts, chatwork.Escape(b.Host)+" ("+b.InstanceID+")")
	}
	if first.IsZero() {
		first = time.Now()
	}
	entry := bans[0].Entry
	label, howTo := l.banAddress, l.banHowTo
	if strings.Contains(entry, "/") {
		label, howTo = l.banRange, l.banRangeHowTo
	}
	when := first.In(l.zone).Format("2006-01-02 15:04:05 MST")
	lines := []string{label + ": " + entry, l.banHost + ": " + l.names(hosts), l.banTime + ": " + when}
	if d := l.blockLength(bans); d != "" {
		lines = append(lines, l.banFor+": "+d)
	}
	return chatwork.Info(l.banTitle, strings.Join(append(lines, howTo), "\n"))
}

// moreBansNotice lists, in one message, the blocks past the individual
// notices (entries already defanged and escaped).
func (l lang) moreBansNotice(n int, entries string) string {
	return chatwork.Info(l.moreBansTitle, fmt.Sprintf(l.moreBans, n, entries))
}

// blockLength says how long sshguard means to block an entry, from the
// hosts' settings ("" when no host reported them). A host cannot know how
// often it blocked the address before, so the first block's window is
// given, with the doubling of repeat blocks (hostreport.BlockPardon).
func (l lang) blockLength(bans []workflow.NewBan) string {
	var earliest, latest time.Duration
	var forever []string
	for _, b := range bans {
		if b.Blacklisted {
			forever = append(forever, chatwork.Escape(b.Host))
			continue
		}
		if b.BlockTime <= 0 {
			continue
		}
		e, l := hostreport.Settings{BlockTime: b.BlockTime}.BlockEnds(1)
		if earliest == 0 || e < earliest {
			earliest = e
		}
		latest = max(latest, l)
	}
	switch {
	case len(forever) == len(bans):
		return l.banForever
	case earliest == 0:
		return ""
	}
	text := fmt.Sprintf(l.banFirst, l.window(earliest, latest))
	if len(forever) > 0 {
		text += fmt.Sprintf(l.banForeverOn, l.names(forever))
	}
	return text
}

// window prints "2〜4 分": whole minutes rounded outwards, so the window
// printed is never narrower than the truth (seconds below one minute).
func (l lang) window(from, to time.Duration) string {
	if from < time.Minute {
		return fmt.Sprintf(l.span, l.duration(from), l.duration(to))
	}
	lo, hi := int(from/time.Minute), int((to+time.Minute-1)/time.Minute)
	return fmt.Sprintf(l.minutesSpan, lo, hi)
}
