package message

import (
	"regexp"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// An SRE answers an approval request in the SRE room with the request's
// code, and nothing else: "approve K7QX2M" / "deny K7QX2M" (承認 / 却下 in
// Japanese). Anything around it ("不承認 K7QX2M", "don't approve K7QX2M",
// "should we approve K7QX2M?") makes it no decision: an SRE who writes a
// sentence is talking, not deciding. A quoted or pasted copy of the request
// ([qt], [info], [code]) is not an answer either. Codes are six characters
// of an alphabet without look-alikes, at least one a digit.
var decisionRe = regexp.MustCompile(`(?i)^\s*(approve|deny|reject|承認|却下)(?:\s*(?:します|です))?\s*[:：]?\s*([a-z0-9]{6})\s*(?:です|します)?\s*[。.!！]?\s*$`)

// decides sets the intent and code of an SRE's answer, if the sender's own
// words (ownWords) are one.
func decides(d stripped, body string, res *Result) bool {
	text, ok := ownWords(d, body)
	if !ok {
		return false
	}
	m := decisionRe.FindStringSubmatch(text)
	if m == nil || !strings.ContainsAny(m[2], "0123456789") {
		return false
	}
	res.Intent, res.Code = IntentDeny, strings.ToUpper(m[2])
	if w := strings.ToLower(m[1]); w == "approve" || w == "承認" {
		res.Intent = IntentApprove
	}
	return true
}

// ownWords is what the sender wrote outside tags, for a whole-message
// command (a decision, a list request); false for a pasted copy ([info],
// [code]). On the English client's mention line the words follow the bot's
// name ("[To:1]unbanbot approve K7QX2M"), which the parser takes as a
// name: its first word is dropped there.
func ownWords(d stripped, body string) (string, bool) {
	low := strings.ToLower(body)
	if strings.Contains(low, "[info]") || strings.Contains(low, "[code]") {
		return "", false
	}
	text := norm.NFKC.String(d.outside(false))
	if strings.TrimSpace(text) == "" && len(d.names) == 1 {
		name := strings.TrimSpace(norm.NFKC.String(d.text[d.names[0].from:d.names[0].to]))
		if _, rest, ok := strings.Cut(name, " "); ok {
			text = rest
		}
	}
	return text, true
}
