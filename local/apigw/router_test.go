package apigw

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRouter(t *testing.T) {
	r := NewRouter(Throttle{Rate: 1, Burst: 3})
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	r.Handle("POST /chatwork/k3y", ok)
	r.Handle("GET /ip", ok)
	srv := httptest.NewServer(r)
	defer srv.Close()
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Paths that are not a route never reach one, however many there are.
	for _, p := range []string{"/chatwork", "/chatwork/", "/chatwork/k3", "/chatwork/k3y/", "/CHATWORK/k3y"} {
		for range 10 {
			if code, body := do(http.MethodPost, p); code != 404 || body != `{"message":"Not Found"}` {
				t.Fatalf("POST %s: %d %s", p, code, body)
			}
		}
	}
	if code, _ := do(http.MethodGet, "/chatwork/k3y"); code != 404 {
		t.Fatalf("GET on a POST route: %d", code)
	}
	// A route's own bucket: the burst passes, the next is throttled, and
	// emptying one route's bucket leaves the other's full.
	for i := range 3 {
		if code, _ := do(http.MethodGet, "/ip"); code != 200 {
			t.Fatalf("GET /ip #%d: %d", i, code)
		}
	}
	if code, body := do(http.MethodGet, "/ip"); code != 429 || body != `{"message":"Too Many Requests"}` {
		t.Fatalf("GET /ip past its burst: %d %s", code, body)
	}
	for i := range 3 {
		if code, body := do(http.MethodPost, "/chatwork/k3y"); code != 200 || body != "ok" {
			t.Fatalf("webhook #%d after /ip was throttled: %d %s", i, code, body)
		}
	}
}
