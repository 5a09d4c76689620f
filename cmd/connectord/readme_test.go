package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// readmeBlocks returns the fenced code blocks of language lang (sh, json)
// between README.md's <!-- name:begin --> and <!-- name:end --> markers.
func readmeBlocks(t *testing.T, name, lang string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start, end := strings.Index(s, "<!-- "+name+":begin -->"), strings.Index(s, "<!-- "+name+":end -->")
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the %s markers", name)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(s[start:end], -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("no %s block between the README's %s markers", lang, name)
	}
	return out
}

// readmeJourney returns the shell blocks between the journey markers of README.md.
func readmeJourney(t *testing.T) string {
	t.Helper()
	blocks := readmeBlocks(t, "journey", "sh")
	if len(blocks) < 3 {
		t.Fatalf("found %d shell blocks in the README journey", len(blocks))
	}
	return strings.Join(blocks, "")
}

// The README's curl journey runs, as written, against `connectord serve --sandbox`.
func TestREADMEJourney_RunsAgainstSandbox(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README journey needs %s: install it (apt-get install %s)", tool, tool)
		}
	}
	k := newKeap(t, fakekeap.Options{})
	s := startServerWith(t, baseEnv(t, testdb.New(t), k), k, []string{"--sandbox"})
	o := s.createOrg("dev", "dev@localhost")

	cmd := exec.Command("bash", "-c", readmeJourney(t))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "BASE=" + s.URL, "USER_SECRET=" + o.User.Secret, "ORG_SECRET=" + o.Organization.Secret}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "journey complete") {
		t.Fatalf("README journey failed: %v\n%s\nserver logs:\n%s", err, out, s.logs)
	}
	for _, want := range []string{`"oauthUrl"`, `missing required configuration: providerData.code, oauth.api.key, oauth.api.secret, oauth.callback.url`, "oauth.user.token=********", "\n200\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("journey output lacks %q:\n%s", want, out)
		}
	}
	if k.Stats().APICalls+k.Stats().CodeExchanges != 0 {
		t.Fatal("the sandbox journey reached the test's fake Keap instead of the in-process one")
	}
}
