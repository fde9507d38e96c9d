package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"sshguard-unban/shared/taskerr"
)

type countingClient struct {
	calls  int
	value  string
	failN  int
	lastID string
}

func (c *countingClient) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.calls++
	c.lastID = aws.ToString(in.SecretId)
	if c.failN > 0 {
		c.failN--
		return nil, errors.New("throttled")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(c.value)}, nil
}

func TestFetchedOnceAndCached(t *testing.T) {
	c := &countingClient{value: `{"api_token":"api-123","webhook_token":"d2g="}`, failN: 1}
	s := New(c, "chatwork")
	if _, err := s.Chatwork(context.Background()); err == nil {
		t.Fatal("first fetch should fail")
	}
	for range 3 {
		got, err := s.Chatwork(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got.APIToken != "api-123" || got.WebhookToken != "d2g=" {
			t.Fatalf("got %+v", got)
		}
	}
	if c.calls != 2 || c.lastID != "chatwork" {
		t.Fatalf("calls=%d id=%q, want 2 calls (one failed, one cached)", c.calls, c.lastID)
	}
}

func TestIncompleteOrMalformed(t *testing.T) {
	for _, v := range []string{`{}`, `{"api_token":"x"}`, `not json`} {
		s := New(&countingClient{value: v}, "id")
		if _, err := s.Chatwork(context.Background()); err == nil {
			t.Errorf("value %q accepted", v)
		}
	}
}

func TestNeverPrinted(t *testing.T) {
	c := Chatwork{APIToken: "api-secret-value", WebhookToken: "hook-secret-value"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "secret", c)
	out := buf.String() + fmt.Sprintf("%v %+v %s", c, c, c)
	if strings.Contains(out, "secret-value") {
		t.Fatalf("token leaked: %s", out)
	}
}

type failingClient struct{ err error }

func (c failingClient) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return nil, c.err
}

// Secrets Manager's own errors are classified like every other AWS error:
// throttling is retried by the state machine, a denied or missing secret
// fails at once (retrying a permission error only delays the alert).
func TestErrorClassification(t *testing.T) {
	apiErr := func(status int, code string, fault smithy.ErrorFault) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Fault: fault}}}
	}
	cases := []struct {
		name      string
		err       error
		transient bool
	}{
		{"throttled", apiErr(400, "ThrottlingException", smithy.FaultClient), true},
		{"internal", apiErr(500, "InternalServiceError", smithy.FaultServer), true},
		{"denied", apiErr(400, "AccessDeniedException", smithy.FaultClient), false},
		{"missing", apiErr(400, "ResourceNotFoundException", smithy.FaultClient), false},
		{"kms", apiErr(400, "DecryptionFailure", smithy.FaultClient), false},
	}
	for _, c := range cases {
		_, err := New(failingClient{c.err}, "id").Chatwork(context.Background())
		if err == nil || taskerr.IsTransient(err) != c.transient {
			t.Errorf("%s: err=%v transient=%v, want transient=%v", c.name, err, taskerr.IsTransient(err), c.transient)
		}
	}
}
