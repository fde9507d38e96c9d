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
	"sshguard-unban/statemachine"
)

// taskEnv is the environment cdk/ gives the task functions, pointed at this
// test's fakes.
func taskEnv(e *env) map[string]string {
	return map[string]string{
		"BANLIST_BUCKET":        bucket,
		"BANLIST_PREFIX":        prefix,
		"UNBAN_DOCUMENT":        unbanDoc,
		"REPORT_DOCUMENT":       reportDoc,
		"TARGET_TAG_KEY":        tagKey,
		"TARGET_TAG_VALUE":      tagValue,
		"COMMAND_OUTPUT_BUCKET": bucket,
		"COMMAND_OUTPUT_PREFIX": "command-output",
		"NOTIFY_ROOM_ID":        noticeRoom,
		"SRE_ROOM_ID":           sreRoom,
		"LOCALE":                "en",
		"REPLY_MARK_PREFIX":     "replies/",
		"CHATWORK_SECRET_ID":    "chatwork",
		"CHATWORK_API_URL":      e.chat.URL(),
		"S3_FORCE_PATH_STYLE":   "true",
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
	getenv := func(k string) string { return taskEnv(e)[k] }
	handlers := map[string]lambda.Handler{}
	for _, fn := range statemachine.Functions {
		h, err := app.NewHandler(context.Background(), fn, getenv, cfg)
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
