package proxy

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

const key = "k3y&<legacy>"

// keyParam is how withKey writes the key.
const keyParam = "<param><value><string>k3y&amp;&lt;legacy&gt;</string></value></param>"

func TestWithKey_ReplacesOrInsertsTheFirstParameter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{
			"placeholder replaced, the rest byte for byte",
			`<?xml version="1.0"?>` + "\n<methodCall>\n <methodName>ContactService.load</methodName>\n <params>\n  <param><value><string>placeholder</string></value></param>\n  <param><value><int>7</int></value></param>\n </params>\n</methodCall>\n",
			`<?xml version="1.0"?>` + "\n<methodCall>\n <methodName>ContactService.load</methodName>\n <params>\n  " + keyParam + "\n  <param><value><int>7</int></value></param>\n </params>\n</methodCall>\n",
		},
		{
			"a first parameter of another type is replaced too",
			`<methodCall><methodName>m</methodName><params><param><value><struct><member><name>a</name><value>x</value></member></struct></value></param></params></methodCall>`,
			`<methodCall><methodName>m</methodName><params>` + keyParam + `</params></methodCall>`,
		},
		{
			"self-closed first parameter",
			`<methodCall><methodName>m</methodName><params><param/><param><value>b</value></param></params></methodCall>`,
			`<methodCall><methodName>m</methodName><params>` + keyParam + `<param><value>b</value></param></params></methodCall>`,
		},
		{
			"empty params",
			`<methodCall><methodName>m</methodName><params> </params></methodCall>`,
			`<methodCall><methodName>m</methodName><params>` + keyParam + ` </params></methodCall>`,
		},
		{
			"self-closed params",
			`<methodCall><methodName>m</methodName><params/></methodCall>`,
			`<methodCall><methodName>m</methodName><params>` + keyParam + `</params></methodCall>`,
		},
		{
			"no params at all",
			`<methodCall><methodName>m</methodName></methodCall>`,
			`<methodCall><methodName>m</methodName><params>` + keyParam + `</params></methodCall>`,
		},
		{
			"nested param elements inside a value are not parameters",
			`<methodCall><methodName>m</methodName><params><param><value><struct><member><name>param</name><value><param/></value></member></struct></value></param></params></methodCall>`,
			`<methodCall><methodName>m</methodName><params>` + keyParam + `</params></methodCall>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withKey([]byte(tt.in), key)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// A method that takes no key is sent as written: the key would otherwise come
// back in DataService.echo's answer.
func TestWithKey_LeavesMethodsWithoutAKeyAlone(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`<methodCall><methodName>DataService.echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>`,
		`<methodCall><methodName> DataService.echo </methodName></methodCall>`,
		`<methodCall><methodName>system.listMethods</methodName><params/></methodCall>`,
		`<methodCall><methodName>system.multicall</methodName><params><param><value><array><data/></array></value></param></params></methodCall>`,
	} {
		got, err := withKey([]byte(in), key)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if string(got) != in {
			t.Fatalf("%s was changed to %s", in, got)
		}
	}
	got, err := withKey([]byte(`<methodCall><methodName>DataService.echoes</methodName></methodCall>`), key)
	if err != nil || !strings.Contains(string(got), keyParam) {
		t.Fatalf("a keyed method that merely starts like echo did not get the key: %s %v", got, err)
	}
}

func TestWithKey_RefusesWhatIsNotOneMethodCall(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		"not xml",
		`{"json": true}`,
		`<methodCall><methodName>m</methodName>`,
		`<methodResponse><params/></methodResponse>`,
		`<methodCall><params/></methodCall>`,
		`<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>`,
		`<methodCall><methodName>m</methodName><params/><params/></methodCall>`,
		`<methodCall><methodName>m</methodName></methodCall><methodCall/>`,
		`<methodCall><methodName>m</methodName></methodCall>trailing`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>m</methodName></methodCall>`,
	} {
		if out, err := withKey([]byte(in), key); err == nil {
			t.Errorf("%q accepted as %q", in, out)
		}
	}
}

// FuzzWithKey checks that whatever withKey accepts, it turns into a call
// whose first parameter is the key, with the caller's other parameters after
// it, unless the method takes no key: then the call is unchanged and carries
// no key.
func FuzzWithKey(f *testing.F) {
	f.Add([]byte(`<methodCall><methodName>m</methodName><params><param><value>x</value></param><param><value><i4>1</i4></value></param></params></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>m</methodName><params/></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>m</methodName></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>DataService.echo</methodName><params><param><value>x</value></param></params></methodCall>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := withKey(in, key)
		if err != nil {
			return
		}
		type call struct {
			Method string `xml:"methodName"`
			Params []struct {
				Value struct {
					String *string `xml:"string"`
				} `xml:"value"`
			} `xml:"params>param"`
		}
		var before, after call
		if err := xml.Unmarshal(out, &after); err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		_ = xml.Unmarshal(in, &before)
		if takesNoKey(strings.TrimSpace(after.Method)) {
			if !bytes.Equal(in, out) || bytes.Contains(out, []byte("k3y&amp;")) {
				t.Fatalf("a method without a key was changed or given the key:\n%q", out)
			}
			return
		}
		if len(after.Params) == 0 || after.Params[0].Value.String == nil || *after.Params[0].Value.String != key {
			t.Fatalf("first parameter is not the key:\n%q", out)
		}
		if want := max(len(before.Params), 1); len(after.Params) != want {
			t.Fatalf("%d parameters, want %d:\nin  %q\nout %q", len(after.Params), want, in, out)
		}
	})
}
