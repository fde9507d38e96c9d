package apigw

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"sshguard-unban/local/lambdapool"
)

func TestAdapter(t *testing.T) {
	var got events.APIGatewayV2HTTPRequest
	srv := httptest.NewServer(Handler(lambdapool.Single(lambda.NewHandler(func(_ context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		got = req
		return events.APIGatewayV2HTTPResponse{StatusCode: 401, Body: "Unauthorized"}, nil
	}))))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chatwork?chatwork_webhook_signature=abc", strings.NewReader("exact\nbytes "))
	req.Header.Set("X-ChatWorkWebhookSignature", "sig")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got.Body != "exact\nbytes " || got.Headers["x-chatworkwebhooksignature"] != "sig" ||
		got.QueryStringParameters["chatwork_webhook_signature"] != "abc" || got.RequestContext.HTTP.SourceIP != "127.0.0.1" {
		t.Fatalf("request %+v", got)
	}
}
