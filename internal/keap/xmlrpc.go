package keap

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fault is an XML-RPC fault answer.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string { return fmt.Sprintf("xml-rpc fault %d: %s", f.Code, f.String) }

// EncodeCall encodes an XML-RPC methodCall. Params may be string, bool, int,
// int64, float64, time.Time, []any and map[string]any.
func EncodeCall(method string, params ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><methodCall><methodName>`)
	xml.EscapeText(&b, []byte(method))
	b.WriteString(`</methodName><params>`)
	for i, p := range params {
		b.WriteString(`<param>`)
		if err := encodeValue(&b, p); err != nil {
			return nil, fmt.Errorf("keap: xml-rpc param %d: %w", i+1, err)
		}
		b.WriteString(`</param>`)
	}
	b.WriteString(`</params></methodCall>`)
	return b.Bytes(), nil
}

func encodeValue(b *bytes.Buffer, v any) error {
	b.WriteString("<value>")
	switch v := v.(type) {
	case string:
		b.WriteString("<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>")
	case bool:
		if v {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case int:
		fmt.Fprintf(b, "<int>%d</int>", v)
	case int64:
		fmt.Fprintf(b, "<int>%d</int>", v)
	case float64:
		b.WriteString("<double>" + strconv.FormatFloat(v, 'f', -1, 64) + "</double>")
	case time.Time:
		b.WriteString("<dateTime.iso8601>" + v.Format("20060102T15:04:05") + "</dateTime.iso8601>")
	case []any:
		b.WriteString("<array><data>")
		for _, e := range v {
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("<struct>")
		for _, k := range keys {
			b.WriteString("<member><name>")
			xml.EscapeText(b, []byte(k))
			b.WriteString("</name>")
			if err := encodeValue(b, v[k]); err != nil {
				return err
			}
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	default:
		return fmt.Errorf("unsupported type %T", v)
	}
	b.WriteString("</value>")
	return nil
}

type xValue struct {
	String   *string   `xml:"string"`
	Int      *string   `xml:"int"`
	I4       *string   `xml:"i4"`
	I8       *string   `xml:"i8"`
	Boolean  *string   `xml:"boolean"`
	Double   *string   `xml:"double"`
	DateTime *string   `xml:"dateTime.iso8601"`
	Base64   *string   `xml:"base64"`
	Nil      *struct{} `xml:"nil"`
	Struct   *struct {
		Members []struct {
			Name  string `xml:"name"`
			Value xValue `xml:"value"`
		} `xml:"member"`
	} `xml:"struct"`
	Array *struct {
		Values []xValue `xml:"data>value"`
	} `xml:"array"`
	Text string `xml:",chardata"`
}

func (v xValue) decode() (any, error) {
	switch {
	case v.String != nil:
		return *v.String, nil
	case v.Int != nil || v.I4 != nil || v.I8 != nil:
		s := v.Int
		if s == nil {
			s = v.I4
		}
		if s == nil {
			s = v.I8
		}
		return strconv.ParseInt(strings.TrimSpace(*s), 10, 64)
	case v.Boolean != nil:
		switch strings.TrimSpace(*v.Boolean) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return nil, fmt.Errorf("bad boolean %q", *v.Boolean)
	case v.Double != nil:
		return strconv.ParseFloat(strings.TrimSpace(*v.Double), 64)
	case v.DateTime != nil:
		return strings.TrimSpace(*v.DateTime), nil
	case v.Base64 != nil:
		return strings.TrimSpace(*v.Base64), nil
	case v.Nil != nil:
		return nil, nil
	case v.Struct != nil:
		m := map[string]any{}
		for _, mem := range v.Struct.Members {
			d, err := mem.Value.decode()
			if err != nil {
				return nil, err
			}
			m[mem.Name] = d
		}
		return m, nil
	case v.Array != nil:
		out := make([]any, 0, len(v.Array.Values))
		for _, e := range v.Array.Values {
			d, err := e.decode()
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, nil
	default:
		return v.Text, nil
	}
}

// DecodeResponse decodes a methodResponse. A fault comes back as a *Fault error.
func DecodeResponse(data []byte) (any, error) {
	var r struct {
		XMLName xml.Name `xml:"methodResponse"`
		Params  []xValue `xml:"params>param>value"`
		Fault   *xValue  `xml:"fault>value"`
	}
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("keap: xml-rpc response: %w", err)
	}
	if r.Fault != nil {
		v, err := r.Fault.decode()
		if err != nil {
			return nil, fmt.Errorf("keap: xml-rpc fault: %w", err)
		}
		m, _ := v.(map[string]any)
		f := &Fault{}
		if c, ok := m["faultCode"].(int64); ok {
			f.Code = int(c)
		}
		f.String, _ = m["faultString"].(string)
		return nil, f
	}
	if len(r.Params) != 1 {
		return nil, fmt.Errorf("keap: xml-rpc response has %d params, want 1", len(r.Params))
	}
	return r.Params[0].decode()
}

// DecodeCall decodes a methodCall: its method name and its parameters, as
// DecodeResponse decodes values (dateTime.iso8601 and base64 stay strings).
func DecodeCall(data []byte) (string, []any, error) {
	var c struct {
		XMLName xml.Name `xml:"methodCall"`
		Method  string   `xml:"methodName"`
		Params  []xValue `xml:"params>param>value"`
	}
	if err := xml.Unmarshal(data, &c); err != nil {
		return "", nil, fmt.Errorf("not an XML-RPC methodCall: %w", err)
	}
	if strings.TrimSpace(c.Method) == "" {
		return "", nil, fmt.Errorf("the methodCall has no methodName")
	}
	params := make([]any, len(c.Params))
	for i, p := range c.Params {
		v, err := p.decode()
		if err != nil {
			return "", nil, fmt.Errorf("parameter %d: %w", i+1, err)
		}
		params[i] = v
	}
	return strings.TrimSpace(c.Method), params, nil
}

// EncodeResponse encodes a methodResponse carrying v (the types EncodeCall takes).
func EncodeResponse(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><methodResponse><params><param>`)
	if err := encodeValue(&b, v); err != nil {
		return nil, fmt.Errorf("keap: xml-rpc response: %w", err)
	}
	b.WriteString("</param></params></methodResponse>\n")
	return b.Bytes(), nil
}

// EncodeFault encodes a methodResponse carrying a fault.
func EncodeFault(f *Fault) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><methodResponse><fault>`)
	_ = encodeValue(&b, map[string]any{"faultCode": f.Code, "faultString": f.String})
	b.WriteString("</fault></methodResponse>\n")
	return b.Bytes()
}
