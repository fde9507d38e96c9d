package message

// MentionsBot reports whether body, a Chatwork message, is addressed to
// the bot: it has [To:BOT] or a reply to one of the bot's messages
// ([rp aid=BOT to=…]) outside every quote. The webhook uses it on room
// events, where Chatwork has not decided it for us.
//
// Choices a reader may not guess:
//   - A mention inside [qt]…[/qt] is not one: since November 2020 Chatwork
//     notifies nobody for it, and someone who quotes a request to the bot
//     (or a bot message that mentions someone) is not asking the bot.
//   - Quotes pair their tags as in Parse: they nest, a [qt] never closed
//     quotes nothing and a stray [/qt] closes nothing, because Chatwork
//     shows an unpaired tag as typed, and a mention after it is live.
//   - [toall] does not count: an announcement to the whole room is not a
//     request, and the bot must not act on every one that holds an address.
//   - Tags are read as Parse reads them: "[TO:…]", "[返信 aid=…]" and the
//     attributes in any order count. The id must equal botAccountID
//     exactly; an empty botAccountID matches nothing.
//   - [info] and [code] are not quotes: a mention in them counts.
func MentionsBot(body, botAccountID string) bool {
	if botAccountID == "" {
		return false
	}
	d := stripMarkup(body)
	q := d.quotes // sorted and disjoint, like the mentions
	for _, m := range d.mentions {
		for len(q) > 0 && q[0].to <= m.at {
			q = q[1:]
		}
		quoted := len(q) > 0 && q[0].from <= m.at
		if m.id == botAccountID && !quoted {
			return true
		}
	}
	return false
}
