package chatwork

import (
	"fmt"
	"strings"
)

// ReplyTo starts a message that notifies accountID, as a reply to one
// message: [rp aid=ACCOUNT to=ROOM-MESSAGE].
func ReplyTo(accountID, roomID, messageID string) string {
	return fmt.Sprintf("[rp aid=%s to=%s-%s]", accountID, roomID, messageID)
}

// To mentions accountID ([To:ACCOUNT]): several may lead one message, as
// when one answer goes to everybody who asked the same.
func To(accountID string) string { return "[To:" + accountID + "]" }

// Info renders a boxed block with a title.
func Info(title, body string) string {
	return "[info][title]" + Escape(title) + "[/title]" + strings.TrimRight(body, "\n") + "[/info]"
}

// Escape keeps text from other sources (host names, error messages) from
// being read as markup: Chatwork has no escape character, so square brackets
// become their full-width look-alikes.
func Escape(s string) string {
	return strings.NewReplacer("[", "［", "]", "］").Replace(s)
}
