package message

import (
	"regexp"
	"strings"
)

// A keep rule is a phrase in the sender's own words that asks the bot to
// leave the block in place: typically someone replying to a ban notice
// about an attacker ("これ攻撃ですよね？ブロックしたままにしてください").
// Unbanning against such words would let the attacker in, while a keep
// read by mistake only costs the sender a second message; the rules lean
// that way, but never read a complaint that the block is still there as a
// wish to keep it.
//
// The grammar that tells them apart in Japanese: a request to keep has a
// request or approval form after まま ("ブロックしたままにしてください",
// "ブロックしたままでいいです"), and negation comes after the verb
// ("ブロックしたままにしないで" asks for the opposite). "ブロックされたまま"
// ("still blocked", passive) followed by です, で困って, なので or
// になっています is a complaint; only with a request form
// ("ブロックされたままにしておいて") does it ask to keep. In English the
// negation comes before ("don't keep it blocked") and so does a
// complaint's "why".
type keepRule struct {
	re *regexp.Regexp
	// notAfter: the match does not count when these follow it.
	notAfter []string
	// negatable: the match does not count after a negation or "why"
	// earlier in its clause.
	negatable bool
}

// approve is what may follow "ブロックしたままで": a request or an approval.
const approve = `お願い|おねがい|願います|いい|良い|よい|大丈夫|だいじょうぶ|構いません|かまいません|構わない|かまわない|結構|ok|問題ない|問題ありません`

// notWanted are the Japanese negations that turn a request form around
// ("ブロックしたままにしてほしくない").
var notWanted = []string{"ほしくな", "欲しくな", "もらいたくな", "いただきたくな", "くれるな", "は困", "はこま", "は嫌", "はいや", "はだめ", "はダメ", "は駄目", "はよくな", "は良くな", "はいけ", "ちゃだめ", "ちゃダメ", "ちゃ困"}

// keepRules are matched against NFKC-folded, lower-cased text.
var keepRules = []keepRule{
	// ブロックしたままにしてください, ブロックしたままでいいです,
	// ブロックのままでお願いします, ブロックされたままにしておいて.
	{re: regexp.MustCompile(`ブロック(?:した|された|の|状態の|中の)まま(?:の状態)?(?:に(?:して|しておいて|しといて|お願い|おねがい)|で(?:` + approve + `)|が(?:いい|良い|よい))`), notAfter: notWanted},
	// A terse order: "ブロックしたまま。", "ブロックしたままで!". Not the
	// passive: "ブロックされたまま。" is "still blocked."
	{re: regexp.MustCompile(`ブロックしたまま(?:で)?(?:[。.!\n]|$)`)},
	// ブロックを維持, ブロック維持で, ブロックを継続してください; not
	// ブロック継続中 (still blocked), ブロックを維持しないで, ブロックの継続時間.
	{re: regexp.MustCompile(`ブロック(?:を|は)?(?:維持|継続)`), notAfter: append([]string{
		"しな", "せず", "中", "している", "しています", "してる", "してます", "しても", "され",
		"をやめ", "はやめ", "するのを", "は不要", "時間", "期間", "日数",
	}, notWanted...)},
	// 解除しないで(ください), 解除不要, 解除は必要ありません, 解除しなくていい.
	// Not 解除されない (passive), 解除できない, 解除しないと, and not
	// 解除しないです (it does not unban) nor 解除しないでしょうか (won't it?).
	{re: regexp.MustCompile(`(?:解除|アンブロック|アンバン|unban|unblock)\s*(?:を|は|も)?(?:しないで|しなくて(?:も)?(?:いい|良い|よい|大丈夫|結構|構わ|かまわ|ok)|せず(?:に)?(?:そのまま|おいて|お願い)|不要|いらない|要らない|いりません|要りません|(?:の|する)?必要(?:は|が)?(?:ない|無い|なし|ありません|ございません)|やめて|止めて|しないよう|しちゃだめ|しちゃダメ|してはいけ|してはだめ|してはダメ)`), notAfter: []string{"す", "しょう"}},
	// ブロックしておいて, ブロックしてください (block it).
	{re: regexp.MustCompile(`ブロック(?:しておいて|しといて|して(?:ください|下さい|ほしい|欲しい|お願い|おねがい|くれ|もらえ|いただけ))`), notAfter: notWanted},
	// ブロックし続けてください; not ブロックし続けています (it keeps
	// blocking me).
	{re: regexp.MustCompile(`ブロックし(?:続|つづ)けて`), notAfter: append([]string{"い", "る", "ま"}, notWanted...)},

	// keep it blocked, keep blocked, leave them banned, keep 192.0.2.1
	// blocked; not "I keep getting blocked", "keep it unblocked".
	{re: regexp.MustCompile(`\b(?:keep|leave)\s+(?:(?:it|this|that|them|these|those|the|one|ones|ip|ips|address|addresses|host|hosts|attacker|attackers|[0-9a-f:./%]+)\s+){0,3}(?:blocked|banned)\b`), negatable: true},
	{re: regexp.MustCompile(`\b(?:keep|leave)\s+the\s+(?:block|ban)s?\b`), negatable: true},
	// do not unblock, don't unban, no need to unban.
	{re: regexp.MustCompile(`\b(?:do\s+not|don't|dont|never|no\s+need\s+to|(?:do\s+not|don't|dont)\s+need\s+to)\s+(?:unblock|unban)\b`)},
	{re: regexp.MustCompile(`\b(?:unblock|unban)(?:ing)?\s+(?:is\s+)?not\s+(?:needed|necessary|required)\b|\bno\s+(?:unblock|unban)\s+(?:needed|necessary|required)\b`)},
}

