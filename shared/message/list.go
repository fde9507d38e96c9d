package message

import (
	"regexp"
)

// An SRE asks for the ban-list page with a message that is only the word:
// "一覧" or "list" (a polite ending or "please" may go with it). As with a
// decision, a sentence around it ("the list of rooms?", "一覧にない") is
// talk, not a request, and a quoted or pasted word is no request either.
var listRe = regexp.MustCompile(`(?i)^\s*(?:please\s+)?(?:list|一覧)(?:\s*(?:please|を?(?:ください|お願いします|おねがいします)))?\s*[。.!！]?\s*$`)

// asksForList sets IntentList if the sender's own words (ownWords) are
// only that request.
func asksForList(d stripped, body string, res *Result) bool {
	text, ok := ownWords(d, body)
	if !ok {
		return false
	}
	if !listRe.MatchString(text) {
		return false
	}
	res.Intent = IntentList
	return true
}
