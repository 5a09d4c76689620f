package hubs

// The hubs' reading of Keap's list answers as it was before readPage: json.Valid
// over the whole answer, then members to find the list and "count", then a
// re-encoder that trusts the document json.Valid accepted. It is kept, frozen,
// only as the oracle that readPage and recode are checked against.

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// oldListPage is the envelope reading of list() before readPage, with the
// same outcomes: the page, or errNotObject, errLacksList or errNoList.
func oldListPage(data []byte, listKey string, strip bool) (body []byte, n int, count []byte, err error) {
	if !json.Valid(data) || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		if json.Valid(data) {
			return nil, 0, nil, errLacksList
		}
		return nil, 0, nil, errNotObject
	}
	env, isObject, err := oldMembers(data, listKey, "count")
	if err != nil || !isObject {
		return nil, 0, nil, errNotObject
	}
	raw, rawCount := env[0], env[1]
	if raw == nil {
		return nil, 0, nil, errLacksList
	}
	switch raw[0] {
	case '[':
		if body, n, err = oldRecodeValid(raw, strip); err != nil {
			return nil, 0, nil, errNoList
		}
	case 'n':
		body = []byte("[]\n")
	default:
		return nil, 0, nil, errNoList
	}
	return body, n, rawCount, nil
}

// oldRecodeValid is the old recode for data json.Valid accepted; n is the
// number of elements when data is an array.
func oldRecodeValid(data []byte, strip bool) (out []byte, n int, err error) {
	r := &oldRecoder{src: data, strip: strip, out: make([]byte, 0, len(data)+1)}
	r.skipSpace()
	isArray := r.src[r.pos] == '['
	if err := r.value(); err != nil {
		return nil, 0, err
	}
	if isArray {
		n = r.n
	}
	return append(r.out, '\n'), n, nil
}

// oldMembers returns the values of the members of the JSON object data (which
// json.Valid accepted) named in names, the last of each when a name repeats,
// nil for those missing. isObject is false when data is not an object.
func oldMembers(data []byte, names ...string) (vals [][]byte, isObject bool, err error) {
	r := &oldRecoder{src: data}
	r.skipSpace()
	if r.src[r.pos] != '{' {
		return nil, false, nil
	}
	vals = make([][]byte, len(names))
	r.pos++
	r.skipSpace()
	for r.src[r.pos] != '}' {
		kstart := r.pos
		r.skipString()
		key, _, err := oldDecodeString(r.src[kstart:r.pos])
		if err != nil {
			return nil, true, err
		}
		r.skipSpace()
		r.pos++ // :
		r.skipSpace()
		vstart := r.pos
		r.skipValue()
		if i := slices.Index(names, string(key)); i >= 0 {
			vals[i] = r.src[vstart:r.pos]
		}
		r.skipSpace()
		if r.src[r.pos] == ',' {
			r.pos++
			r.skipSpace()
		}
	}
	return vals, true, nil
}

// oldRecoder works through a document json.Valid accepted, so it checks
// structure only as far as it needs to find its way.
type oldRecoder struct {
	src        []byte
	pos        int
	out        []byte
	strip      bool
	oldMembers []oldMember // a stack: each object's members above its callers'
	n          int         // the elements of the last array written
}

// oldMember is an object member: its key, decoded, and where its value is.
type oldMember struct {
	key          []byte
	plain        bool // the key is written as it was: it needs no escaping
	vstart, vend int
}

