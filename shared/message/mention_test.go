package message

import (
	"strings"
	"testing"
)

const bot = "1000001"

var mentionCases = []struct {
	name string
	body string
	want bool
}{
	// What the clients send when someone writes to the bot.
	{"japanese client", "[To:1000001]unbanbot さん\n203.0.113.5", true},
	{"english client", "[To:1000001]unbanbot 203.0.113.5", true},
	{"typed by hand", "[To:1000001]203.0.113.5", true},
	{"reply to the bot", "[rp aid=1000001 to=2000001-55]unbanbot さん\n203.0.113.5", true},
	{"reply, japanese spelling", "[返信 aid=1000001 to=2000001-55]unbanbot さん\n203.0.113.5", true},
	{"reply, attributes swapped", "[rp to=2000001-55 aid=1000001]unbanbot 203.0.113.5", true},
	{"upper-case tag", "[TO:1000001]unbanbot 203.0.113.5", true},
	{"second of several", "[To:1000002]Taro Yamada[To:1000001]unbanbot 203.0.113.5", true},
	{"after text", "203.0.113.5 です [To:1000001]unbanbot さん", true},
	{"reply to someone and To the bot", "[rp aid=1000002 to=2000001-55]Taro さん\n[To:1000001]unbanbot 203.0.113.5", true},
	{"in an info box", "[info][To:1000001]unbanbot 203.0.113.5[/info]", true},
	{"in a code block", "[code][To:1000001][/code]", true},

	// Not the bot.
	{"someone else", "[To:1000002]Taro Yamada 203.0.113.5", false},
	{"reply to someone else", "[rp aid=1000002 to=2000001-55]Taro さん 203.0.113.5", false},
	{"longer id", "[To:10000011]x", false},
	{"shorter id", "[To:100000]x", false},
	{"leading zero", "[To:01000001]x", false},
	{"toall", "[toall]\n203.0.113.5", false},
	{"picon of the bot", "[piconname:1000001] 203.0.113.5", false},
	{"id in text", "1000001 203.0.113.5", false},
	{"full-width brackets", "［To:1000001］unbanbot 203.0.113.5", false},
	{"unclosed tag", "[To:1000001 203.0.113.5", false},
	{"space in tag", "[To: 1000001]", false},
	{"reply without aid", "[rp to=2000001-55]unbanbot", false},
	{"reply, aid not digits", "[rp aid=1000001x to=2000001-55]", false},
	{"bot as the message id", "[rp aid=1000002 to=2000001-1000001]", false},
	{"empty", "", false},

	// Quotes (issue 11, item 7).
	{"quoted request", "[qt][qtmeta aid=1000002 time=1732400000][To:1000001]unbanbot さん\n203.0.113.5[/qt]\n同じです", false},
	{"quoted reply to the bot", "[qt][qtmeta aid=1000002 time=1732400000][rp aid=1000001 to=2000001-55]unbanbot さん 203.0.113.5[/qt] 私もです", false},
	{"quoted ban notice mentioning the bot", "[qt][qtmeta aid=1000001 time=1732400000][To:1000001]unbanbot さん\n" + banJa + "[/qt]これ攻撃ですか？", false},
	{"quoted ban notice, then the mention", "[qt][qtmeta aid=1000001 time=1732400000][To:1000001]unbanbot\n" + banJa + "[/qt][To:1000001]unbanbot さん お願いします", true},
	{"mention, then a quote with one", "[To:1000001]unbanbot さん\n[qt][qtmeta aid=1000002 time=1732400000][To:1000001]unbanbot 203.0.113.5[/qt]", true},
	{"reply to the bot quoting a ban notice", "[rp aid=1000001 to=2000001-55]unbanbot さん\n[qt][qtmeta aid=1000001 time=1732400000]" + banJa + "[/qt]", true},
	{"nested quotes", "[qt][qt][To:1000001][/qt][To:1000001][/qt]", false},
	{"after nested quotes", "[qt]a[qt][To:1000001][/qt]b[/qt][To:1000001]", true},
	{"between nested quotes", "[qt]a[qt]b[/qt][To:1000001]c[/qt]", false},
	{"unclosed quote is text", "[qt][To:1000001]unbanbot 203.0.113.5", true},
	{"unclosed outer, closed inner", "[qt]x[qt][To:1000001][/qt]", false},
	{"unclosed outer, mention before inner", "[qt][To:1000001][qt]x[/qt]", true},
	{"stray closing", "[/qt][To:1000001]", true},
	{"extra closing after a quote", "[qt]a[/qt][/qt][To:1000001]", true},
	{"closing before opening", "[/qt][To:1000001][qt]", true},
	{"upper-case quote", "[QT][To:1000001][/QT]", false},
	{"quote in an attachment name", "[download:1][qt][/download][To:1000001]", true},
}

func TestMentionsBot(t *testing.T) {
	for _, tc := range mentionCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := MentionsBot(tc.body, bot); got != tc.want {
				t.Errorf("MentionsBot(%q, %q) = %v, want %v", tc.body, bot, got, tc.want)
			}
		})
	}
	if MentionsBot("[To:1000001]x", "") {
		t.Error("an empty bot id matched")
	}
}

func TestMentionsBotLarge(t *testing.T) {
	n := 65536 / len("[qt][To:1000001][/qt]")
	for _, tc := range []struct {
		name string
		body string
		want bool
	}{
		{"deep unclosed quotes", strings.Repeat("[qt]", 16000) + "[To:1000001]", true},
		{"deep quoted mentions", strings.Repeat("[qt][To:1000001]", n) + strings.Repeat("[/qt]", n), false},
		{"many quoted mentions", strings.Repeat("[qt][To:1000001][/qt]", n), false},
		{"many mentions of others", strings.Repeat("[To:1000002]", 11000), false},
		{"the last one counts", strings.Repeat("[qt][To:1000001][/qt]", n-1) + "[To:1000001]", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MentionsBot(tc.body, bot); got != tc.want {
				t.Errorf("got %v", got)
			}
		})
	}
}
