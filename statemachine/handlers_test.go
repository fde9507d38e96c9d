package statemachine_test

import (
	"context"
	"net/http"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/shared/functions"
)

// deployment is this test's deployment: the names of its fakes. Each
// handler's variables come from lambdas/app.Environment, as in cdk/.
func deployment(e *env) app.Deployment {
	return app.Deployment{
		APISecretID: "chatwork-api", ChatworkAPIURL: e.chatURL,
		NotifyRoomID: noticeRoom, SRERoomID: sreRoom, Locale: "en",
		Bucket: bucket, UnbanDocument: unbanDoc, ReportDocument: reportDoc,
		TagKey: tagKey, TagValue: tagValue, S3PathStyle: true,
		// No policy rules (every member asks, no quotas): the policy's own
		// scenarios run through the local mode (local/system).
		PolicyTable: e.table,
		// Only the SRE list, for the ban-list page's branch (page_test.go).
		Policy:    app.Policy{SREAccounts: []string{sreAccount}},
		PublicURL: "https://api.example/", PageSecretID: "page-key",
	}
}

// buildHandlers builds every task handler the way production does
// (lambdas/app.NewHandler: environment variables and an aws.Config), by the
// function names the definitions' Resources resolve to.
func buildHandlers(e *env) (map[string]lambda.Handler, error) {
	cfg := awsConfig(e.aws.URL)
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
