package message

import (
	"regexp"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// An SRE asks for the ban-list page with a message that is only the word:
// "一覧" or "list" (a polite ending or "please" may go with it). As with a
// decision, a sentence around it ("the list of rooms?", "一覧にない") is
// talk, not a request, and a quoted or pasted word is no request either.
var listRe = regexp.MustCompile(`(?i)^\s*(?:please\s+)?(?:list|一覧)(?:\s*(?:please|を?(?:ください|お願いします|おねがいします)))?\s*[。.!！]?\s*$`)

// asksForList sets IntentList if the sender's own words are only that
// request. On the English client's mention line the word follows the bot's
// name ("[To:1]unbanbot list"): its first word is dropped there.
func asksForList(d stripped, body string, res *Result) bool {
	low := strings.ToLower(body)
	if strings.Contains(low, "[info]") || strings.Contains(low, "[code]") {
		return false
	}
	text := norm.NFKC.String(d.outside(false))
	if strings.TrimSpace(text) == "" && len(d.names) == 1 {
		name := strings.TrimSpace(norm.NFKC.String(d.text[d.names[0].from:d.names[0].to]))
		if _, rest, ok := strings.Cut(name, " "); ok {
			text = rest
		}
	}
	if !listRe.MatchString(text) {
		return false
	}
	res.Intent = IntentList
	return true
}
