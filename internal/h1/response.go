package h1

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// maxPending is how much body a handler may write before the server must
// choose the answer's framing: an answer that ends within it goes out with
// its Content-Length, a longer one chunked (net/http holds back 2 KB).
const maxPending = 4 << 10

// response is the http.ResponseWriter (and http.Flusher) of one request.
// Headers go out at the first write that does not fit maxPending, at Flush,
// or when the handler returns, whichever is first.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	body   requestBody

	status   int   // 0 until WriteHeader
	declared int64 // the handler's Content-Length, or -1
	written  int64
	pending  *[]byte // body held back while the framing is open
	head     bool    // a HEAD request: the body is counted, not sent

	sent       bool // status line and headers are in the connection's buffer
	chunked    bool
	trailers   []string // trailer names the handler announced in its Trailer header
	closeAfter bool     // the connection closes after this answer
	err        error    // the connection failed while writing
}

func newResponse(c *conn, req *http.Request) *response {
	w := &response{c: c, req: req, header: make(http.Header, 8), declared: -1, head: req.Method == http.MethodHead}
	w.body = requestBody{rc: req.Body, w: w, eof: req.Body == http.NoBody}
	return w
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader records the status; an informational one (1xx other than
// 101) goes out at once with the headers set so far.
func (w *response) WriteHeader(code int) {
	if w.status != 0 {
		return // a second call changes nothing, as under net/http
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code)) // as net/http
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.status = code
	if vv := w.header["Content-Length"]; len(vv) > 0 {
		if n, err := strconv.ParseInt(textproto.TrimString(vv[0]), 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			delete(w.header, "Content-Length") // not a length: the server frames the body itself
		}
	}
}

func (w *response) writeInformational(code int) {
	if code == http.StatusContinue {
		w.body.continueNeeded = false
	}
	bw := w.c.bw
	writeStatusLine(bw, w.req, code)
	for k, vv := range w.header {
		writeField(bw, k, vv)
	}
	_, _ = bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && !w.head && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.sent {
		if w.declared < 0 && w.pendingLen()+len(p) <= maxPending {
			if w.pending == nil {
				if b, ok := w.c.s.pending.Get().(*[]byte); ok {
					w.pending = b
				} else {
					b := make([]byte, 0, maxPending)
					w.pending = &b
				}
			}
			*w.pending = append(*w.pending, p...)
			return len(p), nil
		}
		w.sendHeader(false, p)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Flush sends what the handler wrote so far; an answer whose length is not
// known then goes out chunked.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with the connection's error (http.ResponseController uses it).
func (w *response) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHeader(false, nil)
	}
	if err := w.c.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *response) pendingLen() int {
	if w.pending == nil {
		return 0
	}
	return len(*w.pending)
}

// finish completes the answer after the handler has returned.
func (w *response) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHeader(true, nil)
	}
	if w.chunked {
		bw := w.c.bw
		_, _ = bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			writeField(bw, k, w.header[k])
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeField(bw, name, vv)
			}
		}
		_, _ = bw.WriteString("\r\n")
	}
	if w.declared >= 0 && !w.head && bodyAllowed(w.status) && w.written < w.declared {
		w.closeAfter = true // the client was promised more than it got: nothing can follow
	}
	w.releasePending()
}

func (w *response) releasePending() {
	if w.pending != nil {
		*w.pending = (*w.pending)[:0]
		w.c.s.pending.Put(w.pending)
		w.pending = nil
	}
}

