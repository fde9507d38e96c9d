package message

import (
	"regexp"
	"strings"
)

// An SRE answers an approval request in the SRE room with the request's
// code: "approve K7QX2M" / "deny K7QX2M" (承認 / 却下 in Japanese), in their
// own words (a quoted request is not an answer). Codes are six characters
// of an alphabet without look-alikes, at least one a digit.
var decisionRe = regexp.MustCompile(`(?i)(?:^|[^a-z0-9])(approve|deny|reject|承認|却下)(?:\s*(?:します|です))?\s*[:：]?\s*([a-z0-9]{6})(?:[^a-z0-9]|$)`)

// decides sets the intent and code of an SRE's answer, if text is one. A
// code has a digit, so that words ("approve please") are never codes.
func decides(text string, res *Result) bool {
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
