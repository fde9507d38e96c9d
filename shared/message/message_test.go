package message

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The bot's own ban notifications, as the notify Lambda writes them.
const (
	notifyJa = "[info][title]sshguard がアドレスをブロックしました[/title]ホスト: web-1 (i-0123456789abcdef0)\nアドレス: 192.0.2.12\n時刻: 2026-11-25 13:40:00 JST\n解除するには、このメッセージを引用してボットにメンションしてください。[/info]"
	notifyEn = "[info][title]sshguard blocked an address[/title]Host: web-1 (i-0123456789abcdef0)\nAddress: 192.0.2.12\nTime: 2026-11-25 13:40:00 JST\nTo unban, quote this message and mention the bot.[/info]"

	to      = "[To:1234567]unbanbot さん\n"
	toEn    = "[To:1234567]unbanbot\n"
	reply   = "[rp aid=1234567 to=567890123-1790000000000000000]unbanbot さん\n"
	qtOpen  = "[qt][qtmeta aid=1234567 time=1732400000]"
	qtClose = "[/qt]"

	// notify's banNotice today (lambdas/notify/text.go), in both languages.
	banJa      = "[info][title]sshguard がアドレスをブロックしました[/title]ホスト: web-1 (i-0123456789abcdef0)\nアドレス: 192.0.2.10\n時刻: 2026-11-25 13:40:00 JST\n自分のアドレスなら、このメッセージを引用してボットにメンションすると解除できます。[/info]"
	banEn      = "[info][title]sshguard blocked an address[/title]Host: web-1 (i-0123456789abcdef0)\nAddress: 192.0.2.10\nTime: 2026-11-25 04:40:00 UTC\nIf this is your address, quote this message and mention me to unblock it.[/info]"
	banRangeJa = "[info][title]sshguard がアドレスをブロックしました[/title]ホスト: web-1 (i-0123456789abcdef0)\nアドレス範囲: 198.51.100.0/24\n時刻: 2026-11-25 13:40:00 JST\nこの範囲に自分のアドレスが含まれる場合は、自分のアドレスを書いてボットにメンションしてください。[/info]"

	sshguardLog = `Nov 25 13:40:00 web-1 sshguard[1234]: Blocking "192.0.2.12/32" for 120 secs (3 attacks in 5 secs, after 1 abuses over 5 secs.)`
)

func unban(addrs ...string) Result {
	if addrs == nil {
		addrs = []string{}
	}
	return Result{Intent: IntentUnban, Addresses: addrs}
}

// keep is Parse's answer to words that ask to keep the block.
func decided(intent Intent, code string) Result {
	return Result{Intent: intent, Addresses: []string{}, Code: code}
}

func keep(addrs ...string) Result {
	r := unban(addrs...)
	r.Intent = IntentKeep
	return r
}

func refused(r Result, pairs ...string) Result {
	for i := 0; i+1 < len(pairs); i += 2 {
		r.Refused = append(r.Refused, Refusal{Text: pairs[i], Reason: pairs[i+1]})
	}
	if len(r.Refused) > 0 {
		r.Reason = r.Refused[0].Reason
	}
	return r
}

var (
	help   = Result{Intent: IntentHelp, Addresses: []string{}}
	thanks = Result{Intent: IntentThanks, Addresses: []string{}}
	list   = Result{Intent: IntentList, Addresses: []string{}}
)

type parseCase struct {
	name string
	body string
	want Result
}

