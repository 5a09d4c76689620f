package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// The README's operations block (metrics, audit log, trace context) runs, as
// written, against `connectord serve --sandbox`.
func TestREADMEOps_RunsAgainstSandbox(t *testing.T) {
	t.Parallel()
	script := strings.Join(readmeBlocks(t, "ops", "sh"), "")
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	o := s.createOrg("dev", "dev@localhost")
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "BASE=" + s.URL, "USER_SECRET=" + o.User.Secret, "ORG_SECRET=" + o.Organization.Secret}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ops complete") {
		t.Fatalf("README ops block failed: %v\n%s\nserver logs:\n%s", err, out, s.logs)
	}
	for _, want := range []string{`connectord_http_requests_total{method="GET",route="/instances",status="200"} 1`,
		"organization.created by operator: succeeded", "4bf92f3577b34da6a3ce929d0e0e4736"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README ops output lacks %q:\n%s", want, out)
		}
	}
}
