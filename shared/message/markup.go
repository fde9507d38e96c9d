package message

import "strings"

// stripped is a message body with the Chatwork markup taken out.
type stripped struct {
	// search is every piece of text that may hold an address: the
	// sender's words and the content of quotes, info boxes, titles and
	// code blocks. Tags, the names after [To:]/[rp] and attachment names
	// are left out. Each removed piece becomes "\n", so text on either
	// side of a tag never joins into one token.
	search string
	// own is search without quoted text: what the sender said, used to
	// tell a thanks from a request for help.
	own string
}

// tagForm is the shape of a tag's opening form.
type tagForm uint8

const (
	formBare  tagForm = iota // [hr]
	formID                   // [To:1234567]: a colon and digits
	formAttrs                // [rp aid=1 to=2-3]: a space and attributes
)

type tagKind struct {
	form      tagForm
	closable  bool // [/name] exists
	quote     bool // content is someone else's words
	name      bool // followed by a person's name: [To:]Name さん
	skipToEnd bool // content is not text: [download:1]file.txt (1 KB)[/download]
}

// tagKinds lists the markup in Chatwork's message notation. Anything else
// in brackets stays text: "[2001:db8::1]:22" is an address.
var tagKinds = map[string]tagKind{
	"to":        {form: formID, name: true},
	"toall":     {form: formBare},
	"rp":        {form: formAttrs, name: true},
	"qt":        {form: formBare, closable: true, quote: true},
	"qtmeta":    {form: formAttrs},
	"info":      {form: formBare, closable: true},
	"title":     {form: formBare, closable: true},
	"code":      {form: formBare, closable: true},
	"hr":        {form: formBare},
	"picon":     {form: formID},
	"piconname": {form: formID},
	"pname":     {form: formID},
	"preview":   {form: formAttrs},
	"download":  {form: formID, closable: true, skipToEnd: true},
	"task":      {form: formAttrs, closable: true},
}

// replyJa is how some clients spell [rp …].
const replyJa = "返信"

// maxTagLen bounds how far a tag is looked for after "[", which keeps
// stripMarkup linear on bodies full of unclosed brackets. The longest real
// tag, [rp aid=… to=ROOM-MESSAGE], is about 50 bytes.
const maxTagLen = 160

type tag struct {
	kind    tagKind
	closing bool
	end     int // index just after "]"
}

// parseTag reads a known tag at s[i] == '['.
func parseTag(s string, i int) (tag, bool) {
	lim := min(len(s), i+maxTagLen)
	j := i + 1
	closing := j < lim && s[j] == '/'
	if closing {
		j++
	}
	k := j
	for k < lim && isLetter(s[k]) {
		k++
	}
	var kind tagKind
	switch {
	case k == j && strings.HasPrefix(s[j:lim], replyJa):
		kind = tagKinds["rp"]
		k = j + len(replyJa)
	case k > j && k-j <= len("piconname"):
		var buf [len("piconname")]byte
		for n := j; n < k; n++ {
			buf[n-j] = s[n] | 0x20 // ASCII letters only: lower-case
		}
		var ok bool
		if kind, ok = tagKinds[string(buf[:k-j])]; !ok {
			return tag{}, false
		}
	default:
		return tag{}, false
	}
	if closing {
		if k < lim && s[k] == ']' && kind.closable {
			return tag{kind: kind, closing: true, end: k + 1}, true
		}
		return tag{}, false
	}
	if k >= lim {
		return tag{}, false
	}
	switch kind.form {
	case formBare:
		if s[k] == ']' {
			return tag{kind: kind, end: k + 1}, true
		}
	case formID:
		if s[k] != ':' {
			return tag{}, false
		}
		d := k + 1
		for d < lim && isDigit(s[d]) {
			d++
		}
		if d > k+1 && d < lim && s[d] == ']' {
			return tag{kind: kind, end: d + 1}, true
		}
	case formAttrs:
		if s[k] == ']' {
			return tag{kind: kind, end: k + 1}, true
		}
		if s[k] != ' ' {
			return tag{}, false
		}
		for d := k + 1; d < lim; d++ {
			switch s[d] {
			case ']':
				return tag{kind: kind, end: d + 1}, true
			case '[', '\n':
				return tag{}, false
			}
		}
	}
	return tag{}, false
}

// honorific ends the name Chatwork writes after [To:] and [rp] in Japanese
// ("[To:123]山田 太郎さん"). English clients write the bare name, which then
// runs to the end of the line.
const honorific = "さん"

// skipName returns where the name that starts at s[i] ends.
func skipName(s string, i int) int {
	end := len(s)
	if k := strings.IndexAny(s[i:], "\n["); k >= 0 {
		end = i + k
	}
	if k := strings.Index(s[i:end], honorific); k >= 0 {
		return i + k + len(honorific)
	}
	return end
}

const downloadEnd = "[/download]"

// stripMarkup takes the Chatwork markup out of s. It is linear: every byte
// is copied or skipped once, tags are looked for at most maxTagLen bytes
// ahead, and the search for [/download] only moves forward.
func stripMarkup(s string) stripped {
	var search, own strings.Builder
	search.Grow(len(s))
	own.Grow(len(s))
	depth := 0 // of [qt] nesting
	emit := func(t string) {
		search.WriteString(t)
		if depth == 0 {
			own.WriteString(t)
		}
	}
	nextDownloadEnd := -2 // -2: not looked for yet; -1: none left
	i := 0
	for i < len(s) {
		k := strings.IndexByte(s[i:], '[')
		if k < 0 {
			emit(s[i:])
			break
		}
		emit(s[i : i+k])
		i += k
		t, ok := parseTag(s, i)
		if !ok {
			emit("[")
			i++
			continue
		}
		emit("\n")
		i = t.end
		switch {
		case t.kind.quote && t.closing:
			if depth > 0 {
				depth--
			}
		case t.kind.quote:
			depth++
		case t.kind.name:
			i = skipName(s, i)
		case t.kind.skipToEnd && !t.closing:
			if nextDownloadEnd == -2 || nextDownloadEnd >= 0 && nextDownloadEnd < i {
				nextDownloadEnd = -1
				if k := strings.Index(s[i:], downloadEnd); k >= 0 {
					nextDownloadEnd = i + k
				}
			}
			if nextDownloadEnd >= 0 {
				i = nextDownloadEnd + len(downloadEnd)
			}
		}
	}
	return stripped{search: search.String(), own: own.String()}
}
