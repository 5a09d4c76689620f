package proxy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// takesNoKey reports whether an XML-RPC method has no key parameter:
// DataService.echo answers its one argument, and the system.* methods
// describe the server. Putting the key into such a call would hand it back
// to the caller (echo) or break the call (system.multicall's first
// parameter is the list of calls).
func takesNoKey(method string) bool {
	return method == "DataService.echo" || strings.HasPrefix(method, "system.")
}

// withKey returns the XML-RPC methodCall call with key as its first parameter,
// as Keap's legacy endpoint wants it: the caller's placeholder first parameter
// is replaced, or the key is inserted when the call has no parameters. A
// method that takes no key (takesNoKey) is sent as the caller wrote it, so
// the key never reaches an answer. The rest of the document is kept byte for
// byte, so whatever the caller encoded reaches Keap as encoded. The error says
// what is wrong with a malformed call.
func withKey(call []byte, key string) ([]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(call))
	// Offsets of the parts the key goes into; -1 until seen.
	var (
		depth                  int
		roots, methodNames     int
		params                 int
		paramsStart, paramsTag int64 = -1, -1 // <params> and the end of its start tag
		paramsSelfClosed       bool
		paramStart, paramEnd   int64 = -1, -1 // the first <param>…</param>
		rootClose              int64 = -1     // </methodCall>
		inMethodName           bool
		method                 strings.Builder
	)
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the XML-RPC call is not well-formed XML: %w", err)
		}
		end := dec.InputOffset()
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				roots++
				if t.Name.Local != "methodCall" || roots > 1 {
					return nil, errors.New("the body is not one XML-RPC <methodCall>")
				}
			case depth == 2 && t.Name.Local == "methodName":
				methodNames++
				inMethodName = true
			case depth == 2 && t.Name.Local == "params":
				params++
				paramsStart, paramsTag = start, end
			case depth == 3 && params == 1 && t.Name.Local == "param" && paramStart < 0:
				paramStart = start
			}
		case xml.EndElement:
			inMethodName = false
			switch {
			case depth == 1:
				rootClose = start
			case depth == 2 && t.Name.Local == "params":
				// A self-closed <params/> ends where its start tag ended.
				paramsSelfClosed = start == end
			case depth == 3 && t.Name.Local == "param" && paramStart >= 0 && paramEnd < 0:
				paramEnd = end
			}
			depth--
		case xml.CharData:
			if inMethodName {
				method.Write(t)
			}
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("the XML-RPC call has text outside its <methodCall>")
			}
		}
	}
	switch {
	case roots == 0:
		return nil, errors.New("the body is not an XML-RPC <methodCall>")
	case methodNames != 1:
		return nil, errors.New("the XML-RPC call must have exactly one <methodName>")
	case params > 1:
		return nil, errors.New("the XML-RPC call has more than one <params>")
	}
	if takesNoKey(strings.TrimSpace(method.String())) {
		return call, nil
	}

	var kb bytes.Buffer
	kb.WriteString("<param><value><string>")
	_ = xml.EscapeText(&kb, []byte(key))
	kb.WriteString("</string></value></param>")
	param := kb.Bytes()

	var from, to int64 // the span replaced
	var insert []byte
	switch {
	case paramStart >= 0:
		from, to, insert = paramStart, paramEnd, param
	case params == 1 && paramsSelfClosed:
		from, to = paramsStart, paramsTag
		insert = append(append([]byte("<params>"), param...), "</params>"...)
	case params == 1:
		from, to, insert = paramsTag, paramsTag, param
	default:
		from, to = rootClose, rootClose
		insert = append(append([]byte("<params>"), param...), "</params>"...)
	}
	out := make([]byte, 0, len(call)+len(insert))
	out = append(out, call[:from]...)
	out = append(out, insert...)
	return append(out, call[to:]...), nil
}
