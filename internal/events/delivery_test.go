package events

import (
	"testing"
	"time"
)

// The n-th retry waits base·4^n within ±20 %: with the default base, nine
// retries spread over about four days, the last wait about three.
func TestBackoff_GrowsFourfoldWithJitter(t *testing.T) {
	t.Parallel()
	d := NewDelivery(nil, nil, DeliveryOptions{})
	var total time.Duration
	want := time.Second
	for n := 1; n <= 9; n++ {
		want *= 4
		got := d.Backoff(n)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("retry %d waits %s, want %s ±20%%", n, got, want)
		}
		total += got
	}
	if total < 3*24*time.Hour || total > 5*24*time.Hour {
		t.Errorf("nine retries span %s, want about four days", total)
	}
	fast := NewDelivery(nil, nil, DeliveryOptions{BackoffBase: 10 * time.Millisecond})
	if got := fast.Backoff(1); got < 32*time.Millisecond || got > 48*time.Millisecond {
		t.Errorf("base 10ms: first retry waits %s, want about 40ms", got)
	}
}
