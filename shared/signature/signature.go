// Package signature signs and verifies Chatwork webhook requests:
// base64(HMAC-SHA256(key = base64-decoded webhook token, message = raw body)).
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// Verifier holds the decoded key so each request costs one HMAC.
type Verifier struct{ key []byte }

// ErrBadToken means the configured webhook token is not base64, as Chatwork
// always issues it; failing at start-up beats rejecting every request later.
var ErrBadToken = errors.New("signature: webhook token is not valid base64")

// New decodes the webhook token shown in Chatwork's webhook settings.
func New(webhookToken string) (*Verifier, error) {
	key, err := base64.StdEncoding.DecodeString(webhookToken)
	if err != nil || len(key) == 0 {
		return nil, ErrBadToken
	}
	return &Verifier{key: key}, nil
}

// Sign returns the signature Chatwork would send for body.
func (v *Verifier) Sign(body []byte) string {
	return base64.StdEncoding.EncodeToString(v.mac(body))
}

// Verify reports whether sig is the signature of the exact bytes of body.
// It compares the canonical base64 text, not decoded bytes, because Go's
// decoder also accepts other spellings (line breaks, non-zero padding bits);
// hmac.Equal runs in constant time so timing reveals nothing of the expected
// value.
func (v *Verifier) Verify(body []byte, sig string) bool {
	return hmac.Equal([]byte(sig), []byte(v.Sign(body)))
}

// WellFormed reports whether sig can be a signature at all: the canonical
// base64 of an HMAC-SHA256. It needs no key, so the webhook turns away an
// unsigned flood before it reads the secret or makes any other call.
func WellFormed(sig string) bool {
	if len(sig) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	return err == nil && len(b) == sha256.Size && base64.StdEncoding.EncodeToString(b) == sig
}

func (v *Verifier) mac(body []byte) []byte {
	m := hmac.New(sha256.New, v.key)
	m.Write(body)
	return m.Sum(nil)
}
