// Package pagelink signs and checks the links to the ban-list page. The bot
// gives an SRE, in the SRE room, a link issued to that SRE's account that
// works for Lifetime. Whoever holds it can open it (the page cannot know
// who is looking); the account it names is shown on the page and must still
// be an SRE's, and it cannot be changed without breaking the signature:
//
//	https://API/bans?a=ACCOUNT&e=EXPIRES&s=SIGNATURE
//
// SIGNATURE is base64url (no padding) of HMAC-SHA256(key, message), where
// message is Version, Purpose, the account and the expiry (Unix seconds)
// joined by NUL bytes: no field can hold a NUL (the account is digits, the
// expiry a decimal), so no two different links sign the same message, and a
// signature made for another purpose or format version never verifies here.
//
// Verify is strict: each parameter exactly once, the account digits only,
// the expiry a canonical decimal that has not passed and is not further
// ahead than Lifetime (plus MaxSkew), the signature exactly 32 bytes in
// canonical base64url, compared in constant time (hmac.Equal). It says only
// that a link is bad, never why: the page answers 403 either way.
package pagelink

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// Version and Purpose are part of the signed message.
	Version = "sshguard-unban page link v1"
	Purpose = "bans"
	// Lifetime is how long a link works.
	Lifetime = 15 * time.Minute
	// MaxSkew tolerates clocks of the signer (notify) and the checker (the
	// page) that differ a little: an expiry up to Lifetime+MaxSkew ahead is
	// accepted.
	MaxSkew = time.Minute
	// MinKeyLen is the shortest key accepted (the stack generates 64
	// characters).
	MinKeyLen = 32
	// maxAccountLen bounds an account id (Chatwork's are far shorter).
	maxAccountLen = 20
)

// Query parameter names.
const (
	ParamAccount = "a"
	ParamExpires = "e"
	ParamSig     = "s"
)

var (
	// ErrBadLink is every refusal of Verify: malformed, forged, expired,
	// too far ahead, or for another key.
	ErrBadLink = errors.New("pagelink: not a valid link")
	// ErrBadKey is a key shorter than MinKeyLen.
	ErrBadKey = errors.New("pagelink: key too short")
	// ErrBadAccount is an account id that is not 1 to 20 digits.
	ErrBadAccount = errors.New("pagelink: account id must be digits")
)

// Sign returns the query parameters of a link for account, valid until
// expires (which Verify accepts only within Lifetime+MaxSkew of its now).
func Sign(key []byte, account string, expires time.Time) (url.Values, error) {
	if len(key) < MinKeyLen {
		return nil, ErrBadKey
	}
	if !validAccount(account) {
		return nil, ErrBadAccount
	}
	e := strconv.FormatInt(expires.Unix(), 10)
	return url.Values{
		ParamAccount: {account},
		ParamExpires: {e},
		ParamSig:     {base64.RawURLEncoding.EncodeToString(mac(key, account, e))},
	}, nil
}

// Verify checks a link's parameters at now and returns the account it is
// for and when it expires. Every failure is ErrBadLink.
func Verify(key []byte, q url.Values, now time.Time) (account string, expires time.Time, err error) {
	if len(key) < MinKeyLen {
		return "", time.Time{}, ErrBadLink
	}
	account, okA := one(q, ParamAccount)
	e, okE := one(q, ParamExpires)
	s, okS := one(q, ParamSig)
	if !okA || !okE || !okS || !validAccount(account) || !canonicalUnix(e) {
		return "", time.Time{}, ErrBadLink
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(sig) != sha256.Size || base64.RawURLEncoding.EncodeToString(sig) != s {
		return "", time.Time{}, ErrBadLink
	}
	// The signature first, in constant time, so that how far a forged
	// link gets does not depend on its fields.
	if !hmac.Equal(sig, mac(key, account, e)) {
		return "", time.Time{}, ErrBadLink
	}
	sec, _ := strconv.ParseInt(e, 10, 64)
	expires = time.Unix(sec, 0)
	if !now.Before(expires) || expires.Sub(now) > Lifetime+MaxSkew {
		return "", time.Time{}, ErrBadLink
	}
	return account, expires, nil
}

func mac(key []byte, account, expires string) []byte {
	m := hmac.New(sha256.New, key)
	for i, part := range []string{Version, Purpose, account, expires} {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(part))
	}
	return m.Sum(nil)
}

// one is the parameter's only value.
func one(q url.Values, k string) (string, bool) {
	v := q[k]
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

func validAccount(s string) bool {
	if s == "" || len(s) > maxAccountLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalUnix accepts a positive decimal without sign or leading zeros,
// short enough to be a time (no overflow).
func canonicalUnix(s string) bool {
	if s == "" || len(s) > 12 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Path is the page's route on the API.
const Path = "/bans"

// Signer makes whole links: BaseURL (the API's, "https://…/") + Path and
// the signed parameters, valid for Lifetime from Now.
type Signer struct {
	Key     func(ctx context.Context) ([]byte, error)
	BaseURL string
	Now     func() time.Time // nil: time.Now
}

// Link is a link for account, and when it stops working.
func (s Signer) Link(ctx context.Context, account string) (string, time.Time, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return s.LinkUntil(ctx, account, now().Add(Lifetime))
}

// LinkUntil is a link for account that works until expires (tests and the
// local terminal mint expired ones with it).
func (s Signer) LinkUntil(ctx context.Context, account string, expires time.Time) (string, time.Time, error) {
	key, err := s.Key(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	q, err := Sign(key, account, expires)
	if err != nil {
		return "", time.Time{}, err
	}
	// Seconds only: the link holds whole seconds.
	expires = time.Unix(expires.Unix(), 0)
	return strings.TrimSuffix(s.BaseURL, "/") + Path + "?" + q.Encode(), expires, nil
}
