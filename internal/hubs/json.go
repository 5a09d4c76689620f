package hubs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/connectord/connectord/internal/apperr"
)

// decodeJSON reads one JSON value, keeping numbers as written (Keap's ids are
// int64 and must not pass through float64).
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// jsonBody checks a write's body: a JSON object or array, which is sent to Keap as given.
func jsonBody(data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, apperr.Errorf(apperr.Invalid, "request body is empty: send the JSON Keap takes for this call")
	}
	v, err := decodeJSON(data)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, apperr.Errorf(apperr.Invalid, "malformed JSON at byte %d: %s", se.Offset, se.Error())
		}
		return nil, apperr.Errorf(apperr.Invalid, "malformed JSON: %s", err.Error())
	}
	switch v.(type) {
	case map[string]any, []any:
		return v, nil
	}
	return nil, apperr.Errorf(apperr.Invalid, "request body must be a JSON object")
}
