package pagelink

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"
)

var (
	key   = []byte("0123456789abcdef0123456789abcdef-test-key")
	other = []byte("another key, just as long as the first one!")
	now   = time.Unix(1_800_000_000, 0)
)

func signed(t *testing.T, account string, expires time.Time) url.Values {
	t.Helper()
	q, err := Sign(key, account, expires)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// with returns q with k set to v (or removed for v == nil).
func with(q url.Values, k string, v ...string) url.Values {
	out := url.Values{}
	for kk, vv := range q {
		out[kk] = append([]string(nil), vv...)
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// sigOver signs arbitrary message parts, to show that a signature over
// another purpose or version is refused.
func sigOver(parts ...string) string {
	m := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestVerify(t *testing.T) {
	good := signed(t, "9000001", now.Add(Lifetime))
	e := good.Get(ParamExpires)
	tests := []struct {
		name string
		q    url.Values
		at   time.Time
		key  []byte
		ok   bool
	}{
		{name: "fresh", q: good, at: now, key: key, ok: true},
		{name: "a second before it ends", q: good, at: now.Add(Lifetime - time.Second), key: key, ok: true},
		{name: "with other parameters", q: with(good, "q", "web-1"), at: now, key: key, ok: true},
		{name: "at its end", q: good, at: now.Add(Lifetime), key: key},
		{name: "expired", q: good, at: now.Add(time.Hour), key: key},
		{name: "another key", q: good, at: now, key: other},
		{name: "a short key", q: good, at: now, key: key[:MinKeyLen-1]},
		{name: "another account", q: with(good, ParamAccount, "9000002"), at: now, key: key},
		{name: "a later expiry", q: with(good, ParamExpires, strconv.FormatInt(now.Add(Lifetime).Unix()+60, 10)), at: now, key: key},
		{name: "signed far ahead", q: signed(t, "9000001", now.Add(2*Lifetime)), at: now, key: key},
		{name: "within the skew", q: signed(t, "9000001", now.Add(Lifetime+MaxSkew)), at: now, key: key, ok: true},
		{name: "no signature", q: with(good, ParamSig), at: now, key: key},
		{name: "no account", q: with(good, ParamAccount), at: now, key: key},
		{name: "no expiry", q: with(good, ParamExpires), at: now, key: key},
		{name: "two signatures", q: with(good, ParamSig, good.Get(ParamSig), good.Get(ParamSig)), at: now, key: key},
		{name: "two accounts", q: with(good, ParamAccount, "9000001", "9000001"), at: now, key: key},
		{name: "padded signature", q: with(good, ParamSig, good.Get(ParamSig)+"="), at: now, key: key},
		{name: "standard base64", q: with(good, ParamSig, base64.StdEncoding.EncodeToString([]byte(good.Get(ParamSig)))), at: now, key: key},
		{name: "truncated signature", q: with(good, ParamSig, good.Get(ParamSig)[:40]), at: now, key: key},
		{name: "flipped bit", q: with(good, ParamSig, flip(good.Get(ParamSig))), at: now, key: key},
		{name: "leading zero expiry", q: with(good, ParamExpires, "0"+e), at: now, key: key},
		{name: "plus sign expiry", q: with(good, ParamExpires, "+"+e), at: now, key: key},
		{name: "account with a letter", q: with(good, ParamAccount, "9000001a"), at: now, key: key},
		{name: "empty account", q: with(good, ParamAccount, ""), at: now, key: key},
		{name: "another purpose", q: with(good, ParamSig, sigOver(Version, "ip", "9000001", e)), at: now, key: key},
		{name: "another version", q: with(good, ParamSig, sigOver("sshguard-unban page link v2", Purpose, "9000001", e)), at: now, key: key},
		{name: "fields run together", q: with(good, ParamSig, sigOver(Version+Purpose, "9000001", e)), at: now, key: key},
		{name: "the right message, correctly signed", q: with(good, ParamSig, sigOver(Version, Purpose, "9000001", e)), at: now, key: key, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct, exp, err := Verify(tt.key, tt.q, tt.at)
			if tt.ok {
				if err != nil || acct != tt.q.Get(ParamAccount) || exp.Unix() != mustInt(tt.q.Get(ParamExpires)) {
					t.Fatalf("Verify = %q %v %v, want the link's account", acct, exp, err)
				}
				return
			}
			if !errors.Is(err, ErrBadLink) || acct != "" || !exp.IsZero() {
				t.Fatalf("Verify = %q %v %v, want ErrBadLink", acct, exp, err)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	if _, err := Sign(key[:10], "1", now); !errors.Is(err, ErrBadKey) {
		t.Errorf("short key: %v", err)
	}
	for _, a := range []string{"", "12a", "1 2", "123456789012345678901", "-1"} {
		if _, err := Sign(key, a, now); !errors.Is(err, ErrBadAccount) {
			t.Errorf("account %q: %v", a, err)
		}
	}
}

func flip(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	b[0] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// FuzzVerify: whatever query string arrives, Verify never panics, and it
// accepts exactly the links Sign makes: the account and expiry it returns
// sign back to the signature it was given.
func FuzzVerify(f *testing.F) {
	good, _ := Sign(key, "9000001", now.Add(Lifetime))
	f.Add(good.Encode())
	f.Add(good.Encode() + "&q=%3Cscript%3E&lang=en")
	f.Add("a=9000001&e=1800000900&s=")
	f.Add("a=&e=&s=&a=1")
	f.Add("e=99999999999999999999&a=1&s=AAAA")
	f.Add("%zz=1&a=1;e=2")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		acct, exp, err := Verify(key, q, now)
		if err != nil {
			if !errors.Is(err, ErrBadLink) {
				t.Fatalf("Verify(%q): %v", raw, err)
			}
			return
		}
		again, err := Sign(key, acct, exp)
		if err != nil || again.Get(ParamSig) != q.Get(ParamSig) || again.Get(ParamExpires) != q.Get(ParamExpires) {
			t.Fatalf("Verify(%q) accepted %q %v, which does not sign to it", raw, acct, exp)
		}
		if !now.Before(exp) || exp.Sub(now) > Lifetime+MaxSkew {
			t.Fatalf("Verify(%q) accepted an expiry of %v at %v", raw, exp, now)
		}
	})
}

func TestSignerLink(t *testing.T) {
	s := Signer{Key: func(context.Context) ([]byte, error) { return key, nil }, BaseURL: "https://api.example/", Now: func() time.Time { return now }}
	link, exp, err := s.Link(context.Background(), "9000001")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "https" || u.Host != "api.example" || u.Path != Path || !exp.Equal(now.Add(Lifetime)) {
		t.Fatalf("link %q expires %v: %v", link, exp, err)
	}
	if acct, _, err := Verify(key, u.Query(), now); err != nil || acct != "9000001" {
		t.Fatalf("the link does not verify: %q %v", acct, err)
	}
}
