package keap

import (
	"errors"
	"strings"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	call, err := EncodeCall("ContactService.add", "k<&>", map[string]any{"Email": "a@b.c", "Age": 3, "Ok": true}, []any{1.5, "x"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(call)
	for _, want := range []string{"<methodName>ContactService.add</methodName>", "<string>k&lt;&amp;&gt;</string>", "<name>Age</name><value><int>3</int></value>", "<boolean>1</boolean>", "<double>1.5</double>"} {
		if !strings.Contains(s, want) {
			t.Errorf("encoded call lacks %s:\n%s", want, s)
		}
	}
	resp := `<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Id</name><value><i4>42</i4></value></member><member><name>Name</name><value>untyped</value></member><member><name>Tags</name><value><array><data><value><int>1</int></value></data></array></value></member></struct></value></param></params></methodResponse>`
	v, err := DecodeResponse([]byte(resp))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["Id"] != int64(42) || m["Name"] != "untyped" || m["Tags"].([]any)[0] != int64(1) {
		t.Fatalf("decoded %#v", m)
	}
}

func TestDecodeResponse_Fault(t *testing.T) {
	t.Parallel()
	resp := `<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>2</int></value></member><member><name>faultString</name><value><string>[InvalidKey]Invalid Key</string></value></member></struct></value></fault></methodResponse>`
	_, err := DecodeResponse([]byte(resp))
	var f *Fault
	if !errors.As(err, &f) || f.Code != 2 || f.String != "[InvalidKey]Invalid Key" {
		t.Fatalf("got %v", err)
	}
	if _, err := DecodeResponse([]byte("<html>")); err == nil || errors.As(err, &f) && f.Code != 2 {
		t.Fatalf("garbage must be an error, got %v", err)
	}
}

func TestValidAppNameAndKeyKinds(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{"ab123": true, "fm260": true, "AB123": false, "ab12": false, "abc12": false, "ab1234": false, "": false} {
		if ValidAppName(name) != want {
			t.Errorf("ValidAppName(%q) != %v", name, want)
		}
	}
	if !IsServiceAccountKey("KeapAK-abc") || IsServiceAccountKey("e9c9a2c8bd8ed803b5c") {
		t.Fatal("key kinds confused")
	}
}

func TestErrorMessage_KeapShapes(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"fault":{"faultstring":"Invalid Access Token","detail":{}}}`:          "Invalid Access Token",
		`{"message":"BILLING Region is invalid"}`:                               "BILLING Region is invalid",
		`{"error":"invalid_grant","error_description":"Invalid Refresh Token"}`: "Invalid Refresh Token",
		`{"error":"invalid_request"}`:                                           "invalid_request",
		"Service Unavailable":                                                   "Service Unavailable",
	}
	for body, want := range cases {
		if got := ErrorMessage([]byte(body)); got != want {
			t.Errorf("ErrorMessage(%s) = %q, want %q", body, got, want)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`<methodResponse><params><param><value><int>1</int></value></param></params></methodResponse>`,
		`<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>2</int></value></member></struct></value></fault></methodResponse>`,
		`<methodResponse><params><param><value><array><data><value><struct></struct></value></data></array></value></param></params></methodResponse>`,
		`<methodResponse>`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, err := DecodeResponse([]byte(in))
		if err == nil && v == nil && !strings.Contains(in, "nil") {
			t.Fatalf("no value and no error for %q", in)
		}
	})
}
