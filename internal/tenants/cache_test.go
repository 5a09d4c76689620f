package tenants

import (
	"context"
	"testing"
	"time"

	"github.com/connectord/connectord/internal/apperr"
)

// counting answers from a fixed table and counts the questions.
type counting struct {
	calls int
	valid map[Credentials]Principal
}

func (c *counting) Authenticate(_ context.Context, cr Credentials, _ Need) (Principal, error) {
	c.calls++
	if p, ok := c.valid[cr]; ok {
		return p, nil
	}
	return Principal{}, apperr.Errorf(apperr.Unauthorized, "no")
}

func TestAuthCache_RemembersSuccessForTheTTLOnly(t *testing.T) {
	t.Parallel()
	good := Credentials{User: "u", Element: "e"}
	other := Credentials{User: "u", Organization: "e"} // the same strings in other parts
	inner := &counting{valid: map[Credentials]Principal{good: {OrganizationID: 1, InstanceID: 7}, other: {OrganizationID: 2}}}
	now := time.Unix(0, 0)
	c := NewAuthCache(inner, 5*time.Second, func() time.Time { return now })
	ctx := context.Background()

	for range 3 {
		if p, err := c.Authenticate(ctx, good, NeedElement); err != nil || p.InstanceID != 7 {
			t.Fatalf("%v %v", p, err)
		}
	}
	if inner.calls != 1 {
		t.Fatalf("%d lookups for three calls within the TTL, want 1", inner.calls)
	}
	if p, _ := c.Authenticate(ctx, other, NeedElement); p.OrganizationID != 2 || inner.calls != 2 {
		t.Fatalf("other credentials answered %v from the cache", p)
	}
	if _, _ = c.Authenticate(ctx, good, NeedOrganization); inner.calls != 3 {
		t.Fatal("another need answered from the cache")
	}
	for range 2 {
		if _, err := c.Authenticate(ctx, Credentials{User: "bad", Element: "e"}, NeedElement); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("bad credentials: %v", err)
		}
	}
	if inner.calls != 5 {
		t.Fatalf("refusals were remembered: %d lookups", inner.calls)
	}
	now = now.Add(5 * time.Second)
	if _, _ = c.Authenticate(ctx, good, NeedElement); inner.calls != 6 {
		t.Fatal("an expired entry answered")
	}
}

func TestAuthCache_ZeroTTLAsksEveryTime(t *testing.T) {
	t.Parallel()
	good := Credentials{User: "u", Element: "e"}
	inner := &counting{valid: map[Credentials]Principal{good: {OrganizationID: 1}}}
	c := NewAuthCache(inner, 0, time.Now)
	for range 3 {
		_, _ = c.Authenticate(context.Background(), good, NeedElement)
	}
	if inner.calls != 3 {
		t.Fatalf("%d lookups, want 3", inner.calls)
	}
}
