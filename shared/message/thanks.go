package message

import "strings"

// thanksJa are matched anywhere: Japanese has no spaces between words.
var thanksJa = []string{
	"ありがと", // ありがとう, ありがとうございます, ありがとございます
	"有難",
	"有り難",
	"助かりました",
	"助かります",
	"助かった",
	"たすかりました",
	"たすかります",
	"たすかった",
	"感謝",
	"サンキュ",
	"サンクス",
	"あざす",
	"あざっす",
	"あざーす",
	"おかげさま",
	"お陰様",
}

// thanksEn are matched as words (no ASCII letter, digit or "_" either
// side), so that "ty" is not found in "type" nor in "5ty".
var thanksEn = []string{
	"thanks",
	"thank you",
	"thankyou",
	"thank u",
	"thanx",
	"thnx",
	"thx",
	"tks",
	"ty",
	"tysm",
	"tyvm",
}

// saysThanks reports whether the sender's own words (quotes excluded)
// thank the bot.
func saysThanks(own string) bool {
	low := strings.ToLower(own)
	for _, w := range thanksJa {
		if strings.Contains(low, w) {
			return true
		}
	}
	for _, w := range thanksEn {
		if containsWord(low, w) {
			return true
		}
	}
	return false
}

// containsWord finds w in s with no ASCII word byte right before or after it.
// Each search starts past the previous hit, so it is linear in len(s).
func containsWord(s, w string) bool {
	for i := 0; i <= len(s)-len(w); {
		k := strings.Index(s[i:], w)
		if k < 0 {
			return false
		}
		p := i + k
		q := p + len(w)
		if (p == 0 || !isWord(s[p-1])) && (q == len(s) || !isWord(s[q])) {
			return true
		}
		i = p + 1
	}
	return false
}
