package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/connectord/connectord/internal/upstream"
)

// BenchmarkProxy_ChunkedPage is one proxied GET of a 3 KB chunked page, the
// shape bench/run.sh measures, through net/http's Transport; allocations
// per call are the figure to watch (go test -bench Proxy -benchmem).
func BenchmarkProxy_ChunkedPage(b *testing.B) {
	page := strings.Repeat(`{"id":1,"given_name":"Bench","family_name":"Contact"},`, 60)
	keap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = io.WriteString(w, page)
	}))
	defer keap.Close()
	srv := serveProxy(b, keap.URL, upstream.Options{KeyRate: rate.Inf})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	url := srv.URL + "/proxy/crm/rest/v1/contacts?limit=10"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
