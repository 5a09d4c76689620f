package hubs

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// recode writes the JSON value data again, compact and followed by a
// newline: members in the order Keap wrote them, numbers and strings copied
// byte for byte as Keap wrote them, and, when strip is set, every object
// member whose value is null left out, at any depth (nulls in arrays stay).
// A member name Keap repeats is repeated, as JSON parsers take the last of
// them; but where strip leaves out a null, the members of that name before
// it go too, so what a parser reads is what decoding into maps and removing
// nulls read. A string that is not valid UTF-8 is the one thing not copied:
// it is written as encoding/json writes what it decodes from it (each
// invalid byte as U+FFFD), so the output is always valid UTF-8. recode
// returns an error when data is not valid JSON as json.Valid judges it,
// which it checks in the same pass that writes it.
func recode(data []byte, strip bool) ([]byte, error) {
	r := newRecoder(data, strip)
	r.skipSpace()
	if err := r.value(); err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return append(r.out, '\n'), nil
}

// Why an answer to a list call is not a page; list words each for the caller.
var (
	errNotObject = errors.New("not a JSON object") // or not JSON at all
	errLacksList = errors.New("lacks its list")    // no member named for the list, or null
	errNoList    = errors.New("has no list")       // the list's member is neither an array nor null
)

// keapPage is what readPage finds in Keap's answer to a list call.
type keapPage struct {
	body  []byte // the list as recode writes it, or "[]\n" for a null list
	n     int    // the list's elements
	count []byte // the member "count" as Keap wrote it; nil without one
}

// readPage reads Keap's answer to a list call in one pass. The answer must be
// a JSON object, valid throughout as json.Valid judges it; its member listKey
// is the list, written again as recode writes it (compact, in Keap's order,
// values as Keap wrote them), and its member "count" is returned as it is. Of
// envelope members whose names repeat, the last counts, as in a map. The
// error is errNotObject, errLacksList or errNoList.
func readPage(data []byte, listKey string, strip bool) (keapPage, error) {
	r := newRecoder(data, strip)
	r.skipSpace()
	if r.peek() != '{' {
		// Only an object holds a list, but what Keap sent is still checked:
		// a valid null is an answer without its list, anything else is not
		// an object.
		if r.value() == nil && r.end() == nil && string(r.out) == "null" {
			return keapPage{}, errLacksList
		}
		return keapPage{}, errNotObject
	}
	var p keapPage
	var list []byte // the list's member as Keap wrote it
	err := r.eachMember(func(q []byte, kind strKind) error {
		key, err := decodeKey(q, kind)
		if err != nil {
			return err
		}
		start, isList := r.pos, string(key) == listKey
		if isList && r.peek() == '[' {
			r.out = r.out[:0] // a list named again replaces the one written before
			p.n, err = r.array()
		} else {
			// Any other member is checked by writing it as the list is
			// written, then dropped: Keap's are small (count, next,
			// previous), and one reader of JSON is one fewer to get wrong.
			mark := len(r.out)
			err = r.value()
			r.out = r.out[:mark]
		}
		if isList {
			list = r.src[start:r.pos]
		}
		if string(key) == "count" {
			p.count = r.src[start:r.pos]
		}
		return err
	})
	if err != nil || r.end() != nil {
		return keapPage{}, errNotObject
	}
	switch {
	case list == nil:
		return keapPage{}, errLacksList
	case list[0] == '[':
		p.body = append(r.out, '\n')
	case string(list) == "null": // an empty page
		p.body, p.n = []byte("[]\n"), 0
	default:
		return keapPage{}, errNoList
	}
	return p, nil
}

// maxDepth is how deeply json.Valid lets arrays and objects nest.
const maxDepth = 10000

// recoder reads a JSON document and writes it again as recode describes,
// checking it as it goes: it accepts what json.Valid accepts. Tokens are
// copied from src to out as they come; only space, stripped nulls and
// strings that are not UTF-8 make out differ from src.
type recoder struct {
	src   []byte
	pos   int
	out   []byte
	strip bool
	depth int // the arrays and objects open at pos
	// kept is a stack, used only with strip: each open object's members
	// written so far, above those of the objects it is in, so that a null
	// left out can take the members of its name written before it along.
	kept []keptMember
}

