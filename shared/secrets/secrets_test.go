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
	c := &countingClient{value: `{"webhook_token":"d2g="}`, failN: 1}
	s := New(c, "chatwork-webhook", WebhookTokenKey)
	if _, err := s.Chatwork(context.Background()); err == nil {
		t.Fatal("first fetch should fail")
	}
	for range 3 {
		got, err := s.Chatwork(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got.WebhookToken != "d2g=" || got.APIToken != "" {
			t.Fatalf("got %+v", got)
		}
	}
	if c.calls != 2 || c.lastID != "chatwork-webhook" {
		t.Fatalf("calls=%d id=%q, want 2 calls (one failed, one cached)", c.calls, c.lastID)
	}
	api, err := New(&countingClient{value: `{"api_token":"api-123"}`}, "chatwork-api", APITokenKey).Chatwork(context.Background())
	if err != nil || api.APIToken != "api-123" {
		t.Fatalf("api token: %+v %v", api, err)
	}
}

// Each secret holds its own token only. Both tokens in one secret (the
// layout before the split, pasted into the new secrets by mistake) are
// refused, so the webhook never holds the API token.
func TestIncompleteMalformedOrBoth(t *testing.T) {
	for _, c := range []struct {
		need       Key
		value      string
		incomplete bool
	}{
		{WebhookTokenKey, `{}`, true},
		{WebhookTokenKey, `{"webhook_token":""}`, true},
		{APITokenKey, `{"api_token":""}`, true},
		{APITokenKey, `{"webhook_token":"d2g="}`, false},
		{WebhookTokenKey, `{"api_token":"x"}`, false},
		{WebhookTokenKey, `{"api_token":"x","webhook_token":"d2g="}`, false},
		{APITokenKey, `{"api_token":"x","webhook_token":"d2g="}`, false},
		{APITokenKey, `not json`, false},
	} {
		_, err := New(&countingClient{value: c.value}, "id", c.need).Chatwork(context.Background())
		if err == nil {
			t.Errorf("%s from %q accepted", c.need, c.value)
		} else if errors.Is(err, ErrIncomplete) != c.incomplete {
			t.Errorf("%s from %q: %v, want incomplete=%v", c.need, c.value, err, c.incomplete)
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
		_, err := New(failingClient{c.err}, "id", APITokenKey).Chatwork(context.Background())
		if err == nil || taskerr.IsTransient(err) != c.transient {
			t.Errorf("%s: err=%v transient=%v, want transient=%v", c.name, err, taskerr.IsTransient(err), c.transient)
		}
	}
}

// The page key is a whole SecretString: read once, kept, never cached
// while it is missing or too short.
func TestStringSource(t *testing.T) {
	c := &countingClient{value: "tiny-key", failN: 1}
	s := NewString(c, "page-key", 32)
	if _, err := s.Value(context.Background()); err == nil {
		t.Fatal("a failed read was accepted")
	}
	if _, err := s.Value(context.Background()); !errors.Is(err, ErrIncomplete) || strings.Contains(err.Error(), "tiny-key") {
		t.Fatalf("a short key: %v", err)
	}
	c.value = strings.Repeat("k", 40)
	for range 3 {
		v, err := s.Value(context.Background())
		if err != nil || string(v) != c.value {
			t.Fatalf("Value = %q, %v", v, err)
		}
	}
	if c.calls != 3 || c.lastID != "page-key" {
		t.Fatalf("calls=%d id=%q, want 3 (failed, short, then cached)", c.calls, c.lastID)
	}
}
