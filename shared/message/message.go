// Package message reads what an employee wrote to the unban bot in Chatwork:
// which addresses to unban, or whether the message is a thanks or needs help.
//
// Parse works on the raw webhook "body": it drops Chatwork markup (keeping
// the text of quotes, info boxes and code blocks, because users quote the
// bot's ban notification), folds what is left with NFKC so that addresses
// typed on a Japanese keyboard (full-width digits, "．", "：", "／", "％",
// the ideographic space) look like ASCII ones, then scans it for IPv4 and
// IPv6 addresses.
//
// Choices a reader may not guess:
//   - IPv4 with a leading zero in an octet ("192.168.001.010") is refused
//     with ReasonAmbiguous rather than guessed (octal or decimal?).
//   - A host prefix (/32, /128, /255.255.255.255) is one host, as sshguard
//     writes it; any shorter prefix is refused with ReasonCIDR.
//   - An address is a token that net/netip parses strictly, with no ASCII
//     letter, digit or "_" touching it (Japanese text and punctuation are
//     fine neighbours: "192.0.2.33です"); nothing else is. This holds in the
//     names after [To:] and [rp] too: English clients write a bare name and
//     people go on typing on its line ("[To:1]unbanbot 203.0.113.5"), so a
//     name cannot be told from the request and is searched like any text.
//     Names with digits and dots ("v1.2.3", "web1.2", "Taro 2.0") hold no
//     such token; a name that is an address ("10.0.0.1 さん") reads as one.
//   - Tags and their attributes are dropped before the search, so markup
//     ids (account and message ids, qtmeta times) never become addresses.
//   - An IPv6 address whose normal form has no decimal digit ("dead::beef")
//     is taken for a word, not an address; "::" is still refused.
//   - A zone is dropped from a global address; link-local ones are refused.
//   - Every address is answered: the first MaxAddresses are accepted, later
//     ones are refused with ReasonOverLimit (the sender sends them again),
//     and Refused lists the refusals in order up to MaxListed things in all;
//     Dropped counts the rest, so the reply can say "and N more".
//   - Thanks are looked for in the sender's own words only, not in quotes
//     nor in the names after [To:] and [rp].
//   - Words that ask to keep the block, in the sender's own words (quotes
//     excluded, names included), make the intent IntentKeep whatever else
//     the message holds: see keepRules for the phrases and the grammar.
//   - A quote is a [qt] and its matching [/qt] (quotes nest); a [qt] that is
//     never closed quotes nothing, as Chatwork then shows it as typed.
package message

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Intent is what the sender wants from the bot.
type Intent string

// IntentKeep: the sender's own words ask to keep the block ("ブロックしたまま
// にしてください", "do not unban"); Addresses and Refused hold what was found,
// so that the reply can say which blocks were left in place, and nothing
// is unbanned. IntentUnban: otherwise, some address or refusal was found.
// IntentThanks: none, and the sender's own words thank the bot.
// IntentHelp: anything else.
const (
	IntentUnban  Intent = "unban"
	IntentKeep   Intent = "keep"
	IntentThanks Intent = "thanks"
	IntentHelp   Intent = "help"
	// IntentApprove and IntentDeny: an SRE's answer to an approval request
	// ("approve CODE", "deny CODE"); Code holds the code.
	IntentApprove Intent = "approve"
	IntentDeny    Intent = "deny"
	// IntentList: an SRE asks for the ban-list page ("一覧", "list", and
	// nothing else); the bot answers with a signed, short-lived link.
	IntentList Intent = "list"
)

// Refusal is a candidate address the bot will not act on, with a machine reason code.
type Refusal struct {
	Text   string `json:"text"`   // what the user typed (after NFKC and folding "。" between digits), e.g. "192.0.2.0/24"
	Reason string `json:"reason"` // one of the Reason* constants
}

// Refusal reasons.
const (
	ReasonCIDR        = "cidr"        // a prefix typed by the user, not one host
	ReasonUnspecified = "unspecified" // 0.0.0.0, ::
	ReasonLoopback    = "loopback"
	ReasonMulticast   = "multicast"
	ReasonLinkLocal   = "link_local"
	ReasonBroadcast   = "broadcast" // 255.255.255.255

	// ReasonOverLimit is an address after the first MaxAddresses ones:
	// those are unbanned, this one is listed so that the reply can tell
	// the sender to send it again.
	ReasonOverLimit = "over_limit"

	// ReasonAmbiguous is an IPv4 address written with a leading zero in an
	// octet ("192.168.001.010"). inet_aton and friends read such octets as
	// octal, people mean decimal; sshguard never prints them, so they only
	// come from a human, who can retype the address.
	ReasonAmbiguous = "ambiguous"
)

