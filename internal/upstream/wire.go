package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// wantsGzip says whether the transport asks for gzip on req's behalf, as
// net/http does: when it names no encoding and no range, and not for HEAD,
// whose answer has no body to decompress.
func wantsGzip(req *http.Request) bool {
	h := req.Header
	return h.Get("Accept-Encoding") == "" && h.Get("Range") == "" && req.Method != http.MethodHead
}

// writeRequest writes req to bw as net/http's Request.Write does, with
// Accept-Encoding: gzip added when gzip is set, without copying the request
// or its header to add it. Requests outside what Keap calls look like (a
// body of unknown length, trailers, Connection: close, an opaque URL) are
// left to Request.Write.
func writeRequest(bw *bufio.Writer, req *http.Request, gzip bool) error {
	hasBody := req.Body != nil && req.Body != http.NoBody
	plain := req.URL.Opaque == "" && len(req.TransferEncoding) == 0 && len(req.Trailer) == 0 && !req.Close &&
		req.Method != "" && req.Method != http.MethodConnect && validMethod(req.Method) &&
		(hasBody && req.ContentLength > 0 || !hasBody && req.ContentLength == 0)
	if !plain {
		wire := req
		if gzip {
			copied := *req
			copied.Header = req.Header.Clone()
			if copied.Header == nil {
				copied.Header = http.Header{}
			}
			copied.Header["Accept-Encoding"] = []string{"gzip"}
			wire = &copied
		}
		return wire.Write(bw)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHost(host) {
		return req.Write(bw) // which refuses it, naming the problem
	}
	_, _ = bw.WriteString(req.Method)
	_, _ = bw.WriteString(" ")
	_, _ = bw.WriteString(req.URL.RequestURI())
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		writeField(bw, "User-Agent", ua)
	}
	switch {
	case req.ContentLength > 0:
		_, _ = fmt.Fprintf(bw, "Content-Length: %d\r\n", req.ContentLength)
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		_, _ = bw.WriteString("Content-Length: 0\r\n") // many servers want one on these
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if gzip {
		_, _ = bw.WriteString("Accept-Encoding: gzip\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	if !hasBody {
		return nil
	}
	defer req.Body.Close()
	n, err := io.CopyN(bw, req.Body, req.ContentLength)
	if err != nil && n < req.ContentLength {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return err
}

// writeField writes one header line; line breaks in v become spaces, as
// Request.Write makes them.
func writeField(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = newlineToSpace.Replace(v)
	}
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	_, _ = bw.WriteString(textproto.TrimString(v))
	_, _ = bw.WriteString("\r\n")
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// validMethod says whether m is an HTTP token.
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		b := m[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			return false
		}
	}
	return true
}

// validHost says whether h can go in a Host header unchanged.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!$&'()*+,-.:;=[]_~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
