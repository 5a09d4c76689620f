package hubs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The CEQL subset connectord reads: terms joined by "and", each a field, an
// operator and a literal. The parser knows more than the mapping accepts (or,
// like, in, !=, null) so that the caller learns why a query is refused rather
// than only where it stopped parsing.

// LiteralKind is the type of a CEQL literal.
type LiteralKind int

// The literal kinds.
const (
	StringLit LiteralKind = iota // 'text', with '' for a quote
	NumberLit                    // 42, -7, 3.5
	BoolLit                      // true, false
	NullLit                      // null
)

// Literal is one value in a CEQL term.
type Literal struct {
	Kind LiteralKind
	Text string // the string's content unescaped, or the number or keyword as written (keywords lower-cased)
}

// String writes the literal back as CEQL.
func (l Literal) String() string {
	if l.Kind == StringLit {
		return "'" + strings.ReplaceAll(l.Text, "'", "''") + "'"
	}
	return l.Text
}

// Term is one comparison: Field Op Value (or Values for in).
type Term struct {
	Field  string
	Op     string // =, !=, <, <=, >, >=, like, in
	Value  Literal
	Values []Literal // for in
}

// String writes the term back as CEQL.
func (t Term) String() string {
	if t.Op == "in" {
		parts := make([]string, len(t.Values))
		for i, v := range t.Values {
			parts[i] = v.String()
		}
		return t.Field + " in (" + strings.Join(parts, ", ") + ")"
	}
	return t.Field + " " + t.Op + " " + t.Value.String()
}

// FormatWhere writes terms back as a CEQL where clause.
func FormatWhere(terms []Term) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = t.String()
	}
	return strings.Join(parts, " and ")
}

// maxWhere bounds the clause, so a caller cannot make the parser work for nothing.
const maxWhere = 4096

// SyntaxError is a where clause that does not parse; Pos is a byte offset.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("where: at character %d: %s", e.Pos+1, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tOp
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string // for tString the unescaped content
	pos  int
}

type lexer struct {
	src string
	pos int
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) && strings.IndexByte(" \t\r\n", l.src[l.pos]) >= 0 {
		l.pos++
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case isIdentStart(c):
		for l.pos < len(l.src) && (isIdentStart(l.src[l.pos]) || isDigit(l.src[l.pos]) || l.src[l.pos] == '.') {
			l.pos++
		}
		return token{kind: tIdent, text: l.src[start:l.pos], pos: start}, nil
	case isDigit(c) || c == '-' && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1]):
		l.pos++
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
		if l.pos+1 < len(l.src) && l.src[l.pos] == '.' && isDigit(l.src[l.pos+1]) {
			l.pos++
			for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
				l.pos++
			}
		}
		if l.pos < len(l.src) && (isIdentStart(l.src[l.pos]) || strings.IndexByte(".-:", l.src[l.pos]) >= 0) {
			return token{}, &SyntaxError{start, "a number must not run into letters or - . :; quote text and dates: '2024-01-01'"}
		}
		return token{kind: tNumber, text: l.src[start:l.pos], pos: start}, nil
	case c == '\'':
		var b strings.Builder
		l.pos++
		for {
			i := strings.IndexByte(l.src[l.pos:], '\'')
			if i < 0 {
				return token{}, &SyntaxError{start, "unterminated string: close it with ' (write '' for a quote inside)"}
			}
			b.WriteString(l.src[l.pos : l.pos+i])
			l.pos += i + 1
			if l.pos < len(l.src) && l.src[l.pos] == '\'' {
				b.WriteByte('\'')
				l.pos++
				continue
			}
			return token{kind: tString, text: b.String(), pos: start}, nil
		}
	case c == '(':
		l.pos++
		return token{kind: tLParen, text: "(", pos: start}, nil
	case c == ')':
		l.pos++
		return token{kind: tRParen, text: ")", pos: start}, nil
	case c == ',':
		l.pos++
		return token{kind: tComma, text: ",", pos: start}, nil
	case strings.IndexByte("=!<>", c) >= 0:
		for _, op := range []string{"<=", ">=", "!=", "<>", "=", "<", ">"} {
			if strings.HasPrefix(l.src[l.pos:], op) {
				l.pos += len(op)
				if op == "<>" {
					op = "!="
				}
				return token{kind: tOp, text: op, pos: start}, nil
			}
		}
		return token{}, &SyntaxError{start, "'!' must be followed by '='"}
	case c == '"':
		return token{}, &SyntaxError{start, "strings take single quotes: 'text'"}
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return token{}, &SyntaxError{start, fmt.Sprintf("unexpected %q", r)}
}

