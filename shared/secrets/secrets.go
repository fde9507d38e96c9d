// Package secrets reads the Chatwork tokens from AWS Secrets Manager once per
// Lambda cold start and keeps them in memory. The secret is a JSON object:
// {"api_token": "…", "webhook_token": "…"}.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"sshguard-unban/shared/awserr"
)

// Chatwork holds the two tokens. LogValue keeps them out of every log line,
// even when a whole struct is logged by mistake.
type Chatwork struct {
	APIToken     string `json:"api_token"`
	WebhookToken string `json:"webhook_token"`
}

// LogValue implements slog.LogValuer.
func (Chatwork) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps fmt's %v from printing the tokens.
func (Chatwork) String() string { return "[redacted]" }

// GetSecretValueAPI is the one Secrets Manager call this package makes.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source fetches the secret on first use and caches it. A failed fetch is
// not cached, so the next invocation tries again.
type Source struct {
	client GetSecretValueAPI
	id     string

	mu     sync.Mutex
	cached *Chatwork
}

// New returns a Source for the secret with the given id or ARN.
func New(client GetSecretValueAPI, secretID string) *Source {
	return &Source{client: client, id: secretID}
}

// ErrIncomplete means the secret exists but lacks a token: the operator has
// not set its value yet (the stack creates it without one).
var ErrIncomplete = errors.New("secrets: chatwork secret lacks api_token or webhook_token")

// Chatwork returns the tokens, fetching them on first use.
func (s *Source) Chatwork(ctx context.Context) (Chatwork, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil {
		return *s.cached, nil
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id)})
	if err != nil {
		// Throttling and network trouble are worth a retry; a missing
		// secret or a denied read is not (awserr decides, as everywhere).
		return Chatwork{}, awserr.Classify(fmt.Errorf("secrets: read %s: %w", s.id, err))
	}
	var c Chatwork
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &c); err != nil {
		return Chatwork{}, fmt.Errorf("secrets: %s is not the expected JSON object", s.id)
	}
	if c.APIToken == "" || c.WebhookToken == "" {
		return Chatwork{}, ErrIncomplete
	}
	s.cached = &c
	return c, nil
}
