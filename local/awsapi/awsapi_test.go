package awsapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"sshguard-unban/local/awsapi"
	"sshguard-unban/shared/awserr"
)

// seen records which fake a request reached.
type seen struct {
	name string
	got  *string
}

func (s seen) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	*s.got = s.name
	w.WriteHeader(http.StatusTeapot)
}

// The real SDK clients, each pointed at the one endpoint, reach their own
// service's fake; a service with no fake gets UnknownOperationException.
func TestRoutesByProtocol(t *testing.T) {
	var got string
	srv := httptest.NewServer(awsapi.Router{
		SSM:           seen{"ssm", &got},
		StepFunctions: seen{"sfn", &got},
		S3:            seen{"s3", &got},
	})
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}
	ctx := context.Background()
	calls := []struct {
		want string
		call func() error
	}{
		{"ssm", func() error {
			_, err := ssm.NewFromConfig(cfg).ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{})
			return err
		}},
		{"sfn", func() error {
			_, err := sfn.NewFromConfig(cfg).ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
			return err
		}},
		{"s3", func() error {
			_, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}},
	}
	for _, c := range calls {
		got = ""
		_ = c.call()
		if got != c.want {
			t.Errorf("request for %s reached %q", c.want, got)
		}
	}
	got = ""
	_, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("x")})
	if got != "" || awserr.Code(err) != "UnknownOperationException" {
		t.Errorf("unserved service: reached %q, err %v", got, err)
	}
}
