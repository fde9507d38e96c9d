// Package apigw puts a Lambda handler for API Gateway HTTP API events
// (payload 2.0) behind a plain net/http server, the way API Gateway does:
// header names lower-cased, query parameters split, the body passed as
// received. The local mode serves the webhook Lambda with it.
package apigw

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"sshguard-unban/local/lambdapool"
)

// MaxBody mirrors API Gateway's payload limit (10 MB) so oversized bodies
// reach the handler's own check like in AWS.
const MaxBody = 10 << 20

// Handler adapts a Lambda function to net/http. The event and the answer
// cross as JSON, as between API Gateway and Lambda; concurrent requests run
// on the pool's instances.
func Handler(h *lambdapool.Pool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		if err != nil || len(body) > MaxBody {
			http.Error(w, "Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		headers := map[string]string{}
		for k, v := range r.Header {
			headers[strings.ToLower(k)] = strings.Join(v, ",")
		}
		query := map[string]string{}
		for k, v := range r.URL.Query() {
			query[k] = strings.Join(v, ",")
		}
		req := events.APIGatewayV2HTTPRequest{
			Version:               "2.0",
			RouteKey:              r.Method + " " + r.URL.Path,
			RawPath:               r.URL.Path,
			RawQueryString:        r.URL.RawQuery,
			Headers:               headers,
			QueryStringParameters: query,
			Body:                  string(body),
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				TimeEpoch: time.Now().UnixMilli(),
				HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
					Method: r.Method, Path: r.URL.Path, SourceIP: host(r.RemoteAddr), UserAgent: r.UserAgent(),
				},
			},
		}
		payload, _ := json.Marshal(req)
		out, err := h.Invoke(r.Context(), payload)
		var resp events.APIGatewayV2HTTPResponse
		if err == nil {
			err = json.Unmarshal(out, &resp)
		}
		if err != nil {
			// API Gateway answers a Lambda error with 500 and no details.
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, resp.Body)
	})
}

func host(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