// keptMember is an object member written to out: its name, quoted as it was
// written, is out[kstart:kend], and the member ends at end.
type keptMember struct {
	kstart, kend, end int
	plain             bool // the name is printable ASCII without escapes
	gone              bool // a later null of the same name took it out
}

func newRecoder(data []byte, strip bool) *recoder {
	// The output is about as long as the input, less spaces and nulls.
	// With strip, the members written are noted; a Keap record has some
	// 10 to 30 of them.
	r := &recoder{src: data, strip: strip, out: make([]byte, 0, len(data)+1)}
	if strip {
		r.kept = make([]keptMember, 0, 32)
	}
	return r
}

// peek returns the byte at r.pos, or 0 at the end of the document. No JSON
// token starts with 0, so an early end is refused wherever a token is due.
func (r *recoder) peek() byte {
	if r.pos < len(r.src) {
		return r.src[r.pos]
	}
	return 0
}

func (r *recoder) skipSpace() {
	if r.pos < len(r.src) && r.src[r.pos] > ' ' {
		return // as between most tokens Keap writes
	}
	for r.pos < len(r.src) {
		switch r.src[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// syntaxError says the document is not valid JSON at r.pos.
func (r *recoder) syntaxError() error {
	if r.pos >= len(r.src) {
		return errors.New("not valid JSON: it ends early")
	}
	return fmt.Errorf("not valid JSON: unexpected %q at byte %d", r.src[r.pos], r.pos)
}

// end checks that nothing but space follows the document's value.
func (r *recoder) end() error {
	r.skipSpace()
	if r.pos != len(r.src) {
		return r.syntaxError()
	}
	return nil
}

// value writes the value at r.pos and moves past it.
func (r *recoder) value() error {
	switch c := r.peek(); c {
	case '{':
		return r.object()
	case '[':
		_, err := r.array()
		return err
	case '"':
		q, kind, err := r.str()
		if err != nil {
			return err
		}
		return r.writeString(q, kind)
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	default:
		if c != '-' && (c < '0' || c > '9') {
			return r.syntaxError()
		}
		start := r.pos
		if err := r.number(); err != nil {
			return err
		}
		r.out = append(r.out, r.src[start:r.pos]...) // numbers are written as they are
		return nil
	}
}

// nest counts one more array or object open at r.pos: json.Valid refuses
// documents nested more than maxDepth deep.
func (r *recoder) nest() error {
	r.depth++
	if r.depth > maxDepth {
		return fmt.Errorf("not valid JSON: nested more than %d deep at byte %d", maxDepth, r.pos)
	}
	return nil
}

// eachMember reads the object at r.pos, calling each for every member with
// its name, quoted as it is in src, what str found in it, and r.pos at its
// value, which each must move past.
func (r *recoder) eachMember(each func(q []byte, kind strKind) error) error {
	if err := r.nest(); err != nil {
		return err
	}
	r.pos++ // {
	r.skipSpace()
	if r.peek() == '}' {
		r.pos++
		r.depth--
		return nil
	}
	for {
		if r.peek() != '"' {
			return r.syntaxError()
		}
		q, kind, err := r.str()
		if err != nil {
			return err
		}
		r.skipSpace()
		if r.peek() != ':' {
			return r.syntaxError()
		}
		r.pos++
		r.skipSpace()
		if err := each(q, kind); err != nil {
			return err
		}
		r.skipSpace()
		switch r.peek() {
		case ',':
			r.pos++
			r.skipSpace()
		case '}':
			r.pos++
			r.depth--
			return nil
		default:
			return r.syntaxError()
		}
	}
}

// object writes the object at r.pos, its members in the order they come.
//
// With strip, a member whose value is null is checked and not written. Since
// a parser takes the last of repeated names, a null that is left out must not
// let an earlier member of its name stand in for it: decoding into a map and
// removing nulls, which is what the caller is owed, loses the name entirely.
// So the members written are noted (in r.kept), and a null left out marks
// those of its name as gone; if any are, the object is closed up once it
// ends. Keap does not repeat names, so that is only ever paid on odd input.
func (r *recoder) object() error {
	start := len(r.out)
	r.out = append(r.out, '{')
	base := len(r.kept)
	defer func() { r.kept = r.kept[:base] }()
	written, gone := 0, false
	err := r.eachMember(func(q []byte, kind strKind) error {
		if r.strip && r.peek() == 'n' {
			if err := r.expect("null"); err != nil {
				return err
			}
			gone = r.dropEarlier(base, q, kind) || gone
			return nil
		}
		if written > 0 {
			r.out = append(r.out, ',')
		}
		written++
		kstart := len(r.out)
		if err := r.writeString(q, kind); err != nil {
			return err
		}
		kend := len(r.out)
		r.out = append(r.out, ':')
		if err := r.value(); err != nil {
			return err
		}
		if r.strip {
			r.kept = append(r.kept, keptMember{kstart: kstart, kend: kend, end: len(r.out), plain: kind == strPlain})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if gone {
		r.closeUp(start, base)
	}
	r.out = append(r.out, '}')
	return nil
}

// dropEarlier marks as gone the members of the open object (those in
// r.kept[base:]) named as the quoted name q is, and says whether there were
// any.
func (r *recoder) dropEarlier(base int, q []byte, kind strKind) bool {
	found := false
	plain := kind == strPlain
	for i := base; i < len(r.kept); i++ {
		m := &r.kept[i]
		if m.gone || plain && m.plain && m.kend-m.kstart != len(q) {
			continue // plain names of other lengths differ
		}
		if r.sameName(r.out[m.kstart:m.kend], m.plain, q, plain) {
			m.gone, found = true, true
		}
	}
	return found
}

// sameName says whether the quoted names a and b decode to the same string.
// Names of printable ASCII without escapes are equal only when their bytes
// are; any other pair is decoded, as encoding/json decodes them (escapes
// resolved, bytes that are not UTF-8 read as U+FFFD).
func (r *recoder) sameName(a []byte, aPlain bool, b []byte, bPlain bool) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if aPlain && bPlain {
		return false
	}
	var sa, sb string
	if json.Unmarshal(a, &sa) != nil || json.Unmarshal(b, &sb) != nil {
		return false // cannot happen: both were checked, or written, as strings
	}
	return sa == sb
}

// closeUp rewrites the object that starts at out[start] without its members
// (in r.kept[base:]) marked gone, with commas only between those left. Each
// member moves only towards the start, so it is done in place.
func (r *recoder) closeUp(start, base int) {
	w := start + 1 // past the {
	first := true
	for _, m := range r.kept[base:] {
		if m.gone {
			continue
		}
		if !first {
			r.out[w] = ','
			w++
		}
		first = false
		w += copy(r.out[w:], r.out[m.kstart:m.end])
	}
	r.out = r.out[:w]
}

// array writes the array at r.pos and returns its number of elements. Nulls
// in arrays are written, with strip or without: only members are stripped.
func (r *recoder) array() (int, error) {
	if err := r.nest(); err != nil {
		return 0, err
	}
	r.pos++ // [
	r.skipSpace()
	r.out = append(r.out, '[')
	n := 0
	if r.peek() != ']' {
		for {
			if n > 0 {
				r.out = append(r.out, ',')
			}
			if err := r.value(); err != nil {
				return 0, err
			}
			n++
			r.skipSpace()
			if r.peek() != ',' {
				break
			}
			r.pos++
			r.skipSpace()
		}
		if r.peek() != ']' {
			return 0, r.syntaxError()
		}
	}
	r.pos++ // ]
	r.depth--
	r.out = append(r.out, ']')
	return n, nil
}

// strKind is what str found in a string.
type strKind uint8

const (
	strPlain   strKind = iota // printable ASCII without escapes: its bytes are its value
	strEscaped                // escapes or UTF-8 beyond ASCII, all valid
	strBadUTF8                // bytes that are not UTF-8, with or without escapes
)

// strSafe marks the bytes a string holds that need no further look: all of
// ASCII from the space on, but for the quote and the backslash.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Bytes repeated in each byte of a word, for looking at 8 bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// allSafe says whether each of the 8 bytes in w is one strSafe marks. Where
// no byte of x has its high bit set, (x - ones) & ^x has the high bit of
// some byte set exactly when a byte of x is 0; x - 0x20*ones likewise finds
// a byte below 0x20. Bytes with their high bit set are found by highs alone.
func allSafe(w uint64) bool {
	q, b := w^('"'*ones), w^('\\'*ones)
	found := (w-0x20*ones)&^w | (q-ones)&^q | (b-ones)&^b | w
	return found&highs == 0
}

// str moves past the string at r.pos, checking it, and returns it with its
// quotes and what it holds. Most of what Keap sends is printable ASCII,
// which str passes over 8 bytes at a time, and then a byte at a time by
// table; only quotes, escapes and bytes beyond ASCII take a closer look.
func (r *recoder) str() (q []byte, kind strKind, err error) {
	src, start := r.src, r.pos
	i := start + 1 // past the "
	for {
		for i+8 <= len(src) && allSafe(binary.LittleEndian.Uint64(src[i:])) {
			i += 8
		}
		for i < len(src) && strSafe[src[i]] {
			i++
		}
		if i >= len(src) {
			r.pos = i
			return nil, 0, r.syntaxError()
		}
		switch c := src[i]; {
		case c == '"':
			r.pos = i + 1
			return src[start:r.pos], kind, nil
		case c == '\\':
			kind = max(kind, strEscaped)
			r.pos = i
			if err := r.escape(); err != nil {
				return nil, 0, err
			}
			i = r.pos
		case c < 0x20: // control characters must be escaped
			r.pos = i
			return nil, 0, r.syntaxError()
		default: // the first byte of a character beyond ASCII, if it is UTF-8
			c, size := utf8.DecodeRune(src[i:])
			if c == utf8.RuneError && size == 1 {
				kind = strBadUTF8
			} else {
				kind = max(kind, strEscaped)
			}
			i += size
		}
	}
}

// escape moves past the escape sequence at r.pos, checking it.
func (r *recoder) escape() error {
	r.pos++ // \
	switch r.peek() {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		r.pos++
		return nil
	case 'u':
		r.pos++
		for range 4 {
			c := r.peek()
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return r.syntaxError()
			}
			r.pos++
		}
		return nil
	}
	return r.syntaxError()
}

// number moves past the number at r.pos, checking it is written as JSON
// writes numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *recoder) number() error {
	if r.peek() == '-' {
		r.pos++
	}
	switch c := r.peek(); {
	case c == '0':
		r.pos++
	case '1' <= c && c <= '9':
		r.digits()
	default:
		return r.syntaxError()
	}
	if r.peek() == '.' {
		r.pos++
		if !r.digits() {
			return r.syntaxError()
		}
	}
	if c := r.peek(); c == 'e' || c == 'E' {
		r.pos++
		if c := r.peek(); c == '+' || c == '-' {
			r.pos++
		}
		if !r.digits() {
			return r.syntaxError()
		}
	}
	return nil
}

// digits moves past the digits at r.pos and says whether there was one.
func (r *recoder) digits() bool {
	start := r.pos
	for c := r.peek(); '0' <= c && c <= '9'; c = r.peek() {
		r.pos++
	}
	return r.pos > start
}

// expect moves past the literal lit (true, false or null), which must be at
// r.pos.
func (r *recoder) expect(lit string) error {
	if len(r.src)-r.pos < len(lit) || string(r.src[r.pos:r.pos+len(lit)]) != lit {
		return r.syntaxError()
	}
	r.pos += len(lit)
	return nil
}

// literal writes the literal lit (true, false or null), which must be at r.pos.
func (r *recoder) literal(lit string) error {
	if err := r.expect(lit); err != nil {
		return err
	}
	r.out = append(r.out, lit...)
	return nil
}

// writeString writes the quoted string q, which str checked and found to hold
// kind. A string of UTF-8 is copied as it is, escapes and all. One that is not
// UTF-8 is written as encoding/json writes what it decodes from it, every
// invalid byte as U+FFFD, so that what we send is always UTF-8.
func (r *recoder) writeString(q []byte, kind strKind) error {
	if kind != strBadUTF8 {
		r.out = append(r.out, q...)
		return nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return err
	}
	return r.encodeString(s)
}

// encodeString writes s as encoding/json writes a string, without HTML escaping.
func (r *recoder) encodeString(s string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	r.out = append(r.out, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
	return nil
}

// decodeKey returns the content of the quoted name q, which str checked and
// found to hold kind, as encoding/json decodes it.
func decodeKey(q []byte, kind strKind) ([]byte, error) {
	if kind == strPlain {
		return q[1 : len(q)-1], nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}
