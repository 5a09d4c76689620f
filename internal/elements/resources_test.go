package elements

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad_RejectsResourcesTheHubsCannotServe(t *testing.T) {
	t.Parallel()
	element := `{"id":1,"key":"x","name":"X","provider":"p","hub":"crm","resources":["a","b"]}`
	cases := map[string]string{
		"unknown method":        `"a":{"path":"/a","methods":["FETCH"]},"b":{"path":"/b","methods":["GET"]}`,
		"put without upsert":    `"a":{"path":"/a","methods":["PUT"]},"b":{"path":"/b","methods":["GET"]}`,
		"child without segment": `"a":{"path":"/a","methods":["GET"]},"b":{"path":"/a/{id}/b","methods":["GET"],"parent":"a"}`,
		"child of nothing":      `"a":{"path":"/a","methods":["GET"]},"b":{"path":"/a/{id}/b","methods":["GET"],"parent":"z","segment":"b"}`,
		"child without slot":    `"a":{"path":"/a","methods":["GET"]},"b":{"path":"/a/b","methods":["GET"],"parent":"a","segment":"b"}`,
		"unknown param type":    `"a":{"path":"/a","methods":["GET"],"paramTypes":{"x":"date"}},"b":{"path":"/b","methods":["GET"]}`,
		"unknown method param":  `"a":{"path":"/a","methods":["DELETE"],"methodParams":{"DELETE":{"ids":{"type":"list"}}}},"b":{"path":"/b","methods":["GET"]}`,
	}
	for name, resources := range cases {
		provider := `{"key":"p","name":"P","authenticationTypes":["oauth2"],"endpoints":{},"configuration":[],"resources":{` + resources + `}}`
		fsys := fstest.MapFS{
			"definitions/providers/p.json": {Data: []byte(provider)},
			"definitions/elements/x.json":  {Data: []byte(element)},
		}
		if _, err := load(fsys, nil); err == nil || !strings.Contains(err.Error(), "resource") {
			t.Errorf("%s: load answered %v, want a resource error", name, err)
		}
	}
}
