package hubs

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// recode writes the JSON value data, followed by a newline, exactly as
// encode(v) would for the v that decodeJSON reads from it (with stripNulls
// applied when strip is set): compact, object keys sorted and the last of
// duplicate keys kept, numbers as written, strings escaped as encoding/json
// escapes them (not HTML). It spends a fraction of what decoding into maps and
// encoding them again does, the hubs' largest cost on lists. It returns an
// error when data is not valid JSON as json.Valid judges it, which it checks
// in the same pass that writes it.
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
// is the list, re-encoded as recode would, and its member "count" is returned
// as it is. Of members whose names repeat, the last counts, as in a map. The
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
	err := r.eachMember(func(key []byte, _ bool) error {
		start, isList := r.pos, string(key) == listKey
		var err error
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
// checking it as it goes: it accepts what json.Valid accepts.
type recoder struct {
	src     []byte
	pos     int
	out     []byte
	strip   bool
	depth   int      // the arrays and objects open at pos
	members []member // a stack: each object's members above its callers'
	values  []byte   // an object's values, while they are put in key order
	order   []int32  // an object's members' places in r.members, in key order
}

// member is an object member: its key, decoded, and where its value was
// written in out.
type member struct {
	key          []byte
	prefix       uint64 // the key's first 8 bytes, big-endian, padded with zeros
	plain        bool   // the key is written as it was: it needs no escaping
	vstart, vend int
}

func newMember(key []byte, plain bool, vstart, vend int) member {
	var p [8]byte
	copy(p[:], key)
	return member{key: key, prefix: binary.BigEndian.Uint64(p[:]), plain: plain, vstart: vstart, vend: vend}
}

// compareKeys orders members by key, bytewise. Most keys differ in their
// first 8 bytes, which one comparison of prefixes settles. Prefixes that
// differ order as their keys do: where a short key's zero padding meets a
// byte of the other key, that byte is not 0 (or they would not differ
// there), so the short key comes first, as it does bytewise.
func compareKeys(a, b *member) int {
	if a.prefix != b.prefix {
		return cmp.Compare(a.prefix, b.prefix)
	}
	return bytes.Compare(a.key, b.key)
}

func newRecoder(data []byte, strip bool) *recoder {
	// The output is about as long as the input, less spaces and nulls; a
	// Keap record has some 10 to 30 members.
	return &recoder{src: data, strip: strip, out: make([]byte, 0, len(data)+1),
		members: make([]member, 0, 32), order: make([]int32, 0, 32)}
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
		q, simple, err := r.str()
		if err != nil {
			return err
		}
		return r.writeString(q, simple)
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
// its key (decoded, and whether that is its own bytes) and r.pos at its value,
// which each must move past.
func (r *recoder) eachMember(each func(key []byte, plain bool) error) error {
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
		q, simple, err := r.str()
		if err != nil {
			return err
		}
		key, plain := q[1:len(q)-1], true
		if !simple {
			if key, plain, err = decodeString(q); err != nil {
				return err
			}
		}
		r.skipSpace()
		if r.peek() != ':' {
			return r.syntaxError()
		}
		r.pos++
		r.skipSpace()
		if err := each(key, plain); err != nil {
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

// object writes the object at r.pos. Its values are written in the order
// they come, each read once, and then moved into the order of their keys.
func (r *recoder) object() error {
	base, start := len(r.members), len(r.out)
	defer func() { r.members = r.members[:base] }()
	err := r.eachMember(func(key []byte, plain bool) error {
		vstart := len(r.out)
		if err := r.value(); err != nil {
			return err
		}
		r.members = append(r.members, newMember(key, plain, vstart, len(r.out)))
		return nil
	})
	if err != nil {
		return err
	}
	ms := r.members[base:]
	// The members' places are sorted by key, stably, so that of equal keys
	// the last is still last: it is the one kept, as a map keeps the last.
	// Places rather than members are sorted because they are small and hold
	// no pointers, so they move without the garbage collector's barriers.
	order := r.order[:0]
	for i := range ms {
		order = append(order, int32(i))
	}
	slices.SortStableFunc(order, func(i, j int32) int { return compareKeys(&ms[i], &ms[j]) })
	r.order = order
	// The values move aside and come back between their keys. Every object
	// inside this one is finished, so r.values and r.order are free to use.
	// Of equal keys only the last is written; with strip, no null is.
	r.values = append(r.values[:0], r.out[start:]...)
	r.out = append(r.out[:start], '{')
	first := true
	for k, i := range order {
		m := &ms[i]
		if k+1 < len(order) && bytes.Equal(ms[order[k+1]].key, m.key) {
			continue
		}
		v := r.values[m.vstart-start : m.vend-start]
		if r.strip && string(v) == "null" {
			continue
		}
		if !first {
			r.out = append(r.out, ',')
		}
		first = false
		if m.plain {
			r.out = append(r.out, '"')
			r.out = append(r.out, m.key...)
			r.out = append(r.out, '"')
		} else if err := r.encodeString(string(m.key)); err != nil {
			return err
		}
		r.out = append(r.out, ':')
		r.out = append(r.out, v...)
	}
	r.out = append(r.out, '}')
	return nil
}

// array writes the array at r.pos and returns its number of elements.
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

// str moves past the string at r.pos, checking it, and returns it with its
// quotes. simple says it is printable ASCII without escapes, which
// encoding/json writes as it is.
func (r *recoder) str() (q []byte, simple bool, err error) {
	start := r.pos
	simple = true
	r.pos++ // "
	for r.pos < len(r.src) {
		switch c := r.src[r.pos]; {
		case c == '"':
			r.pos++
			return r.src[start:r.pos], simple, nil
		case c == '\\':
			simple = false
			if err := r.escape(); err != nil {
				return nil, false, err
			}
		case c < 0x20: // control characters must be escaped
			return nil, false, r.syntaxError()
		default:
			if c >= utf8.RuneSelf {
				simple = false // checked, if need be, by plainString
			}
			r.pos++
		}
	}
	return nil, false, r.syntaxError()
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

// literal writes the literal lit (true, false or null), which must be at r.pos.
func (r *recoder) literal(lit string) error {
	if len(r.src)-r.pos < len(lit) || string(r.src[r.pos:r.pos+len(lit)]) != lit {
		return r.syntaxError()
	}
	r.pos += len(lit)
	r.out = append(r.out, lit...)
	return nil
}

// writeString writes the quoted string q, which str checked, as encoding/json
// would write what it decodes from it. simple is what str said of it.
func (r *recoder) writeString(q []byte, simple bool) error {
	if simple || plainString(q[1:len(q)-1]) {
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

// decodeString returns the content of the quoted string q, and whether it is
// q's own bytes, written again as they are.
func decodeString(q []byte) ([]byte, bool, error) {
	if in := q[1 : len(q)-1]; plainString(in) {
		return in, true, nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, false, err
	}
	return []byte(s), false, nil
}

// plainString says whether the string content b (as it is between the quotes
// of a valid JSON string) is what encoding/json writes for it: no escapes,
// valid UTF-8, and no U+2028 or U+2029, which it escapes.
func plainString(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:]) && !bytes.Contains(b[i:], []byte("\u2028")) && !bytes.Contains(b[i:], []byte("\u2029"))
		}
	}
	return true
}
