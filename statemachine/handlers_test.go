package statemachine_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/local/secretsfake"
	"sshguard-unban/shared/functions"
)

// deployment is this test's deployment: the names of its fakes. Each
// handler's variables come from lambdas/app.Environment, as in cdk/.
func deployment(e *env) app.Deployment {
	return app.Deployment{
		SecretID: "chatwork", ChatworkAPIURL: e.chat.URL(),
		NotifyRoomID: noticeRoom, SRERoomID: sreRoom, Locale: "en",
		Bucket: bucket, UnbanDocument: unbanDoc, ReportDocument: reportDoc,
		TagKey: tagKey, TagValue: tagValue, S3PathStyle: true,
	}
}

// buildHandlers builds every task handler the way production does
// (lambdas/app.NewHandler: environment variables and an aws.Config), by the
// function names the definitions' Resources resolve to.
func buildHandlers(e *env) (map[string]lambda.Handler, error) {
	// One endpoint for every AWS service, dispatching like the real
	// protocols do: JSON protocols by X-Amz-Target, the rest is S3. An
	// aws.Config has one BaseEndpoint, and parallel tests cannot use the
	// process-wide AWS_ENDPOINT_URL_<SERVICE> variables.
	s3URL, err := url.Parse(e.s3.URL)
	if err != nil {
		return nil, err
	}
	s3proxy := httputil.NewSingleHostReverseProxy(s3URL)
	secrets := secretsfake.New(map[string]string{"chatwork": `{"api_token":"` + apiToken + `","webhook_token":"d2ViaG9vaw=="}`})
	aws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		switch {
		case strings.HasPrefix(target, "AmazonSSM."):
			e.ssm.ServeHTTP(w, r)
		case strings.HasPrefix(target, "secretsmanager."):
			secrets.ServeHTTP(w, r)
		default:
			s3proxy.ServeHTTP(w, r)
		}
	}))
	e.t.Cleanup(aws.Close)

	cfg := awsConfig(aws.URL)
	handlers := map[string]lambda.Handler{}
	for _, fn := range functions.Substitutions() {
		env := app.Environment(fn, deployment(e))
		h, err := app.NewHandler(context.Background(), fn, func(k string) string { return env[k] }, cfg)
		if err != nil {
			return nil, err
		}
		handlers[fn] = h
	}
	return handlers, nil
}

func awsConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   &http.Client{Transport: &http.Transport{Proxy: nil}},
		// No SDK retries: an injected SSM or S3 failure must reach the
		// handler, whose error type decides whether the state machine's
		// Retry sees a TransientError (what these tests check). In AWS the
		// SDK retries first, then the state machine.
		RetryMaxAttempts: 1,
	}
}