// apostrophes folds the typographic apostrophe that phones type into "'".
var apostrophes = strings.NewReplacer("\u2019", "'", "\u2018", "'")

// saysKeep reports whether the sender's own words (NFKC-folded, quotes
// excluded) ask to keep the block.
func saysKeep(own string) bool {
	low := apostrophes.Replace(strings.ToLower(own))
	if !hasAny(low, keepWords) {
		return false // most messages: skip the regular expressions
	}
	for _, r := range keepRules {
		for _, m := range r.re.FindAllStringIndex(low, -1) {
			switch {
			case strings.HasSuffix(low[:m[0]], "アン"):
				// アンブロック is "unblock".
			case hasPrefixAny(low[m[1]:], r.notAfter):
			case r.negatable && negatedClause(low[:m[0]]):
			default:
				return true
			}
		}
	}
	return false
}

// keepWords are the words every keep rule has in its match.
var keepWords = []string{"ブロック", "解除", "アンバン", "unban", "unblock", "keep", "leave"}

func hasAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// maxClause bounds how far back negatedClause looks.
const maxClause = 200

// negatedClause reports whether the clause that before ends in holds a
// negation or "why": "please don't keep it blocked", "why do you keep it
// blocked", "I don't want you to keep it blocked". A clause ends at
// punctuation or at a conjunction, so that "I'm not sure who this is, so
// keep it blocked" still asks to keep.
func negatedClause(before string) bool {
	if len(before) > maxClause {
		before = before[len(before)-maxClause:]
	}
	if k := strings.LastIndexAny(before, ",;!?\n、。"); k >= 0 {
		before = before[k+1:]
	}
	// A sentence ends at ". ", not at the dots of an address.
	if k := strings.LastIndex(before, ". "); k >= 0 {
		before = before[k+1:]
	}
	words := strings.Fields(before)
	for i := len(words) - 1; i >= 0; i-- {
		switch w := strings.Trim(words[i], `"'()`); {
		case w == "so", w == "and", w == "but", w == "then", w == "or":
			return false
		case w == "not", w == "never", w == "stop", w == "why", w == "dont", w == "cant", w == "wont", w == "cannot",
			strings.HasSuffix(w, "n't"):
			return true
		}
	}
	return false
}