// sendHeader writes the status line and headers, choosing the framing: the
// handler's Content-Length, the length of the whole body when the handler
// has finished (final), chunked for HTTP/1.1, or the end of the connection
// for HTTP/1.0. more is the write that made the headers go out.
func (w *response) sendHeader(final bool, more []byte) {
	w.sent = true
	h := w.header
	bodyOK := bodyAllowed(w.status)
	if vv, ok := h["Trailer"]; ok && bodyOK && w.declared < 0 {
		for _, v := range vv {
			for name := range strings.SplitSeq(v, ",") {
				if name = textproto.TrimString(name); name != "" {
					w.trailers = append(w.trailers, textproto.CanonicalMIMEHeaderKey(name))
				}
			}
		}
	}
	length := w.declared
	computed := false
	if length < 0 && final && bodyOK && len(w.trailers) == 0 && (!w.head || w.written > 0) {
		length, computed = w.written, true
	}
	switch {
	case !bodyOK || w.head:
	case length >= 0:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends where the connection does
	}
	if !w.chunked {
		w.trailers = nil
	}
	if w.req.Close || w.c.s.closing.Load() || w.body.unreadTooMuch() || listsClose(h["Connection"]) {
		w.closeAfter = true
	}

	bw := w.c.bw
	writeStatusLine(bw, w.req, w.status)
	for k, vv := range h {
		switch k {
		case "Transfer-Encoding", "Connection", "Date":
			continue // the server's own, written below
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		writeField(bw, k, vv)
	}
	if computed {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(w.c.num[:0], length, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter:
		_, _ = bw.WriteString("Connection: close\r\n")
	case !w.req.ProtoAtLeast(1, 1):
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	if vv, ok := h["Date"]; ok {
		writeField(bw, "Date", vv) // set by the handler, or nil to send none
	} else {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(w.c.s.date())
		_, _ = bw.WriteString("\r\n")
	}
	if _, ok := h["Content-Type"]; !ok && bodyOK && w.written > 0 && len(h["Content-Encoding"]) == 0 {
		sniff := more
		if w.pendingLen() > 0 {
			sniff = *w.pending
		}
		_, _ = bw.WriteString("Content-Type: ")
		_, _ = bw.WriteString(http.DetectContentType(sniff))
		_, _ = bw.WriteString("\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if w.pendingLen() > 0 {
		w.writeBody(*w.pending)
	}
	w.releasePending()
}

// writeBody writes p as the body, or as one chunk of it.
func (w *response) writeBody(p []byte) {
	if w.head || len(p) == 0 || w.err != nil {
		return
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendInt(w.c.num[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
}

// requestBody is a request's body as the handler reads it: it answers
// Expect: 100-continue at the first read and counts what was read, so the
// server knows what is left when the handler returns.
type requestBody struct {
	rc             io.ReadCloser
	w              *response
	continueNeeded bool // the client waits for 100 Continue before it sends
	read           int64
	eof            bool
	closed         bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.continueNeeded {
		b.continueNeeded = false
		if !b.w.sent {
			bw := b.w.c.bw
			_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close marks the body closed; what is left is read, or the connection
// closed, when the handler has returned.
func (b *requestBody) Close() error {
	b.closed = true
	return nil
}

// unreadTooMuch says whether more of the body is left than the server will
// read to keep the connection, or the client has not been asked to send it.
func (b *requestBody) unreadTooMuch() bool {
	if b.eof {
		return false
	}
	return b.continueNeeded || b.w.req.ContentLength < 0 || b.w.req.ContentLength-b.read > maxDrainBytes
}

// drain reads and discards what the handler left of the body, and reports
// whether the connection can carry another request.
func (b *requestBody) drain() bool {
	if b.eof {
		return true
	}
	if b.continueNeeded {
		return false // the client may never send it
	}
	c := b.w.c
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout()))
	n, err := io.CopyN(io.Discard, b.rc, maxDrainBytes+1)
	return err == io.EOF && n <= maxDrainBytes
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// listsClose says whether a Connection header set by the handler asks to close.
func listsClose(vv []string) bool {
	for _, v := range vv {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "close") {
				return true
			}
		}
	}
	return false
}

func writeStatusLine(bw *bufio.Writer, req *http.Request, code int) {
	if req.ProtoAtLeast(1, 1) {
		_, _ = bw.WriteString("HTTP/1.1 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.0 ")
	}
	var num [8]byte
	_, _ = bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	_, _ = bw.WriteString(" ")
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	_, _ = bw.WriteString(text)
	_, _ = bw.WriteString("\r\n")
}

// writeField writes one header field per value. Names that are not HTTP
// tokens are dropped and line breaks in values become spaces, as net/http
// does, so that nothing a handler puts in a header can start another.
func writeField(bw *bufio.Writer, name string, vv []string) {
	if !validFieldName(name) {
		return
	}
	for _, v := range vv {
		_, _ = bw.WriteString(name)
		_, _ = bw.WriteString(": ")
		v = textproto.TrimString(v)
		if strings.ContainsAny(v, "\r\n") {
			v = newlineToSpace.Replace(v)
		}
		_, _ = bw.WriteString(v)
		_, _ = bw.WriteString("\r\n")
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := k[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// cachedDate is the Date header of one second, made once.
type cachedDate struct {
	unix int64
	text string
}

func (s *Server) date() string {
	now := time.Now()
	if d := s.dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &cachedDate{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	s.dateCache.Store(d)
	return d.text
}

func jsonMessage(msg string) ([]byte, error) {
	return json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
}
