package apigw

import (
	"net/http"
	"sync"

	"golang.org/x/time/rate"
)

// Throttle is a route's token bucket, as API Gateway applies it: Rate
// requests a second refill it, Burst is its size.
type Throttle struct {
	Rate  float64
	Burst int
}

// Router routes like an HTTP API stage: a request matches a route key
// ("POST /path") exactly or gets API Gateway's 404 without reaching any
// function, and every route has a bucket of its own (the stage's default
// route throttling applies to each route separately). The flood test
// (router_test.go) and the local mode rely on both.
type Router struct {
	throttle Throttle
	mu       sync.Mutex
	routes   map[string]*route
}

type route struct {
	h   http.Handler
	lim *rate.Limiter
}

// NewRouter returns a router whose routes are each throttled by t.
func NewRouter(t Throttle) *Router {
	return &Router{throttle: t, routes: map[string]*route{}}
}

// Handle serves routeKey ("METHOD /path") with h.
func (r *Router) Handle(routeKey string, h http.Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[routeKey] = &route{h: h, lim: rate.NewLimiter(rate.Limit(r.throttle.Rate), r.throttle.Burst)}
}

func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	rt := r.routes[req.Method+" "+req.URL.Path]
	r.mu.Unlock()
	switch {
	case rt == nil:
		gatewayError(w, http.StatusNotFound, "Not Found")
	case !rt.lim.Allow():
		gatewayError(w, http.StatusTooManyRequests, "Too Many Requests")
	default:
		rt.h.ServeHTTP(w, req)
	}
}

// gatewayError answers as API Gateway itself does, before any integration.
func gatewayError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(`{"message":"` + msg + `"}`))
}