// ParseWhere parses a CEQL where clause: terms `field op literal` joined by
// "and". An empty clause is no terms.
func ParseWhere(src string) ([]Term, error) {
	if len(src) > maxWhere {
		return nil, &SyntaxError{maxWhere, fmt.Sprintf("the clause is longer than %d characters", maxWhere)}
	}
	if !utf8.ValidString(src) {
		return nil, &SyntaxError{0, "the clause is not valid UTF-8"}
	}
	p := &parser{lex: lexer{src: src}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, nil
	}
	var terms []Term
	for {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		switch {
		case p.tok.kind == tEOF:
			return terms, nil
		case p.keyword("and"):
			if err := p.advance(); err != nil {
				return nil, err
			}
		case p.keyword("or"):
			return nil, &SyntaxError{p.tok.pos, "or is not supported: Keap combines its filters with and only"}
		default:
			return nil, &SyntaxError{p.tok.pos, fmt.Sprintf("expected and between terms, found %s", p.describe())}
		}
	}
}

type parser struct {
	lex lexer
	tok token
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	p.tok = t
	return err
}

func (p *parser) keyword(k string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, k)
}

func (p *parser) describe() string {
	switch p.tok.kind {
	case tEOF:
		return "the end"
	case tString:
		return Literal{Kind: StringLit, Text: p.tok.text}.String()
	}
	return fmt.Sprintf("%q", p.tok.text)
}

var reserved = []string{"and", "or", "not", "like", "in", "is", "null", "true", "false"}

func (p *parser) term() (Term, error) {
	switch {
	case p.tok.kind == tLParen:
		return Term{}, &SyntaxError{p.tok.pos, "parentheses are not supported: join terms with and"}
	case p.keyword("not"):
		return Term{}, &SyntaxError{p.tok.pos, "not is not supported"}
	case p.tok.kind != tIdent || isReserved(p.tok.text):
		return Term{}, &SyntaxError{p.tok.pos, fmt.Sprintf("expected a field name, found %s", p.describe())}
	}
	t := Term{Field: p.tok.text}
	if err := p.advance(); err != nil {
		return Term{}, err
	}
	switch {
	case p.tok.kind == tOp:
		t.Op = p.tok.text
	case p.keyword("like"), p.keyword("in"):
		t.Op = strings.ToLower(p.tok.text)
	case p.keyword("is"), p.keyword("not"):
		return Term{}, &SyntaxError{p.tok.pos, fmt.Sprintf("%s is not supported: compare %s with =", strings.ToLower(p.tok.text), t.Field)}
	default:
		return Term{}, &SyntaxError{p.tok.pos, fmt.Sprintf("expected an operator (=, !=, <, <=, >, >=, like, in) after %s, found %s", t.Field, p.describe())}
	}
	if err := p.advance(); err != nil {
		return Term{}, err
	}
	if t.Op != "in" {
		v, err := p.literal()
		t.Value = v
		return t, err
	}
	if p.tok.kind != tLParen {
		return Term{}, &SyntaxError{p.tok.pos, "in takes a list: field in ('a', 'b')"}
	}
	for {
		if err := p.advance(); err != nil {
			return Term{}, err
		}
		v, err := p.literal()
		if err != nil {
			return Term{}, err
		}
		t.Values = append(t.Values, v)
		switch p.tok.kind {
		case tComma:
			continue
		case tRParen:
			return t, p.advance()
		}
		return Term{}, &SyntaxError{p.tok.pos, fmt.Sprintf("expected , or ) in the in list, found %s", p.describe())}
	}
}

// literal reads one literal and moves past it.
func (p *parser) literal() (Literal, error) {
	var l Literal
	switch {
	case p.tok.kind == tString:
		l = Literal{Kind: StringLit, Text: p.tok.text}
	case p.tok.kind == tNumber:
		l = Literal{Kind: NumberLit, Text: p.tok.text}
	case p.keyword("true"), p.keyword("false"):
		l = Literal{Kind: BoolLit, Text: strings.ToLower(p.tok.text)}
	case p.keyword("null"):
		l = Literal{Kind: NullLit, Text: "null"}
	case p.tok.kind == tIdent:
		return l, &SyntaxError{p.tok.pos, fmt.Sprintf("expected a value, found %s: put text in single quotes, e.g. '%s'", p.describe(), p.tok.text)}
	default:
		return l, &SyntaxError{p.tok.pos, fmt.Sprintf("expected a value ('text', a number, true or false), found %s", p.describe())}
	}
	return l, p.advance()
}

func isReserved(s string) bool {
	for _, r := range reserved {
		if strings.EqualFold(s, r) {
			return true
		}
	}
	return false
}
