package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/testdb"
)

// chromiumPath finds the headless browser the console's browser test drives:
// CONNECTORD_CHROMIUM (set by scripts/chromium.sh under `make test`), or
// Debian's chromium on PATH. Without one the test fails saying how to get it;
// it never installs anything itself.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CONNECTORD_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CONNECTORD_CHROMIUM=%s: %v; point it at a Chromium executable or unset it", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console's browser test needs a headless Chromium and found none.\n" +
		"Run the tests with `make test`, which installs Debian's chromium package when run as root with apt-get,\n" +
		"or install it yourself: apt-get update && apt-get install -y chromium\n" +
		"(or set CONNECTORD_CHROMIUM to a Chromium or Chrome executable).")
	return ""
}

// screenshotDir is where the browser test saves its screenshots:
// CONNECTORD_SCREENSHOTS (the README's come from CONNECTORD_SCREENSHOTS=docs),
// else a temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("CONNECTORD_SCREENSHOTS"); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join("..", "..", d) // relative to the repository root, not this package
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// A person walks the console in a real headless Chromium against `serve
// --sandbox`: signs in, connects an instance through the sandbox's Keap
// authorize page (clicking Allow), sees it valid, turns its events on, opens
// its API docs and runs a list call, creates a contact there, which Keap's
// hook turns into a notification, redelivers it, and signs out.
func TestConsoleBrowser_ConnectTryItRedeliverSignOut(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	shots := screenshotDir(t)

	k := newKeap(t, fakekeap.Options{})
	env := baseEnv(t, testdb.New(t), k)
	env["CONNECTORD_CALLBACK_ALLOW_PRIVATE"] = "true"
	env["CONNECTORD_DELIVERY_BACKOFF_BASE"] = "10ms"
	env["CONNECTORD_HOOK_CHECK_INTERVAL"] = "200ms"
	env["CONNECTORD_LOG_LEVEL"] = "info"
	s := startServerWith(t, env, k, []string{"--sandbox"})
	o := s.createOrg("Acme", "dev@acme.test")
	rcv := newReceiver(t, "")

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\nat %s\n%s\nlogs:\n%s", what, err, loc, body, s.logs)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, "console-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Sign in.
	do("open the sign-in page", chromedp.Navigate(s.URL+"/console/instances"), chromedp.WaitVisible(chromedp.CSS("#userSecret")))
	shot("signin")
	do("sign in",
		chromedp.SendKeys(chromedp.CSS("#userSecret"), o.User.Secret),
		chromedp.SendKeys(chromedp.CSS("#organizationSecret"), o.Organization.Secret),
		chromedp.Click(chromedp.CSS("main form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/elements"][aria-current]`+`, a[href="/console/instances"][aria-current]`)))
	if h := text("main h1"); h != "Instances" {
		t.Fatalf("after sign in the page is %q", h)
	}

	// Connect through the hosted flow and the sandbox's authorize page.
	do("open elements", chromedp.Navigate(s.URL+"/console/elements"), chromedp.WaitVisible(chromedp.CSS("#c-name-infusionsoftcrm")))
	// The organization's Keap app first, which Connect uses.
	do("store the Keap app",
		chromedp.SendKeys(chromedp.CSS("#a-id-infusionsoftcrm"), sandboxClientID),
		chromedp.SendKeys(chromedp.CSS("#a-secret-infusionsoftcrm"), sandboxClientSecret),
		chromedp.Click(chromedp.CSS(`form[action="/console/elements/infusionsoftcrm/app"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if n := text("p.notice"); n != "Keap app saved." {
		t.Fatalf("saving the Keap app: %q", n)
	}
	if app := text("#el-infusionsoftcrm form.box"); !strings.Contains(app, "Stored: client id "+sandboxClientID) || !strings.Contains(app, s.URL+"/connect/callback") {
		t.Fatalf("the stored app: %q", app)
	}
	shot("elements")
	do("connect",
		chromedp.SendKeys(chromedp.CSS("#c-name-infusionsoftcrm"), "Acme CRM"),
		chromedp.SendKeys(chromedp.CSS("#c-tags-infusionsoftcrm"), "browser, demo"),
		chromedp.Click(chromedp.CSS(`form[action="/console/elements/infusionsoftcrm/connect"] button[type=submit]`)),
		// The connect page's own form: "form button[type=submit]" alone also
		// matches the elements page being left, and clicking that node as the
		// navigation replaces it fails with "Could not find node with given id".
		chromedp.WaitVisible(chromedp.CSS(`form[action="/connect/authorize"] button[type=submit]`)))
	// The connect page: one button that sends the browser on to Keap.
	do("leave the connect page for Keap", chromedp.Click(chromedp.CSS(`form[action="/connect/authorize"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[value="allow"]`)))
	shot("keap-authorize")
	do("allow at Keap", chromedp.Click(chromedp.CSS(`button[value="allow"]`)), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if n := text("p.notice"); n != "Instance connected." {
		t.Fatalf("after the flow the notice says %q", n)
	}
	// The flow comes back to the new instance's page.
	if h := text("main h1"); !strings.Contains(h, "Acme CRM") || !strings.HasSuffix(h, "valid") {
		t.Fatalf("after the flow the page is %q", h)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	do("open the instances", chromedp.Click(chromedp.CSS(`nav a[href="/console/instances"]`)), chromedp.WaitVisible(chromedp.CSS("tbody tr")))
	row := text("tbody tr")
	if !strings.Contains(row, "Acme CRM") || !strings.Contains(row, "valid") || strings.Contains(row, "invalid") || !strings.Contains(row, "browser") {
		t.Fatalf("the connected instance's row: %q", row)
	}
	shot("instances")

	// Its page: turn events on, as webhooks to the receiver.
	do("open the instance", chromedp.Click(chromedp.CSS(`tbody tr a[href^="/console/instances/"]`)), chromedp.WaitVisible(chromedp.CSS("#configuration")))
	if now, _ := chromedp.Run(ctx, chromedp.Location()); now != strings.TrimSuffix(loc, "?done=connected") {
		t.Fatalf("the list links to %s, the flow came back to %s", now, loc)
	}
	loc = strings.TrimSuffix(loc, "?done=connected")
	id := loc[strings.LastIndex(loc, "/")+1:]
	do("turn events on",
		chromedp.SetValue(chromedp.CSS("#cfg-event\\.notification\\.enabled"), "true"),
		chromedp.SetValue(chromedp.CSS("#cfg-event\\.vendor\\.type"), "webhook"),
		chromedp.SetValue(chromedp.CSS("#cfg-event\\.notification\\.callback\\.url"), rcv.URL),
		chromedp.Click(chromedp.CSS(`form[action$="/configuration"] > button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if n := text("p.notice"); n != "Configuration saved." {
		t.Fatalf("saving the configuration: %q / %s", n, text("main"))
	}
	waitUntil(t, "Keap hooks registered and verified", 15*time.Second, func() bool {
		st := s.hookState(o, mustInt(t, id))
		hooks, _ := st["hooks"].([]any)
		for _, h := range hooks {
			if h.(map[string]any)["status"] != "Verified" {
				return false
			}
		}
		return len(hooks) > 0
	})

	// API docs: a list call, then a contact created, which Keap reports.
	do("open the API docs", chromedp.Click(chromedp.CSS(`a.button[href$="/docs"]`)), chromedp.WaitVisible(chromedp.CSS("#t-path")))
	do("run a list call",
		chromedp.SetValue(chromedp.CSS("#t-method"), "GET"),
		chromedp.SetValue(chromedp.CSS("#t-path"), "/hubs/crm/contacts"),
		chromedp.SetValue(chromedp.CSS("#t-query"), "pageSize=3"),
		chromedp.Click(chromedp.CSS(`#try button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#result")))
	if st := text("#result .status"); st != "200 OK" {
		t.Fatalf("the list call answered %q: %s", st, text("#result"))
	}
	if body := text("#result pre.body"); !strings.Contains(body, "email_addresses") {
		t.Fatalf("the list call's body: %s", body)
	}
	shot("api-docs")
	// The operation's own "Try" link fills the form in.
	do("create a contact",
		chromedp.Click(chromedp.CSS(`details:has(a[href$="docs?method=POST&path=%2fhubs%2fcrm%2fcontacts#try"]) > summary`)),
		chromedp.Click(chromedp.CSS(`a[href$="docs?method=POST&path=%2fhubs%2fcrm%2fcontacts#try"]`)),
		chromedp.WaitVisible(chromedp.CSS("#t-body")),
		chromedp.WaitNotPresent(chromedp.CSS("#result")),
		chromedp.SetValue(chromedp.CSS("#t-body"), `{"given_name":"Grace","email_addresses":[{"email":"grace@example.test","field":"EMAIL1"}]}`),
		chromedp.Click(chromedp.CSS(`#try button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#result")))
	if st, body := text("#result .status"), text("#result pre.body"); !strings.HasPrefix(st, "20") || !strings.Contains(body, "grace@example.test") {
		t.Fatalf("creating a contact answered %q: %s", st, text("#result"))
	}
	waitUntil(t, "the contact.add notification at the callback", 15*time.Second, func() bool { n, _ := rcv.distinct(); return n == 1 })

	// The event on the instance page, then redelivered.
	do("open the events", chromedp.Navigate(s.URL+"/console/instances/"+id+"#events"), chromedp.WaitVisible(chromedp.CSS("li.event")))
	waitUntil(t, "the delivery shown as delivered", 10*time.Second, func() bool {
		do("reload", chromedp.Navigate(s.URL+"/console/instances/"+id+"#events"), chromedp.WaitVisible(chromedp.CSS("li.event")))
		return strings.Contains(text("li.event .badge"), "delivered")
	})
	if ev := text("li.event"); !strings.Contains(ev, "CREATED contacts") {
		t.Fatalf("the event: %q", ev)
	}
	do("redeliver", chromedp.Click(chromedp.CSS(`li.event form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	if n := text("p.notice"); n != "Notification queued for redelivery." {
		t.Fatalf("redeliver: %q", n)
	}
	waitUntil(t, "the redelivery at the callback", 15*time.Second, func() bool { _, dup := rcv.distinct(); return dup == 1 })
	do("reload", chromedp.Navigate(s.URL+"/console/instances/"+id), chromedp.WaitVisible(chromedp.CSS("li.event")))
	waitUntil(t, "two attempts shown", 10*time.Second, func() bool {
		do("reload", chromedp.Navigate(s.URL+"/console/instances/"+id), chromedp.WaitVisible(chromedp.CSS("li.event")))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("li.event .attempts tbody tr").length`))
		return err == nil && n == 2
	})
	shot("instance")

	// On a phone.
	do("phone width", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.URL+"/console/instances/"+id), chromedp.WaitVisible(chromedp.CSS("li.event")))
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shots, "console-phone.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	do("laptop width", chromedp.EmulateViewport(1280, 900))

	// Sign out: the console is closed to this browser.
	do("sign out", chromedp.Click(chromedp.CSS("form.signout button")), chromedp.WaitVisible(chromedp.CSS("#userSecret")))
	if n := text("p.notice"); n != "Signed out." {
		t.Fatalf("sign out: %q", n)
	}
	do("try a page after signing out", chromedp.Navigate(s.URL+"/console/instances/"+id), chromedp.WaitVisible(chromedp.CSS("#userSecret")))
	if n := s.count("console_sessions"); n != 0 {
		t.Fatalf("%d console sessions left after signing out", n)
	}
	t.Logf("screenshots in %s", shots)
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q is not an id", s)
	}
	return n
}
