package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/connectord/connectord/internal/apperr"
)

// readBody reads the whole request body: at most MaxBodyBytes (413 beyond),
// within the time limitBody allows (408 beyond). Every handler that reads a
// body reads it here.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, apperr.Errorf(apperr.TooLarge, "request body is larger than %d bytes", mbe.Limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, apperr.Errorf(apperr.RequestTimeout, "request body did not arrive in time: send it whole, at once, after the header")
		}
		return nil, apperr.Errorf(apperr.Invalid, "request body could not be read")
	}
	return data, nil
}

// requireJSON refuses a Content-Type other than JSON; none is taken as JSON.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return apperr.Errorf(apperr.Unsupported, "Content-Type %q is not supported: send Content-Type: application/json", ct)
	}
	return nil
}
