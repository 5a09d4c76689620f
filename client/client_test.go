package client

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGenerated_IsCurrent regenerates the client from api/openapi.yaml with
// the oapi-codegen version go.mod pins (go tool oapi-codegen) and fails when
// client.gen.go differs: run go generate ./client.
func TestGenerated_IsCurrent(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to regenerate the client: %v", err)
	}
	// The same configuration, writing elsewhere.
	dir := t.TempDir()
	out := filepath.Join(dir, "client.gen.go")
	conf, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(conf, []byte("\noutput: client.gen.go\n")) {
		t.Fatal("oapi-codegen.yaml does not say output: client.gen.go")
	}
	conf = bytes.Replace(conf, []byte("\noutput: client.gen.go\n"), []byte("\noutput: "+out+"\n"), 1)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "tool", "oapi-codegen", "-config", filepath.Join(dir, "config.yaml"), "../api/openapi.yaml")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go tool oapi-codegen: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("client/client.gen.go is not what api/openapi.yaml generates: run go generate ./client and commit the result")
	}
}
