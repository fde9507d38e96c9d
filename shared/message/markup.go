package message

import "strings"

// stripped is a message body with the Chatwork markup taken out.
type stripped struct {
	// text is every piece of text that may hold an address: the
	// sender's words, the names after [To:]/[rp], and the content of
	// quotes, info boxes, titles and code blocks. Tags and attachment
	// names are left out. Each tag becomes "\n", so text on either side
	// of a tag never joins into one token.
	text string
	// quotes are the outermost quoted parts of text ([qt]…[/qt] with
	// both tags found), sorted and disjoint.
	quotes []span
	// names are the names after [To:] and [rp], sorted and disjoint.
	names []span
	// mentions are the [To:] and [rp] tags, in order.
	mentions []mention
}

// span is text[from:to].
type span struct{ from, to int }

// mention is a [To:ID] or [rp aid=ID …] tag: at is where its "\n" is in
// stripped.text, id the account id.
type mention struct {
	at int
	id string
}

// outside returns text without the quotes and, unless withNames, without
// the names: the sender's own words.
func (d stripped) outside(withNames bool) string {
	cuts := d.quotes
	if !withNames {
		cuts = mergeSpans(d.quotes, d.names)
	}
	if len(cuts) == 0 {
		return d.text
	}
	var b strings.Builder
	b.Grow(len(d.text))
	done := 0
	for _, c := range cuts {
		if c.from > done {
			b.WriteString(d.text[done:c.from])
		}
		done = max(done, c.to)
	}
	b.WriteString(d.text[done:])
	return b.String()
}

// mergeSpans merges two sorted lists of spans into one sorted list; spans
// may overlap (a name inside a quote), which outside copes with.
func mergeSpans(a, b []span) []span {
	out := make([]span, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].from <= b[0].from {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
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
	name      bool // a mention, followed by a person's name: [To:]Name さん
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
	end     int    // index just after "]"
	id      string // account id of a mention: [To:ID], [rp aid=ID …]; "" if none
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
			t := tag{kind: kind, end: d + 1}
			if kind.name {
				t.id = s[k+1 : d]
			}
			return t, true
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
				t := tag{kind: kind, end: d + 1}
				if kind.name {
					t.id = attr(s[k+1:d], "aid")
				}
				return t, true
			case '[', '\n':
				return tag{}, false
			}
		}
	}
	return tag{}, false
}

// attr returns the digits of the attribute name=DIGITS in a tag's
// space-separated attributes, or "".
func attr(attrs, name string) string {
	for _, f := range strings.Fields(attrs) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || !strings.EqualFold(k, name) || v == "" {
			continue
		}
		for i := 0; i < len(v); i++ {
			if !isDigit(v[i]) {
				return ""
			}
		}
		return v
	}
	return ""
}

// honorific ends the name Chatwork writes after [To:] and [rp] in Japanese
// ("[To:123]山田 太郎さん"). English clients write the bare name
// ("[To:123]unbanbot"), and people go on typing on the same line, so
// without さん nothing tells where the name ends.
const honorific = "さん"

// skipName returns where the name that starts at s[i] ends: after さん, or
// else at the end of the line or the next tag. The name is kept out of the
// words a thanks is looked for in ("[To:1]ty さん"), but it is searched for
// addresses like any text, because a bare name may run on into the request
// ("[To:1]unbanbot 203.0.113.5").
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
//
// A [qt] quotes only up to its own [/qt] (the last unmatched [qt] before
// it, so quotes nest). A [qt] never closed quotes nothing, and a stray
// [/qt] closes nothing: Chatwork pairs the tags, and the text of an
// unpaired one is shown as typed.
func stripMarkup(s string) stripped {
	var d stripped
	var text strings.Builder
	text.Grow(len(s))
	var opens []int       // text offsets of the [qt] not closed yet
	nextDownloadEnd := -2 // -2: not looked for yet; -1: none left
	i := 0
	for i < len(s) {
		k := strings.IndexByte(s[i:], '[')
		if k < 0 {
			text.WriteString(s[i:])
			break
		}
		text.WriteString(s[i : i+k])
		i += k
		t, ok := parseTag(s, i)
		if !ok {
			text.WriteByte('[')
			i++
			continue
		}
		at := text.Len()
		text.WriteByte('\n')
		i = t.end
		switch {
		case t.kind.quote && t.closing:
			if n := len(opens); n > 0 {
				q := span{opens[n-1] + 1, at}
				opens = opens[:n-1]
				// Quotes closed earlier and opened after this one
				// are inside it.
				for len(d.quotes) > 0 && d.quotes[len(d.quotes)-1].from >= q.from {
					d.quotes = d.quotes[:len(d.quotes)-1]
				}
				d.quotes = append(d.quotes, q)
			}
		case t.kind.quote:
			opens = append(opens, at)
		case t.kind.name:
			d.mentions = append(d.mentions, mention{at: at, id: t.id})
			if e := skipName(s, i); e > i {
				from := text.Len()
				text.WriteString(s[i:e])
				d.names = append(d.names, span{from, text.Len()})
				i = e
			}
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
	d.text = text.String()
	return d
}