// MaxAddresses is how many distinct addresses one message may ask for;
// later ones are refused with ReasonOverLimit.
const MaxAddresses = 5

// MaxListed bounds Addresses and Refused together: a 64 KiB body full of
// junk must still give a small Result (it travels through Step Functions,
// whose payloads are limited), yet every address of a long list pasted by
// a person should be answered. Refused holds the first
// MaxListed-len(Addresses) refusals; Dropped counts the rest.
const MaxListed = 20

// Result is what Parse found.
type Result struct {
	Intent    Intent    `json:"intent"`
	Addresses []string  `json:"addresses"`         // normalized, distinct, the first MaxAddresses found; never nil (empty slice)
	Refused   []Refusal `json:"refused,omitempty"` // in order of appearance; with Addresses at most MaxListed
	Dropped   int       `json:"dropped,omitempty"` // distinct refusals found past those in Refused ("and N more")
	Reason    string    `json:"reason,omitempty"`  // the first refusal's reason, when something was refused
	Code      string    `json:"code,omitempty"`    // IntentApprove, IntentDeny: the approval's code
}

// Parse reads a Chatwork message body. It never panics and runs in time
// linear in the length of body.
func Parse(body string) Result {
	// Markup is read before NFKC: Chatwork tags are ASCII, and the bot
	// escapes "[" in host names as "［", which NFKC would turn back.
	doc := stripMarkup(strings.ToValidUTF8(body, "\uFFFD"))

	var c collector
	c.scan(foldStops(norm.NFKC.String(doc.text)))

	res := Result{Intent: IntentHelp, Addresses: []string{}}
	found := len(c.addrs) > 0 || c.nRefused > 0
	own := norm.NFKC.String(doc.outside(true))
	switch {
	case saysKeep(own):
		// Names are part of the sender's words here: an English
		// client's line "[To:1]unbanbot keep it blocked" must count.
		res.Intent = IntentKeep
	case found:
		res.Intent = IntentUnban
	case decides(doc, body, &res):
		// An SRE's decision names no address (the approval request it
		// answers holds them); a message with an address is a request.
		return res
	case asksForList(doc, body, &res):
		return res
	case saysThanks(norm.NFKC.String(doc.outside(false))):
		res.Intent = IntentThanks
	}
	if !found {
		return res
	}
	res.Addresses = append(res.Addresses, c.addrs...)
	if c.nRefused > 0 {
		res.Refused = c.refused[:min(len(c.refused), MaxListed-len(c.addrs))]
		res.Dropped = c.nRefused - len(res.Refused)
		res.Reason = res.Refused[0].Reason
	}
	return res
}

// ideographicStop is "。", which a Japanese IME in kana mode types for ".".
const ideographicStop = "\u3002"

// foldStops rewrites "192。168。0。1" as "192.168.0.1". NFKC keeps "。"
// (it is a sentence end, not a dot), so only a chain of exactly four digit
// groups joined by "." or "。" is folded; "192.0.2.1。3回目" stays as it is.
func foldStops(s string) string {
	if !strings.Contains(s, ideographicStop) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	done := 0 // s[:done] has been written to b
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			i++
			continue
		}
		// i starts a chain: a maximal run of digit groups and separators.
		j := i
		groups := 0
		var stops [3]int
		nStops := 0
		for {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			groups++
			if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
				j++
				continue
			}
			if j+len(ideographicStop) < len(s) && strings.HasPrefix(s[j:], ideographicStop) && isDigit(s[j+len(ideographicStop)]) {
				if nStops < len(stops) {
					stops[nStops] = j
				}
				nStops++
				j += len(ideographicStop)
				continue
			}
			break
		}
		if groups == 4 && nStops > 0 {
			for _, p := range stops[:nStops] {
				b.WriteString(s[done:p])
				b.WriteByte('.')
				done = p + len(ideographicStop)
			}
		}
		i = j
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isWord reports an ASCII byte that may not touch an address: an address
// glued to a word ("v1.2.3.4", "std::a") is part of something else.
// Non-ASCII text (Japanese particles, brackets) is a fine boundary.
func isWord(c byte) bool { return isLetter(c) || isDigit(c) || c == '_' }
