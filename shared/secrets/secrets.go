// Package secrets reads a Chatwork token from AWS Secrets Manager once per
// Lambda cold start and keeps it in memory. Each token has its own secret,
// a JSON object with one key: {"webhook_token": "…"} is read by the webhook
// only, {"api_token": "…"} by notify only, so the function the internet
// talks to cannot post as the bot. The page links' signing key is a secret
// of its own, a plain string (StringSource), read by notify (which signs)
// and the page (which checks).
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

// Key is a token's key in its secret.
type Key string

// The two tokens, each in its own secret.
const (
	WebhookTokenKey Key = "webhook_token"
	APITokenKey     Key = "api_token"
)

// Chatwork holds the token a secret holds (the other one is empty). LogValue keeps them out of every log line,
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
	need   Key

	mu     sync.Mutex
	cached *Chatwork
}

// New returns a Source for the secret with the given id or ARN, which must
// hold the token need.
func New(client GetSecretValueAPI, secretID string, need Key) *Source {
	return &Source{client: client, id: secretID, need: need}
}

// ErrIncomplete means the secret exists but lacks its token (or value): the operator
// has not set its value yet (the stack creates the API token's secret
// without one).
var ErrIncomplete = errors.New("secrets: secret lacks its value")

// Chatwork returns the secret's token, fetching it on first use.
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
	// The other token in this secret means both were written to one
	// secret (the old layout): refuse it rather than let the wrong
	// function read a token it must not hold.
	mine, other := c.WebhookToken, c.APIToken
	if s.need == APITokenKey {
		mine, other = other, mine
	}
	if other != "" {
		return Chatwork{}, fmt.Errorf("secrets: %s holds a token besides %s: write each token to its own secret", s.id, s.need)
	}
	if mine == "" {
		return Chatwork{}, fmt.Errorf("%w: %s has no %s", ErrIncomplete, s.id, s.need)
	}
	s.cached = &c
	return c, nil
}

// StringSource reads a secret whose whole SecretString is the value (the
// page links' signing key, a string the stack generates), once, and keeps
// it in memory. Like Source, a failed or empty read is not cached.
type StringSource struct {
	client GetSecretValueAPI
	id     string
	minLen int

	mu     sync.Mutex
	cached []byte
}

// NewString returns a StringSource for the secret id, whose value must be
// at least minLen bytes.
func NewString(client GetSecretValueAPI, secretID string, minLen int) *StringSource {
	return &StringSource{client: client, id: secretID, minLen: minLen}
}

// Value returns the secret's value, fetching it on first use.
func (s *StringSource) Value(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil {
		return s.cached, nil
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id)})
	if err != nil {
		return nil, awserr.Classify(fmt.Errorf("secrets: read %s: %w", s.id, err))
	}
	v := aws.ToString(out.SecretString)
	if len(v) < s.minLen {
		// Never the value itself, nor its length, in the error.
		return nil, fmt.Errorf("%w: %s is shorter than %d characters", ErrIncomplete, s.id, s.minLen)
	}
	s.cached = []byte(v)
	return s.cached, nil
}
