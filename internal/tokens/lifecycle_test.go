package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/elements"
	"github.com/connectord/connectord/internal/fakekeap"
	"github.com/connectord/connectord/internal/instances"
	"github.com/connectord/connectord/internal/oauthflow"
	"github.com/connectord/connectord/internal/secrets"
	"github.com/connectord/connectord/internal/store"
	"github.com/connectord/connectord/internal/tenants"
	"github.com/connectord/connectord/internal/testdb"
)

const (
	clientID     = "tokens-test-client"
	clientSecret = "tokens-test-secret"
	callback     = "https://app.test/cb"
)

type fixture struct {
	db      *store.DB
	fake    *fakekeap.Server
	keapURL string
	catalog *elements.Catalog
	org     tenants.Organization
}

func newFixture(t *testing.T, ttl time.Duration) *fixture {
	t.Helper()
	fake := fakekeap.New(fakekeap.Options{AccessTokenTTL: ttl})
	fake.RegisterClient(clientID, clientSecret)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	key, err := secrets.ParseKey(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), testdb.New(t), secrets.NewRing(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	catalog, err := elements.Load(map[string]elements.Endpoints{"infusionsoft": {AuthorizationURL: srv.URL + "/app/oauth/authorize", TokenURL: srv.URL + "/token", APIURL: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	org, _, err := db.CreateOrganization(context.Background(), "o", secrets.Hash(secrets.NewToken()), "a@b.test", secrets.Hash(secrets.NewToken()))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, fake: fake, keapURL: srv.URL, catalog: catalog, org: org}
}

// provision creates an OAuth instance the way POST /instances does: a code
// exchanged at the fake, the tokens stored.
func (f *fixture) provision(t *testing.T) *instances.Instance {
	t.Helper()
	code, err := f.fake.IssueCode(clientID, callback)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := (&oauthflow.Provider{TokenURL: f.keapURL + "/token"}).Exchange(context.Background(), clientID, clientSecret, callback, code)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cid, cb := clientID, callback
	inst := &instances.Instance{
		OrganizationID: f.org.ID, ElementKey: "infusionsoftcrm", Name: "i", AuthType: instances.AuthOAuth2,
		TokenHash: secrets.Hash(secrets.NewToken()), Tags: []string{}, Valid: true,
		Config:         map[string]*string{instances.KeyClientID: &cid, instances.KeyCallbackURL: &cb},
		Secrets:        map[string]string{instances.KeyClientSecret: clientSecret, instances.KeyAccessToken: tok.AccessToken, instances.KeyRefreshToken: tok.RefreshToken},
		TokenExpiresAt: &tok.Expiry, RefreshedAt: &now,
	}
	if err := f.db.CreateInstance(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

func (f *fixture) service(opt Options) *Service {
	return New(f.db, f.catalog, opt)
}

// callKeap makes one API call with the token, as the proxy will.
func (f *fixture) callKeap(t *testing.T, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", f.keapURL+"/crm/rest/v1/account/profile", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A 401 from Keap heals with one refresh, however many callers hit it at once.
func TestRenew_ConcurrentCallersShareOneRefresh(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	inst := f.provision(t)
	svc := f.service(Options{})
	ctx := context.Background()
	tok, err := svc.AccessToken(ctx, f.org.ID, inst.ID)
	if err != nil || f.callKeap(t, tok) != 200 {
		t.Fatalf("fresh token unusable: %v", err)
	}
	f.fake.ExpireAccessTokens()
	if f.callKeap(t, tok) != 401 {
		t.Fatal("the fake did not expire the token")
	}
	before := f.fake.Stats().Refreshes
	var wg sync.WaitGroup
	results := make([]string, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			results[i], err = svc.Renew(ctx, f.org.ID, inst.ID, tok)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.fake.Stats().Refreshes - before; n != 1 {
		t.Fatalf("%d refreshes for one rejected token, want 1", n)
	}
	for _, r := range results {
		if r != results[0] || r == tok || f.callKeap(t, r) != 200 {
			t.Fatalf("callers got different or unusable tokens")
		}
	}
	if f.fake.Stats().RefreshTokenReuse != 0 {
		t.Fatal("a refresh token was reused")
	}
}

func TestAccessToken_RefreshesInlineWhenAboutToExpire(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 30*time.Second) // expires within the 1m inline margin
	inst := f.provision(t)
	svc := f.service(Options{})
	tok, err := svc.AccessToken(context.Background(), f.org.ID, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tok == inst.Secrets[instances.KeyAccessToken] || f.fake.Stats().Refreshes != 1 || f.callKeap(t, tok) != 200 {
		t.Fatalf("about-to-expire token was not refreshed inline (refreshes %d)", f.fake.Stats().Refreshes)
	}
}

func TestRefresh_RefusalMarksInvalidAndStops(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	inst := f.provision(t)
	svc := f.service(Options{})
	f.fake.RevokeRefreshTokens(clientID)
	_, err := svc.ForceRefresh(context.Background(), f.org.ID, inst.ID)
	if e, ok := apperr.As(err); !ok || e.Code != apperr.ProviderRefused || e.ProviderMessage == "" || !errors.Is(err, oauthflow.ErrRefreshRefused) {
		t.Fatalf("want a provider refusal with Keap's message, got %v", err)
	}
	got, err := f.db.Instance(context.Background(), f.org.ID, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Valid || got.InvalidReason == "" || got.LastRefreshError == "" {
		t.Fatalf("refused instance: valid=%v reason=%q lastError=%q", got.Valid, got.InvalidReason, got.LastRefreshError)
	}
	// The background refresher leaves it alone from now on.
	attempts := f.fake.Stats().InvalidRefreshAttempts
	for range 3 {
		if found, err := svc.RefreshNextDue(context.Background()); found || err != nil {
			t.Fatalf("the refresher picked an invalid instance: %v %v", found, err)
		}
	}
	if f.fake.Stats().InvalidRefreshAttempts != attempts {
		t.Fatal("the refresher kept trying a refused token")
	}
	if _, err := svc.AccessToken(context.Background(), f.org.ID, inst.ID); apperr.CodeOf(err) != apperr.Conflict {
		t.Fatalf("an invalid instance handed out a token: %v", err)
	}
}

func TestRefresh_TransientFailureKeepsValidAndBacksOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	inst := f.provision(t)
	svc := f.service(Options{BackoffBase: time.Minute})
	f.fake.SetDown(true)
	_, err := svc.ForceRefresh(context.Background(), f.org.ID, inst.ID)
	f.fake.SetDown(false)
	if apperr.CodeOf(err) != apperr.ProviderDown {
		t.Fatalf("want provider_down, got %v", err)
	}
	got, _ := f.db.Instance(context.Background(), f.org.ID, inst.ID)
	if !got.Valid || got.RefreshFailures != 1 || got.LastRefreshError == "" || got.RefreshDueAt == nil || !got.RefreshDueAt.After(time.Now().Add(25*time.Second)) {
		t.Fatalf("after a transient failure: valid=%v failures=%d err=%q due=%v", got.Valid, got.RefreshFailures, got.LastRefreshError, got.RefreshDueAt)
	}
	if found, _ := svc.RefreshNextDue(context.Background()); found {
		t.Fatal("the refresher retried before the backoff passed")
	}
	// The old refresh token still works after a failure that never reached Keap.
	if _, err := svc.ForceRefresh(context.Background(), f.org.ID, inst.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = f.db.Instance(context.Background(), f.org.ID, inst.ID)
	if got.RefreshFailures != 0 || got.LastRefreshError != "" || !f.fake.RefreshTokenValid(got.Secrets[instances.KeyRefreshToken]) {
		t.Fatalf("a success did not clear the failure: %+v", got)
	}
}

// Workers claiming due instances never refresh the same one twice at once.
func TestRefreshNextDue_WorkersShareTheBacklog(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	const n = 30
	for range n {
		f.provision(t)
	}
	// Everything falls due now.
	if _, err := f.db.Pool().Exec(context.Background(), `UPDATE instance_credentials SET due_at = now() - interval '1 minute', refreshed_at = now() - interval '1 day'`); err != nil {
		t.Fatal(err)
	}
	svc := f.service(Options{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				found, err := svc.RefreshNextDue(context.Background())
				if err != nil {
					t.Error(err)
				}
				if !found {
					return
				}
			}
		}()
	}
	wg.Wait()
	st := f.fake.Stats()
	if st.Refreshes != n || st.RefreshTokenReuse != 0 || st.InvalidRefreshAttempts != 0 {
		t.Fatalf("refreshes %d (want %d), reuse %d, invalid %d", st.Refreshes, n, st.RefreshTokenReuse, st.InvalidRefreshAttempts)
	}
}