func (r *oldRecoder) skipSpace() {
	for r.pos < len(r.src) {
		switch r.src[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// value writes the value at r.pos and moves past it.
func (r *oldRecoder) value() error {
	switch r.src[r.pos] {
	case '{':
		return r.object()
	case '[':
		return r.array()
	case '"':
		start := r.pos
		r.skipString()
		return r.writeString(r.src[start:r.pos])
	default: // a number, true, false or null: written as it is
		start := r.pos
		r.skipLiteral()
		r.out = append(r.out, r.src[start:r.pos]...)
		return nil
	}
}

func (r *oldRecoder) object() error {
	base := len(r.oldMembers)
	defer func() { r.oldMembers = r.oldMembers[:base] }()
	r.pos++ // {
	r.skipSpace()
	for r.src[r.pos] != '}' {
		kstart := r.pos
		r.skipString()
		key, plain, err := oldDecodeString(r.src[kstart:r.pos])
		if err != nil {
			return err
		}
		r.skipSpace()
		r.pos++ // :
		r.skipSpace()
		vstart := r.pos
		r.skipValue()
		r.oldMembers = append(r.oldMembers, oldMember{key: key, plain: plain, vstart: vstart, vend: r.pos})
		r.skipSpace()
		if r.src[r.pos] == ',' {
			r.pos++
			r.skipSpace()
		}
	}
	end := r.pos + 1
	ms := r.oldMembers[base:]
	// Sorted by key, and of equal keys the last (a map keeps the last one).
	slices.SortStableFunc(ms, func(a, b oldMember) int { return bytes.Compare(a.key, b.key) })
	r.out = append(r.out, '{')
	first := true
	for i := range len(ms) {
		m := r.oldMembers[base+i] // r.members may grow (and move) while values are written
		if i+1 < len(ms) && bytes.Equal(r.oldMembers[base+i+1].key, m.key) {
			continue
		}
		if r.strip && string(r.src[m.vstart:m.vend]) == "null" {
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
		r.pos = m.vstart
		if err := r.value(); err != nil {
			return err
		}
	}
	r.out = append(r.out, '}')
	r.pos = end
	return nil
}

func (r *oldRecoder) array() error {
	r.pos++ // [
	r.skipSpace()
	r.out = append(r.out, '[')
	n := 0
	for r.src[r.pos] != ']' {
		if n > 0 {
			r.out = append(r.out, ',')
		}
		if err := r.value(); err != nil {
			return err
		}
		n++
		r.skipSpace()
		if r.src[r.pos] == ',' {
			r.pos++
			r.skipSpace()
		}
	}
	r.pos++
	r.out = append(r.out, ']')
	r.n = n
	return nil
}

// skipValue moves past the value at r.pos without writing it.
func (r *oldRecoder) skipValue() {
	switch r.src[r.pos] {
	case '"':
		r.skipString()
	case '{', '[':
		depth := 0
		for {
			switch r.src[r.pos] {
			case '"':
				r.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			r.pos++
			if depth == 0 {
				return
			}
		}
	default:
		r.skipLiteral()
	}
}

// skipString moves past the string starting at r.pos.
func (r *oldRecoder) skipString() {
	r.pos++
	for {
		switch r.src[r.pos] {
		case '\\':
			r.pos += 2
		case '"':
			r.pos++
			return
		default:
			r.pos++
		}
	}
}

func (r *oldRecoder) skipLiteral() {
	for r.pos < len(r.src) {
		switch r.src[r.pos] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return
		}
		r.pos++
	}
}

// writeString writes the quoted string q as encoding/json would write what it
// decodes from it.
func (r *oldRecoder) writeString(q []byte) error {
	if oldPlainString(q[1 : len(q)-1]) {
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
func (r *oldRecoder) encodeString(s string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	r.out = append(r.out, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
	return nil
}

// oldDecodeString returns the content of the quoted string q, and whether it is
// q's own bytes, written again as they are.
func oldDecodeString(q []byte) ([]byte, bool, error) {
	if in := q[1 : len(q)-1]; oldPlainString(in) {
		return in, true, nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, false, err
	}
	return []byte(s), false, nil
}

// oldPlainString says whether the string content b (as it is between the quotes
// of a valid JSON string) is what encoding/json writes for it: no escapes,
// valid UTF-8, and no U+2028 or U+2029, which it escapes.
func oldPlainString(b []byte) bool {
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
