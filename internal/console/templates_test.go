package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every form that posts carries the CSRF field (the sign-in form, which has no
// session yet, is covered by the cross-origin check instead), no page has a
// script, and every template parses.
func TestTemplates_PostFormsCarryTheCSRFTokenAndNoScript(t *testing.T) {
	t.Parallel()
	if _, err := parsePages(); err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil || len(names) < 7 {
		t.Fatalf("templates: %v %v", names, err)
	}
	form := regexp.MustCompile(`(?s)<form[^>]*method="post"[^>]*>.*?</form>`)
	posts := 0
	for _, n := range names {
		b, err := fs.ReadFile(files, n)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Contains(strings.ToLower(s), "<script") || strings.Contains(s, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(s) {
			t.Errorf("%s has a script or an inline event handler; the console's policy allows none", n)
		}
		for _, f := range form.FindAllString(s, -1) {
			posts++
			if strings.Contains(f, `action="/console/signin"`) {
				continue
			}
			if !strings.Contains(f, `<input type="hidden" name="csrf" value="{{`) {
				t.Errorf("%s: a form posts without the csrf field:\n%s", n, f)
			}
		}
	}
	if posts < 12 {
		t.Fatalf("found only %d posting forms", posts)
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[string]string{"12h": "12h", "90m": "1h30m", "2s": "2s", "1h0m5s": "1h0m5s", "45m": "45m"} {
		dur, _ := time.ParseDuration(d)
		if got := shortDuration(dur); got != want {
			t.Errorf("shortDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