var parseCases = []parseCase{
	// Plain requests.
	{"design doc body", "[To:1234567]unbanbot さん\n203.0.113.5", unban("203.0.113.5")},
	{"english client, bare name", toEn + "203.0.113.5", unban("203.0.113.5")},
	{"several To", "[To:1234567]unbanbot さん[To:7654321]山田 太郎さん\n203.0.113.5", unban("203.0.113.5")},
	{"To after the address", "203.0.113.5 [To:1234567]unbanbot さん", unban("203.0.113.5")},
	{"same line after honorific", "[To:1234567]unbanbot さん 203.0.113.5 をお願いします", unban("203.0.113.5")},
	{"toall", "[toall]\n203.0.113.5", unban("203.0.113.5")},
	{"reply", reply + "198.51.100.7 です", unban("198.51.100.7")},
	{"reply in Japanese spelling", "[返信 aid=1234567 to=567890123-1790000000000000000]unbanbot さん\n198.51.100.7", unban("198.51.100.7")},
	{"upper-case tag", "[TO:1234567]unbanbot さん\n203.0.113.5", unban("203.0.113.5")},
	{"english sentence", toEn + "Hi, I got blocked. My IP is 203.0.113.5. Could you unban it?", unban("203.0.113.5")},

	// Addresses on the mention or reply line (issue 14, item 1). English
	// clients write the bare name and people go on typing on that line;
	// Japanese clients end the name with さん; people type tags by hand.
	{"english client, same line", "[To:1000001]unbanbot 203.0.113.5", unban("203.0.113.5")},
	{"typed tag, space, text after", "[To:1000001] 203.0.113.5 please", unban("203.0.113.5")},
	{"typed tag, address glued", "[To:1000001]203.0.113.5", unban("203.0.113.5")},
	{"english reply, same line", "[rp aid=1000001 to=2000001-55] まだ駄目です 192.0.2.62", unban("192.0.2.62")},
	{"english client, sentence on the line", "[To:1000001]unbanbot please unban 203.0.113.5, thanks", unban("203.0.113.5")},
	{"english reply to the bot", "[rp aid=1000001 to=2000001-55]unbanbot 192.0.2.62 still blocked", unban("192.0.2.62")},
	{"japanese reply, same line", "[rp aid=1000001 to=2000001-55]unbanbot さん 192.0.2.62 お願いします", unban("192.0.2.62")},
	{"address glued to honorific", "[To:1000001]unbanbot さん203.0.113.5", unban("203.0.113.5")},
	{"honorific glued to name", "[To:1000001]unbanbotさん 203.0.113.5です", unban("203.0.113.5")},
	{"japanese name, address glued", "[To:1000002]山田 太郎さん192.0.2.7 を解除してください", unban("192.0.2.7")},
	{"mention line, full-width", "[To:1000001]unbanbot ２０３．０．１１３．５", unban("203.0.113.5")},
	{"mention line, ideographic space", "[To:1000001]unbanbot\u3000２０３．０．１１３．５です", unban("203.0.113.5")},
	{"mention line, kana-mode dots", "[To:1000001]unbanbot １９２。１６８。０。１０", unban("192.168.0.10")},
	{"mention line, /32", "[To:1000001]unbanbot 203.0.113.5/32", unban("203.0.113.5")},
	{"mention line, /128", "[To:1000001]unbanbot 2001:db8::5/128", unban("2001:db8::5")},
	{"mention line, full-width /32", "[To:1000001]unbanbot ２０３．０．１１３．５／３２", unban("203.0.113.5")},
	{"mention line, /31 stays a range", "[To:1000001]unbanbot 203.0.113.4/31", refused(unban(), "203.0.113.4/31", ReasonCIDR)},
	{"mention line, /127 stays a range", "[To:1000001]unbanbot 2001:db8::4/127", refused(unban(), "2001:db8::4/127", ReasonCIDR)},
	{"mention line, IPv6", "[To:1000001]unbanbot 2001:db8::1 です", unban("2001:db8::1")},
	{"mention line, refusal", "[To:1000001]unbanbot 127.0.0.1", refused(unban(), "127.0.0.1", ReasonLoopback)},
	{"mention line, hostname", "[To:1000001]unbanbot 192.0.2.1.nip.io", help},
	{"several To, english", "[To:1000001]unbanbot[To:1000002]Taro Yamada 203.0.113.5", unban("203.0.113.5")},
	{"several To, japanese, same line", "[To:1000001]unbanbot さん[To:1000002]山田 太郎さん 203.0.113.5 です", unban("203.0.113.5")},
	{"several To, one a line", "[To:1000002]Taro Yamada\n[To:1000001]unbanbot 203.0.113.5", unban("203.0.113.5")},
	{"reply and To", "[rp aid=1000002 to=2000001-55]Taro さん\n[To:1000001]unbanbot 203.0.113.5", unban("203.0.113.5")},
	{"reply and To, one line", "[rp aid=1000002 to=2000001-55]Taro[To:1000001]unbanbot 203.0.113.5 198.51.100.7", unban("203.0.113.5", "198.51.100.7")},
	{"address before the mention", "203.0.113.5 [To:1000001]unbanbot", unban("203.0.113.5")},
	{"mobile, honorific glued, next line", "[To:1000001]unbanbotさん\n203.0.113.5", unban("203.0.113.5")},
	{"mobile reply, honorific glued", "[rp aid=1000001 to=2000001-55]unbanbotさん 203.0.113.5 です", unban("203.0.113.5")},
	{"mobile, CRLF", "[To:1000001]unbanbot さん\r\n203.0.113.5\r\n", unban("203.0.113.5")},
	{"typed tags in a row, no names", "[To:1000001][To:1000002] 203.0.113.5", unban("203.0.113.5")},
	{"typed reply tag, address glued", "[rp aid=1000001 to=2000001-55]203.0.113.5", unban("203.0.113.5")},
	{"addresses on several lines", "[To:1000001]unbanbot 203.0.113.5\n198.51.100.7\nそれと 2001:db8::9", unban("203.0.113.5", "198.51.100.7", "2001:db8::9")},

	// Names with digits and dots are not addresses: only a token that
	// parses strictly as one is.
	{"name with a dot and a digit", "[To:1000002]user.name2 [To:1000001]unbanbot 203.0.113.5", unban("203.0.113.5")},
	{"name like a version", "[To:1000002]v1.2.3 さん 203.0.113.5", unban("203.0.113.5")},
	{"name like a version, bare", "[To:1000002]v1.2.3\nこんにちは", help},
	{"name like a version, four parts", "[To:1000002]v1.2.3.4 さん\nこんにちは", help},
	{"name with a version number", "[To:1000002]Taro 2.0 203.0.113.5", unban("203.0.113.5")},
	{"name with a dotted number", "[To:1000002]web1.2 さん\nこんにちは", help},
	{"name with a three-part number", "[To:1000002]sshguard 2.4.2 さん\nこんにちは", help},
	{"name with a time", "[To:1000002]Taro 10:30 さん\nこんにちは", help},
	{"name glued to an address", "[To:1000002]web1.2.3.4.5\nこんにちは", help},

	// Markup ids are never addresses, wherever they sit.
	{"ids after a mention", "[To:1000001]unbanbot 1000001 2000001-55", help},
	{"id glued after a tag", "[To:1000001]1000001", help},
	{"reply ids", "[rp aid=1000001 to=2000001-1790000000000000000]", help},
	{"quote meta ids", "[To:1000001]unbanbot [qt][qtmeta aid=1000001 time=1732400000]こんにちは[/qt]", help},
	{"preview attributes", "[To:1000001]unbanbot [preview id=192.0.2.1 ht=480]", help},
	{"task attributes", "[To:1000001]unbanbot [task aid=1000001 st=open lt=1732400000]ログを見る[/task]", help},
	{"tag split address", "[To:1000001]unbanbot 192.0.2[hr].1", help},

	// The bot's ban notification (notify's banNotice) quoted, replied to,
	// or pasted, from every client.
	{"ban notice quoted, japanese", to + qtOpen + banJa + qtClose, unban("192.0.2.10")},
	{"ban notice quoted, english client", "[To:1000001]unbanbot " + qtOpen + banEn + qtClose + "please", unban("192.0.2.10")},
	{"ban notice quoted, text first", "[To:1000001]unbanbot これです " + qtOpen + banJa + qtClose, unban("192.0.2.10")},
	{"reply to the ban notice", "[rp aid=1000001 to=2000001-55]unbanbot さん\n" + qtOpen + banJa + qtClose + "\n解除お願いします", unban("192.0.2.10")},
	{"reply to the ban notice, english", "[rp aid=1000001 to=2000001-55]unbanbot " + qtOpen + banEn + qtClose, unban("192.0.2.10")},
	{"ban notice and another address", "[To:1000001]unbanbot 198.51.100.7 も " + qtOpen + banJa + qtClose, unban("198.51.100.7", "192.0.2.10")},
	{"range notice quoted", to + qtOpen + banRangeJa + qtClose, refused(unban(), "198.51.100.0/24", ReasonCIDR)},
	{"range notice and own address", "[To:1000001]unbanbot 198.51.100.7 " + qtOpen + banRangeJa + qtClose, refused(unban("198.51.100.7"), "198.51.100.0/24", ReasonCIDR)},
	{"ban summary quoted", to + qtOpen + "[info][title]sshguard がアドレスをブロックしました[/title]ほかに 2 件のブロックがありました（192.0.2.13, 192.0.2.14）。[/info]" + qtClose, unban("192.0.2.13", "192.0.2.14")},
	{"ban notice pasted", "[To:1000001]unbanbot " + banEn, unban("192.0.2.10")},
	{"address in info", "[To:1000001]unbanbot [info]203.0.113.5[/info]", unban("203.0.113.5")},
	{"address in info title", "[To:1000001]unbanbot [info][title]203.0.113.5[/title]お願いします[/info]", unban("203.0.113.5")},
	{"address in code", "[To:1000001]unbanbot [code]203.0.113.5[/code]", unban("203.0.113.5")},
	{"address in code, mobile line breaks", "[To:1000001]unbanbot さん\r\n[code]\r\n203.0.113.5\r\n[/code]", unban("203.0.113.5")},

	// Japanese text and punctuation around addresses.
	{"particle", to + "192.0.2.33です", unban("192.0.2.33")},
	{"kagi brackets", to + "「192.0.2.33」を解除してください", unban("192.0.2.33")},
	{"ideographic full stop", to + "IPは192.0.2.33。", unban("192.0.2.33")},
	{"full-width parens", to + "（2001:db8::1）からです", unban("2001:db8::1")},
	{"full-width digits and dots", to + "２０３．０．１１３．５", unban("203.0.113.5")},
	{"full-width colon label", to + "アドレス：１９２．０．２．１２", unban("192.0.2.12")},
	{"full-width IPv6", to + "２００１：ｄｂ８：：１です", unban("2001:db8::1")},
	{"ideographic space", to + "IP\u3000192.0.2.33\u3000です", unban("192.0.2.33")},
	{"kana-mode dots", to + "１９２。１６８。０。１０です", unban("192.168.0.10")},
	{"sentence stop then number", to + "192.0.2.1。3回目です", unban("192.0.2.1")},
	{"trailing sentence dot", to + "Please unban 192.0.2.33.", unban("192.0.2.33")},
	{"ellipsis", to + "えっと…192.0.2.33…", unban("192.0.2.33")},
	{"label colon", to + "IP:192.0.2.33", unban("192.0.2.33")},
	{"label glued", to + "IP192.0.2.33", unban("192.0.2.33")},
	{"IPv4 label", to + "IPv4:192.0.2.33", unban("192.0.2.33")},
	{"IPv6 label", to + "IPv6:2001:db8::1", unban("2001:db8::1")},
	{"Address label", to + "Address:2001:db8::1", unban("2001:db8::1")},
	{"trailing colon", to + "192.0.2.33: 解除お願いします", unban("192.0.2.33")},
	{"port", to + "ssh で 192.0.2.33:22 に入れません", unban("192.0.2.33")},
	{"bracketed IPv6 with port", to + "[2001:db8::1]:22", unban("2001:db8::1")},
	{"user at host", to + "ssh deploy@203.0.113.10", unban("203.0.113.10")},

	// IPv6 forms, normalized by net/netip.
	{"IPv6 full upper case", to + "2001:0DB8:0000:0000:0000:0000:0000:0001", unban("2001:db8::1")},
	{"IPv6 uncompressed", to + "2001:db8:0:0:0:0:0:1", unban("2001:db8::1")},
	{"IPv4-mapped", to + "::ffff:192.0.2.5", unban("192.0.2.5")},
	{"IPv4-mapped hex", to + "::FFFF:C000:0205", unban("192.0.2.5")},
	{"embedded IPv4", to + "2001:db8::192.0.2.5", unban("2001:db8::c000:205")},
	{"IPv6 trailing dot", to + "2001:db8::1.", unban("2001:db8::1")},
	{"IPv6 host /128", to + "2001:db8::1/128", unban("2001:db8::1")},
	{"IPv6 zone, global", to + "2001:db8::1%eth0", unban("2001:db8::1")},
	{"ULA", to + "fd12:3456:789a::1", unban("fd12:3456:789a::1")},
	{"private ranges", to + "10.0.0.5 172.16.0.1 192.168.1.10 100.64.0.1", unban("10.0.0.5", "172.16.0.1", "192.168.1.10", "100.64.0.1")},

	// Quoted ban notifications.
	{"quoted bot notification", to + qtOpen + notifyJa + qtClose, unban("192.0.2.12")},
	{"quoted bot notification, To after", qtOpen + notifyJa + qtClose + "\n[To:1234567]unbanbot さん\nお願いします", unban("192.0.2.12")},
	{"quoted bot notification, english", toEn + qtOpen + notifyEn + qtClose + "\nplease", unban("192.0.2.12")},
	{"reply to the bot notification", reply + qtOpen + notifyJa + qtClose, unban("192.0.2.12")},
	{"quoted notification, time omitted", to + "[qt][qtmeta aid=1234567]" + notifyJa + qtClose, unban("192.0.2.12")},
	{"nested quotes", to + qtOpen + "転送します" + qtOpen + notifyJa + qtClose + qtClose, unban("192.0.2.12")},
	{"notification pasted without quote", to + notifyJa, unban("192.0.2.12")},
	{"IPv6 notification", to + qtOpen + strings.Replace(notifyJa, "192.0.2.12", "2001:db8::12", 1) + qtClose, unban("2001:db8::12")},
	{"quoted sshguard log /32", to + qtOpen + sshguardLog + qtClose, unban("192.0.2.12")},
	{"sshguard log in code", to + "[code]" + sshguardLog + "\nNov 25 13:40:00 web-1 sshguard[1234]: Attack from \"192.0.2.12\" on service 100 with danger 10.[/code]", unban("192.0.2.12")},
	{"sshguard log /128", to + `Blocking "2001:db8::1/128" for 240 secs (3 attacks in 5 secs, after 2 abuses over 600 secs.)`, unban("2001:db8::1")},
	{"info box with title", to + "[info][title]解除依頼[/title]198.51.100.7[hr]よろしく[/info]", unban("198.51.100.7")},
	{"icons and previews", to + "[piconname:1234567][picon:1234567][pname:1234567][preview id=1234567 ht=480]198.51.100.7", unban("198.51.100.7")},

	// Refusals.
	{"CIDR v4", to + "192.0.2.0/24", refused(unban(), "192.0.2.0/24", ReasonCIDR)},
	{"CIDR v6", to + "2001:db8::/64", refused(unban(), "2001:db8::/64", ReasonCIDR)},
	{"CIDR with host bits", to + "192.0.2.5/24です", refused(unban(), "192.0.2.5/24", ReasonCIDR)},
	{"CIDR netmask", to + "192.0.2.0/255.255.255.0", refused(unban(), "192.0.2.0/255.255.255.0", ReasonCIDR)},
	{"host netmask", to + "192.0.2.5/255.255.255.255", unban("192.0.2.5")},
	{"full-width CIDR", to + "１９２．０．２．０／２４", refused(unban(), "192.0.2.0/24", ReasonCIDR)},
	{"sshguard subnet block", to + qtOpen + `Blocking "192.0.2.0/24" for 120 secs (3 attacks in 5 secs, after 1 abuses over 5 secs.)` + qtClose, refused(unban(), "192.0.2.0/24", ReasonCIDR)},
	{"unspecified v4", to + "0.0.0.0", refused(unban(), "0.0.0.0", ReasonUnspecified)},
	{"unspecified v6", to + "::", refused(unban(), "::", ReasonUnspecified)},
	{"loopback v4", to + "127.0.0.1", refused(unban(), "127.0.0.1", ReasonLoopback)},
	{"loopback /32", to + "127.0.0.1/32", refused(unban(), "127.0.0.1/32", ReasonLoopback)},
	{"loopback v6", to + "::1", refused(unban(), "::1", ReasonLoopback)},
	{"mapped loopback", to + "::ffff:127.0.0.1", refused(unban(), "::ffff:127.0.0.1", ReasonLoopback)},
	{"multicast v4", to + "224.0.0.251", refused(unban(), "224.0.0.251", ReasonMulticast)},
	{"multicast v6", to + "ff02::1", refused(unban(), "ff02::1", ReasonMulticast)},
	{"link-local v4", to + "169.254.169.254", refused(unban(), "169.254.169.254", ReasonLinkLocal)},
	{"link-local v6", to + "fe80::1", refused(unban(), "fe80::1", ReasonLinkLocal)},
	{"link-local with zone", to + "fe80::1%eth0", refused(unban(), "fe80::1%eth0", ReasonLinkLocal)},
	{"link-local, longest zone", to + "fe80::1%" + strings.Repeat("z", maxZone), refused(unban(), "fe80::1%"+strings.Repeat("z", maxZone), ReasonLinkLocal)},
	{"link-local, zone too long", to + "fe80::1%" + strings.Repeat("z", maxZone+1), refused(unban(), "fe80::1", ReasonLinkLocal)},
	{"global, zone too long", to + "2001:db8::1%" + strings.Repeat("z", 1000), unban("2001:db8::1")},
	{"broadcast", to + "255.255.255.255", refused(unban(), "255.255.255.255", ReasonBroadcast)},
	{"leading zeros", to + "192.168.001.010", refused(unban(), "192.168.001.010", ReasonAmbiguous)},
	{"leading zeros with port", to + "010.0.0.1:22", refused(unban(), "010.0.0.1", ReasonAmbiguous)},
	{"link-local prefix with zone", to + "fe80::1%eth0/64", refused(unban(), "fe80::1%eth0/64", ReasonCIDR)},
	{"multicast with zone", to + "ff02::1%eth0", refused(unban(), "ff02::1%eth0", ReasonMulticast)},
	{"interface notation", to + "inet6 2001:db8::5/64 scope global", refused(unban(), "2001:db8::5/64", ReasonCIDR)},
	{"mapped host prefix", to + "::ffff:192.0.2.5/128", unban("192.0.2.5")},
	{"mapped prefix", to + "::ffff:192.0.2.0/120", refused(unban(), "::ffff:192.0.2.0/120", ReasonCIDR)},
	{"address and refusal", to + "203.0.113.5 と 127.0.0.1 です", refused(unban("203.0.113.5"), "127.0.0.1", ReasonLoopback)},
	{"refusals in order", to + "127.0.0.1\n192.0.2.0/24\n203.0.113.5", refused(unban("203.0.113.5"), "127.0.0.1", ReasonLoopback, "192.0.2.0/24", ReasonCIDR)},
	{"duplicate refusals", to + "127.0.0.1 127.0.0.1 ::ffff:127.0.0.1", refused(unban(), "127.0.0.1", ReasonLoopback)},

	// Several addresses.
	{"three addresses", to + "192.0.2.1, 192.0.2.2、2001:db8::3", unban("192.0.2.1", "192.0.2.2", "2001:db8::3")},
	{"slash separated", to + "192.0.2.1/192.0.2.2", unban("192.0.2.1", "192.0.2.2")},
	{"range", to + "192.0.2.1〜192.0.2.3", unban("192.0.2.1", "192.0.2.3")},
	{"duplicates in other forms", to + "192.0.2.1 ::ffff:192.0.2.1 １９２．０．２．１ 192.0.2.1/32", unban("192.0.2.1")},
	{"IPv6 duplicates", to + "2001:db8::1 2001:DB8:0::1 2001:db8:0:0:0:0:0:1", unban("2001:db8::1")},
	{"five", to + "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5", unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5")},
	{"five and a duplicate", to + "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.1", unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5")},
	// Issue 14, item 2: the first five are unbanned, every further one is
	// listed as refused (these two used to refuse all six as too_many).
	{"six", to + "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6",
		refused(unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"), "192.0.2.6", ReasonOverLimit)},
	{"six with an earlier refusal", to + "127.0.0.1 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6",
		refused(unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"), "127.0.0.1", ReasonLoopback, "192.0.2.6", ReasonOverLimit)},
	{"issue 14 example", to + "192.0.2.200 、VPNだと 198.51.100.20 です。あと 203.0.113.9 も", unban("192.0.2.200", "198.51.100.20", "203.0.113.9")},
	{"issue 14 example, english client", "[To:1000001]unbanbot 192.0.2.200 、VPNだと 198.51.100.20 です。あと 203.0.113.9 も", unban("192.0.2.200", "198.51.100.20", "203.0.113.9")},
	{"over the limit, in order with refusals", to + "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6 127.0.0.1 2001:db8::7",
		refused(unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"), "192.0.2.6", ReasonOverLimit, "127.0.0.1", ReasonLoopback, "2001:db8::7", ReasonOverLimit)},
	{"over the limit, duplicates once", to + "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6 ::ffff:192.0.2.6 192.0.2.6/32 192.0.2.1",
		refused(unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"), "192.0.2.6", ReasonOverLimit)},
	{"over the limit, as typed", to + "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 １９２．０．２．６／３２",
		refused(unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"), "192.0.2.6/32", ReasonOverLimit)},
	{"refusals do not count toward the limit", to + "127.0.0.1 ::1 0.0.0.0 224.0.0.1 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5",
		refused(unban("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"),
			"127.0.0.1", ReasonLoopback, "::1", ReasonLoopback, "0.0.0.0", ReasonUnspecified, "224.0.0.1", ReasonMulticast)},

	// Near misses: never addresses.
	{"no address", to + "ブロックされました、助けてください", help},
	{"empty", "", help},
	{"only a mention", "[To:1234567]unbanbot さん", help},
	{"account and message ids", to + "1234567 1790000000000000000 567890123", help},
	{"tag attributes as text", to + "time=1732400000 to=567890123-1790000000000000000 aid=1234567", help},
	{"time", to + "13:40:00 に入れなくなりました", help},
	{"date and time", to + "2026-11-25 13:40:00 JST", help},
	{"time with seconds fraction", to + "13:40:00.123", help},
	{"version", to + "sshguard 2.4.2 を使っています", help},
	{"version with v", to + "v1.2.3.4", help},
	{"octet too large", to + "192.0.2.256", help},
	{"three parts", to + "1.2.3", help},
	{"five parts", to + "1.2.3.4.5", help},
	{"hostname", to + "192.0.2.1.nip.io", help},
	{"instance id", to + "i-0123456789abcdef0", help},
	{"MAC address", to + "00:1a:2b:3c:4d:5e", help},
	{"C++ scope", to + "std::string と a::b", help},
	{"hex words", to + "dead::beef cafe::", help},
	{"nine groups", to + "1:2:3:4:5:6:7:8:9", help},
	{"leading zero beyond 255", to + "192.168.001.300", help},
	// Names are searched like any text (issue 14): a name that is an
	// address reads as one, a name that merely has digits and dots does not.
	{"name with an address", "[To:1234567]192.0.2.1 さん\nこんにちは", unban("192.0.2.1")},
	{"bare name with an address", "[To:1234567]gw 192.0.2.1\nこんにちは", unban("192.0.2.1")},
	{"reply name with an address", "[rp aid=1234567 to=567890123-1790000000000000000]10.0.0.1 さん\n", unban("10.0.0.1")},
	{"attachment name", to + "[download:12345]192.0.2.1.log (1.2 KB)[/download]", help},
	{"prefix too long is punctuation", to + "192.0.2.1/99", unban("192.0.2.1")},
	{"URL", to + "http://192.0.2.1/index.html を見て", unban("192.0.2.1")},

	// Words against the unban (issue 11, item 6): the asker's own words
	// ask to keep the block, so nothing is unbanned; the addresses found
	// are kept for the reply.
	{"issue 11 example", to + qtOpen + banJa + qtClose + "これ攻撃ですよね？ブロックしたままにしてください", keep("192.0.2.10")},
	{"issue 11 example, english client", "[To:1000001]unbanbot " + qtOpen + banJa + qtClose + "これ攻撃ですよね？ブロックしたままにしてください", keep("192.0.2.10")},
	{"reply to the ban notice, keep", "[rp aid=1000001 to=2000001-55]unbanbot さん\nこれ攻撃ですよね？ブロックしたままにしてください", keep()},
	{"keep, text before the quote", to + "ブロックしたままで。" + qtOpen + banJa + qtClose, keep("192.0.2.10")},
	{"keep, bare", to + "192.0.2.10 はブロックしたまま", keep("192.0.2.10")},
	{"keep, ままで", to + "192.0.2.10 はブロックしたままでお願いします", keep("192.0.2.10")},
	{"keep, ままでいい", to + "192.0.2.10 はブロックしたままでいいです", keep("192.0.2.10")},
	{"keep, ままで大丈夫", to + "192.0.2.10 はブロックしたままで大丈夫です", keep("192.0.2.10")},
	{"keep, しておいて", to + "192.0.2.10 はブロックしたままにしておいてください", keep("192.0.2.10")},
	{"keep, しといて", to + "192.0.2.10 ブロックしたままにしといて", keep("192.0.2.10")},
	{"keep, のまま", to + "192.0.2.10 はブロックのままでお願いします", keep("192.0.2.10")},
	{"keep, passive with a request form", to + "192.0.2.10 はブロックされたままにしておいてください", keep("192.0.2.10")},
	{"keep, 維持", to + "192.0.2.10 のブロックを維持", keep("192.0.2.10")},
	{"keep, 維持して", to + "192.0.2.10 のブロックを維持してください", keep("192.0.2.10")},
	{"keep, 維持で", to + "192.0.2.10 はブロック維持で", keep("192.0.2.10")},
	{"keep, 継続", to + "192.0.2.10 はブロック継続でお願いします", keep("192.0.2.10")},
	{"keep, 解除しないで", to + "192.0.2.10 は解除しないで", keep("192.0.2.10")},
	{"keep, 解除しないでください", to + "192.0.2.10 はまだ解除しないでください", keep("192.0.2.10")},
	{"keep, ブロック解除しないで", to + "192.0.2.10 をブロック解除しないでください", keep("192.0.2.10")},
	{"keep, 解除は", to + "192.0.2.10 の解除はしないでください", keep("192.0.2.10")},
	{"keep, 解除不要", to + "192.0.2.10 は解除不要です", keep("192.0.2.10")},
	{"keep, 解除は不要", to + "192.0.2.10 の解除は不要です", keep("192.0.2.10")},
	{"keep, 必要ありません", to + "192.0.2.10 は解除の必要はありません", keep("192.0.2.10")},
	{"keep, しなくていい", to + "192.0.2.10 は解除しなくていいです", keep("192.0.2.10")},
	{"keep, しなくても大丈夫", to + "192.0.2.10 は解除しなくても大丈夫です", keep("192.0.2.10")},
	{"keep, block it", to + "192.0.2.10 は攻撃なのでブロックしてください", keep("192.0.2.10")},
	{"keep, ブロックし続けて", to + "192.0.2.10 はブロックし続けてください", keep("192.0.2.10")},
	{"keep, unbanしないで", to + "192.0.2.10 は unban しないで", keep("192.0.2.10")},
	{"keep, half-width kana", to + "192.0.2.10 はﾌﾞﾛｯｸしたままにしてください", keep("192.0.2.10")},
	{"keep, full-width", to + "１９２．０．２．１０ は解除しないでください", keep("192.0.2.10")},
	{"keep, no address", to + "ブロックしたままにしてください", keep()},
	{"keep beats thanks", to + "ありがとう、ブロックしたままでいいです", keep()},
	{"keep with a refusal", to + "192.0.2.0/24 は解除しないで", refused(keep(), "192.0.2.0/24", ReasonCIDR)},
	{"keep it blocked", to + "192.0.2.10 is an attacker, keep it blocked", keep("192.0.2.10")},
	{"keep blocked", toEn + "Keep blocked: 192.0.2.10", keep("192.0.2.10")},
	{"keep, upper case", toEn + "KEEP IT BLOCKED 192.0.2.10", keep("192.0.2.10")},
	{"keep the address blocked", toEn + "please keep 192.0.2.10 blocked", keep("192.0.2.10")},
	{"keep this one blocked", toEn + "keep this one blocked " + qtOpen + banEn + qtClose, keep("192.0.2.10")},
	{"keep the ban", toEn + "keep the ban on 192.0.2.10", keep("192.0.2.10")},
	{"leave it blocked", toEn + "192.0.2.10: leave it blocked", keep("192.0.2.10")},
	{"leave them banned", toEn + "leave them banned 192.0.2.10 192.0.2.11", keep("192.0.2.10", "192.0.2.11")},
	{"do not unblock", toEn + "do not unblock 192.0.2.10", keep("192.0.2.10")},
	{"don't unblock", toEn + "don't unblock 192.0.2.10", keep("192.0.2.10")},
	{"don't unban, phone apostrophe", toEn + "Don\u2019t unban 192.0.2.10", keep("192.0.2.10")},
	{"dont unban", toEn + "dont unban 192.0.2.10 pls", keep("192.0.2.10")},
	{"do NOT unban", toEn + "Do NOT unban 192.0.2.10", keep("192.0.2.10")},
	{"no need to unban", toEn + "no need to unban 192.0.2.10", keep("192.0.2.10")},
	{"unban not needed", toEn + "192.0.2.10 unban is not needed", keep("192.0.2.10")},
	{"keep, english client, same line", "[To:1000001]unbanbot keep it blocked " + qtOpen + banEn + qtClose, keep("192.0.2.10")},
	{"keep, english client, after the address", "[To:1000001]unbanbot 203.0.113.5 do not unban, it's an attacker", keep("203.0.113.5")},
	{"keep, english reply, same line", "[rp aid=1000001 to=2000001-55]unbanbot leave it blocked", keep()},
	{"keep after a negation and so", toEn + "I'm not sure who 192.0.2.10 is so keep it blocked", keep("192.0.2.10")},
	{"keep after no idea", toEn + "no idea who 192.0.2.10 is, please keep it blocked", keep("192.0.2.10")},
	{"keep after a sentence with a negation", toEn + "That is not me. Keep 192.0.2.10 blocked", keep("192.0.2.10")},
	{"keep after a clause with a negation", toEn + "I don't know who this is, keep it blocked 192.0.2.10", keep("192.0.2.10")},

	// Not words against the unban: requests and complaints that it is
	// still blocked.
	{"unban request", to + "192.0.2.10 を解除してください", unban("192.0.2.10")},
	{"still blocked, passive", to + "192.0.2.10 がブロックされたままです、解除お願いします", unban("192.0.2.10")},
	{"still blocked, troubled", to + "192.0.2.10 がブロックされたままで困っています", unban("192.0.2.10")},
	{"still blocked, so", to + "ブロックされたままなので 192.0.2.10 を解除して", unban("192.0.2.10")},
	{"still blocked, has stayed", to + "192.0.2.10 がブロックされたままになっています", unban("192.0.2.10")},
	{"still blocked, terse passive", to + "192.0.2.10 ブロックされたまま。", unban("192.0.2.10")},
	{"still blocked, active です", to + "sshguard が 192.0.2.10 をブロックしたままです", unban("192.0.2.10")},
	{"do not leave it blocked", to + "192.0.2.10 をブロックしたままにしないでください", unban("192.0.2.10")},
	{"do not want it kept", to + "192.0.2.10 をブロックしたままにしてほしくないです", unban("192.0.2.10")},
	{"block ongoing", to + "192.0.2.10 はブロック継続中です", unban("192.0.2.10")},
	{"block goes on, so unban", to + "ブロックを継続しているので 192.0.2.10 を解除して", unban("192.0.2.10")},
	{"block duration", to + "ブロック継続時間はどれくらいですか？ 192.0.2.10", unban("192.0.2.10")},
	{"unblock it, katakana", to + "192.0.2.10 をアンブロックしてください", unban("192.0.2.10")},
	{"it keeps blocking", to + "192.0.2.10 をブロックし続けています", unban("192.0.2.10")},
	{"not unbanned, passive", to + "192.0.2.10 が解除されないです", unban("192.0.2.10")},
	{"cannot unban", to + "192.0.2.10 が解除できません", unban("192.0.2.10")},
	{"unless unbanned", to + "192.0.2.10 を解除しないと仕事になりません", unban("192.0.2.10")},
	{"why not unbanned", to + "なぜ 192.0.2.10 を解除しないのですか", unban("192.0.2.10")},
	{"does not unban", to + "何度やっても 192.0.2.10 を解除しないです", unban("192.0.2.10")},
	{"won't it unban by itself", to + "192.0.2.10 は自動で解除しないでしょうか", unban("192.0.2.10")},
	{"unban needed", to + "192.0.2.10 の解除が必要です", unban("192.0.2.10")},
	{"re-block", to + "192.0.2.10 を解除して、再ブロックされないようにしてください", unban("192.0.2.10")},
	{"don't keep it blocked", toEn + "please don't keep 192.0.2.10 blocked", unban("192.0.2.10")},
	{"please do not keep it blocked", toEn + "please do not keep it blocked, 192.0.2.10 is mine", unban("192.0.2.10")},
	{"stop keeping it", toEn + "stop and never leave it blocked like that 192.0.2.10", unban("192.0.2.10")},
	{"why keep it blocked", toEn + "why do you keep it blocked? 192.0.2.10", unban("192.0.2.10")},
	{"don't want it kept blocked", toEn + "I don't want you to keep it blocked, 192.0.2.10 is me", unban("192.0.2.10")},
	{"I keep getting blocked", toEn + "I keep getting blocked from 192.0.2.10", unban("192.0.2.10")},
	{"it keeps blocking me", toEn + "it keeps blocking me, 192.0.2.10", unban("192.0.2.10")},
	{"keep it unblocked", toEn + "please keep 192.0.2.10 unblocked", unban("192.0.2.10")},
	{"why don't you unban", toEn + "why don't you unban 192.0.2.10?", unban("192.0.2.10")},
	{"unban is needed", toEn + "192.0.2.10 unban is needed", unban("192.0.2.10")},
	{"unblocking", toEn + "192.0.2.10 unblock please, I need to keep working", unban("192.0.2.10")},
	{"keep words only quoted", to + qtOpen + "解除しないでください" + qtClose + "192.0.2.10 を解除してください", unban("192.0.2.10")},
	{"keep words only quoted, english", toEn + qtOpen + "keep it blocked" + qtClose + "I am 192.0.2.10, please unban", unban("192.0.2.10")},
	{"keep words in a nested quote", to + qtOpen + "a" + qtOpen + "ブロックしたままにしてください" + qtClose + "b" + qtClose + "192.0.2.10", unban("192.0.2.10")},
	{"bot result pasted", to + "[info][title]ブロック解除の結果[/title]・web-1 (i-0123456789abcdef0): 192.0.2.10 のブロックを解除しました\n今すぐ接続を試してください。\n解除後しばらく（ブロック時間の最大 1.5 倍）、sshguard はこのアドレスを再ブロックしません。その間に SSH の鍵や設定を確認してください。認証の失敗が続くと、次は 2 倍の時間ブロックされます。[/info]", unban("192.0.2.10")},
	{"bot result pasted, english", toEn + "[info][title]Unblock result[/title]・web-1 (i-0123456789abcdef0): unblocked 192.0.2.10\nPlease try to connect now.\nFor a while (up to 1.5 × the block time) sshguard will not block this address again: use it to check your SSH key and settings. If failures go on, the next block lasts twice as long.[/info]", unban("192.0.2.10")},
	{"bot help pasted", to + "ブロックされた IP アドレスを書いてメンションしてください（例: 203.0.113.5）。ボットが投稿したブロック通知を引用してメンションしても解除できます。", unban("203.0.113.5")},

	// Thanks and help.
	{"thanks ja", to + "ありがとうございます！", thanks},
	{"thanks ja past", reply + "解除されました、助かりました(bow)", thanks},
	{"thanks kanji", to + "感謝です", thanks},
	{"thanks half-width kana", to + "ｻﾝｷｭｰ", thanks},
	{"thanks en", to + "Thanks!", thanks},
	{"thank you en", toEn + "Thank you so much", thanks},
	{"thx", to + "THX", thanks},
	{"ty", to + "ok ty", thanks},
	{"ty after a digit", to + "5ty", help},
	{"ty in a word", to + "what type of message do you want?", help},
	{"thanks with an address is a request", to + "192.0.2.1 お願いします、ありがとう", unban("192.0.2.1")},
	{"thanks only in the quote", to + qtOpen + "ありがとう" + qtClose, help},
	{"thanks after a quote", to + qtOpen + "解除しました" + qtClose + "ありがとう", thanks},
	{"thanks in a name", "[To:1234567]ty さん\n使い方", help},
	{"thanks after an unclosed quote", to + "[qt]ありがとう", thanks},
	{"thanks after a stray closing", to + "[qt]x[/qt][/qt]ありがとう", thanks},
	{"thanks beside a quote in an unclosed one", to + "[qt]ありがとう[qt]x[/qt]", thanks},
	{"thanks in a nested quote", to + "[qt]a[qt]ありがとう[/qt]b[/qt]", help},
	{"thanks between nested quotes", to + "[qt]a[qt]b[/qt]ありがとう[/qt]", help},
	{"help en", toEn + "how do I use this?", help},

	// An SRE answers an approval request (issue 11, item 3).
	{"approve", to + "approve K7QX2M", decided(IntentApprove, "K7QX2M")},
	{"approve, lower case, english client", "[To:1000001]unbanbot approve k7qx2m", decided(IntentApprove, "K7QX2M")},
	{"承認", to + "承認します K7QX2M", decided(IntentApprove, "K7QX2M")},
	{"承認, full-width", to + "承認　Ｋ７ＱＸ２Ｍ", decided(IntentApprove, "K7QX2M")},
	{"deny", to + "deny: K7QX2M", decided(IntentDeny, "K7QX2M")},
	{"却下", to + "却下 K7QX2M です", decided(IntentDeny, "K7QX2M")},
	{"reply to the approval request", "[rp aid=1000001 to=2000009-77]unbanbot さん\n承認 K7QX2M", decided(IntentApprove, "K7QX2M")},
	{"approve only in the quote", to + qtOpen + "approve K7QX2M" + qtClose, help},
	{"a request with an address is not a decision", to + "do not deny access: 203.0.113.5", unban("203.0.113.5")},
	{"approve word without a code", to + "approve please", help},
	{"code too long", to + "approve K7QX2MZ", help},
	// Only the decision itself decides (review of issue 11): a sentence
	// around it, a negation, a question or a pasted request does not.
	{"不承認", to + "不承認 K7QX2M", help},
	{"未承認", to + "未承認 K7QX2M", help},
	{"don't approve", to + "don't approve K7QX2M", help},
	{"do not approve, an attacker", to + "do not approve K7QX2M, looks like an attacker", help},
	{"a question", to + "should we approve K7QX2M?", help},
	{"would not", to + "I would not approve K7QX2M", help},
	{"the pasted request", to + "[info]approve K7QX2M\ndeny K7QX2M[/info]", help},
	{"approve with a full stop", to + "approve K7QX2M.", decided(IntentApprove, "K7QX2M")},
	{"reply form, 承認します", "[rp aid=1000001 to=2000009-77]unbanbot さん\n承認します K7QX2M", decided(IntentApprove, "K7QX2M")},

	// An SRE asks for the ban-list page (issue 13): the word alone.
	{"一覧", to + "一覧", list},
	{"一覧, full-width stop", to + "一覧。", list},
	{"一覧をお願いします", to + "一覧をお願いします", list},
	{"list", to + "list", list},
	{"LIST, english client", "[To:1000001]unbanbot LIST", list},
	{"list please", toEn + "list please", list},
	{"list, reply form", "[rp aid=1000001 to=2000009-77]unbanbot さん\n一覧", list},
	{"list in a sentence", to + "list the rooms", help},
	{"一覧 in a sentence", to + "一覧にないアドレスです", help},
	{"a question about the list", to + "list?", help},
	{"list only in the quote", to + qtOpen + "一覧" + qtClose, help},
	{"a pasted list", to + "[info]list[/info]", help},
	{"list with an address is a request", to + "list 192.0.2.1", unban("192.0.2.1")},

	// Broken markup.
	{"unclosed quote", to + "[qt][qt]192.0.2.1", unban("192.0.2.1")},
	{"stray closings", "[/qt][/qt][/info]ありがとう", thanks},
	{"not a To tag", "[To:abc]192.0.2.1", unban("192.0.2.1")},
	{"unclosed tag", "[rp aid=1234567 to=567890123-1790000000000000000 192.0.2.1", unban("192.0.2.1")},
	{"unclosed download", to + "[download:12345]192.0.2.1", unban("192.0.2.1")},
	{"full-width brackets are text", "［To:1234567］192.0.2.1", unban("192.0.2.1")},
	{"escaped host name in the notification", to + qtOpen + strings.Replace(notifyJa, "web-1", "web［qt］1", 1) + qtClose + "ありがとう", unban("192.0.2.12")},
	{"escaped brackets do not open a quote", "［qt］ありがとう", thanks},
	{"invalid UTF-8", to + "\xff\xfe192.0.2.1\xff", unban("192.0.2.1")},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.body)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tc.body, js(got), js(tc.want))
			}
		})
	}
}

func js(r Result) string {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Sprintf("%#v", r)
	}
	return string(b)
}

func TestResultJSON(t *testing.T) {
	got := js(Parse(to + "こんにちは"))
	if want := `{"intent":"help","addresses":[]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got = js(Parse(to + "192.0.2.0/24 203.0.113.5"))
	if want := `{"intent":"unban","addresses":["203.0.113.5"],"refused":[{"text":"192.0.2.0/24","reason":"cidr"}],"reason":"cidr"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got = js(Parse(to + "203.0.113.5 は解除しないで"))
	if want := `{"intent":"keep","addresses":["203.0.113.5"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	var b strings.Builder
	for i := range MaxListed + 2 {
		fmt.Fprintf(&b, "192.0.2.%d ", i+1)
	}
	got = js(Parse(b.String()))
	if !strings.HasPrefix(got, `{"intent":"unban","addresses":["192.0.2.1","192.0.2.2","192.0.2.3","192.0.2.4","192.0.2.5"],"refused":[{"text":"192.0.2.6","reason":"over_limit"},`) ||
		!strings.HasSuffix(got, `{"text":"192.0.2.20","reason":"over_limit"}],"dropped":2,"reason":"over_limit"}`) {
		t.Errorf("got %s", got)
	}
}

// TestMaxListed: a list pasted by a person is answered in full up to
// MaxListed things; past that, Dropped says how many more there were.
func TestMaxListed(t *testing.T) {
	list := func(addrs ...string) string { return to + strings.Join(addrs, " ") }
	seq := func(format string, from, n int) []string {
		var out []string
		for i := from; i < from+n; i++ {
			out = append(out, fmt.Sprintf(format, i))
		}
		return out
	}
	for _, tc := range []struct {
		name                      string
		body                      string
		addrs, refused, overLimit int
		dropped                   int
		first, reason             string
	}{
		{"30 loopback", list(seq("127.0.0.%d", 1, 30)...), 0, MaxListed, 0, 30 - MaxListed, "127.0.0.1", ReasonLoopback},
		{"20 addresses", list(seq("192.0.2.%d", 1, 20)...), MaxAddresses, 15, 15, 0, "192.0.2.6", ReasonOverLimit},
		{"21 addresses", list(seq("192.0.2.%d", 1, 21)...), MaxAddresses, 15, 15, 1, "192.0.2.6", ReasonOverLimit},
		{"2 addresses, 18 refusals", list(append(seq("192.0.2.%d", 1, 2), seq("127.0.0.%d", 1, 18)...)...), 2, 18, 0, 0, "127.0.0.1", ReasonLoopback},
		{"2 addresses, 19 refusals", list(append(seq("192.0.2.%d", 1, 2), seq("127.0.0.%d", 1, 19)...)...), 2, 18, 0, 1, "127.0.0.1", ReasonLoopback},
		// Junk first does not hide the address after it.
		{"25 refusals, then an address", list(append(seq("127.0.0.%d", 1, 25), "203.0.113.5")...), 1, MaxListed - 1, 0, 25 - (MaxListed - 1), "127.0.0.1", ReasonLoopback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.body)
			overLimit := 0
			for _, r := range got.Refused {
				if r.Reason == ReasonOverLimit {
					overLimit++
				}
			}
			if got.Intent != IntentUnban || len(got.Addresses) != tc.addrs || len(got.Refused) != tc.refused ||
				overLimit != tc.overLimit || got.Dropped != tc.dropped || got.Reason != tc.reason || got.Refused[0].Text != tc.first {
				t.Errorf("got %s", js(got))
			}
		})
	}
}

// TestLarge checks a webhook-sized body (64 KiB) full of addresses and of
// the shapes that make naive scanners slow.
func TestLarge(t *testing.T) {
	bodies := map[string]string{
		"addresses":     strings.Repeat("192.0.2.1 ", 6600),
		"distinct":      largeDistinct(),
		"dots":          strings.Repeat(".", 65536),
		"colons":        strings.Repeat(":", 65536),
		"digits":        strings.Repeat("1", 65536),
		"dotted digits": strings.Repeat("1.", 32768),
		"brackets":      strings.Repeat("[", 65536),
		"open tags":     strings.Repeat("[rp aid=1 ", 6600),
		"To tags":       strings.Repeat("[To:1]", 11000),
		"downloads":     strings.Repeat("[download:1]", 5500),
		"quotes":        strings.Repeat("[qt]", 16000) + "192.0.2.1",
		"stops":         strings.Repeat("1。", 32768),
		"thanks-ish":    strings.Repeat("tyx", 22000),
		"long zones":    largeLongZones(),
		"keep matches":  strings.Repeat("ブロック継続中 ", 5000),
		"keep clauses":  strings.Repeat("don't keep it blocked ", 3000),
		"keep words":    strings.Repeat("keep ", 13000) + "blocked",
		"long refusals": largeLongRefusals(),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			r := Parse(body)
			if len(r.Addresses) > MaxAddresses || len(r.Addresses)+len(r.Refused) > MaxListed {
				t.Errorf("got %d addresses, %d refusals", len(r.Addresses), len(r.Refused))
			}
			if n := len(js(r)); n > maxResultJSON {
				t.Errorf("result is %d bytes of JSON: %s", n, js(r))
			}
		})
	}
	if r := Parse(bodies["addresses"]); !reflect.DeepEqual(r, unban("192.0.2.1")) {
		t.Errorf("repeated address: got %s", js(r))
	}
	// Every distinct address is counted: the first five taken, the rest
	// refused or dropped (this used to refuse all as too_many).
	n := strings.Count(bodies["distinct"], "\n")
	if r := Parse(bodies["distinct"]); r.Reason != ReasonOverLimit || len(r.Addresses) != MaxAddresses ||
		r.Addresses[0] != "10.0.0.0" || len(r.Refused) != MaxListed-MaxAddresses || r.Dropped != n-MaxListed {
		t.Errorf("%d distinct addresses: got %s", n, js(r))
	}
	if r := Parse(bodies["quotes"]); !reflect.DeepEqual(r, unban("192.0.2.1")) {
		t.Errorf("deep quotes: got %s", js(r))
	}
}

// maxResultJSON bounds the size of a Result in JSON, which travels through
// Step Functions in every state of an execution.
const maxResultJSON = 4096

// largeLongRefusals is distinct refusals whose text is as long as a
// refusal's text can be: an embedded IPv4, the longest zone, a prefix.
func largeLongRefusals() string {
	var b strings.Builder
	for i := 0; b.Len() < 65536; i++ {
		fmt.Fprintf(&b, "fe80:0000:0000:0000:0000:%04x:255.255.255.255%%%s/120 ", i&0xffff, strings.Repeat("z", maxZone))
	}
	return b.String()
}

func largeLongZones() string {
	var b strings.Builder
	for i := 1; b.Len() < 65536; i++ {
		fmt.Fprintf(&b, "fe80::%x%%%s ", i, strings.Repeat("z", 1000))
	}
	return b.String()
}

func largeDistinct() string {
	var b strings.Builder
	for i := 0; b.Len() < 65536; i++ {
		fmt.Fprintf(&b, "10.%d.%d.%d\n", i>>16&255, i>>8&255, i&255)
	}
	return b.String()
}

// benchBody is a typical request: a mention and a quoted ban notification.
const benchBody = "[To:1234567]unbanbot さん\n" + qtOpen + notifyJa + qtClose + "\nお願いします"

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		Parse(benchBody)
	}
}

func BenchmarkParseLarge(b *testing.B) {
	body := strings.Repeat(qtOpen+notifyJa+qtClose+"\n", 65536/(len(qtOpen)+len(notifyJa)+len(qtClose)+1))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		Parse(body)
	}
}
