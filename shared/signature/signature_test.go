package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// token is a Chatwork-style webhook token (base64 of 32 random bytes).
const token = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5"

// Known answer computed independently of this package.
func TestSignKnownAnswer(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(token)
	body := []byte(`{"webhook_event_type":"mention_to_me"}`)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))

	v, err := New(token)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Sign(body); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	v, err := New(token)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(base64.StdEncoding.EncodeToString([]byte("another key")))
	body := []byte(`{"webhook_event":{"body":"[To:1]bot\n203.0.113.5"}}`)
	good := v.Sign(body)
	tests := []struct {
		name string
		body []byte
		sig  string
		want bool
	}{
		{"valid", body, good, true},
		{"empty signature", body, "", false},
		{"not base64", body, "!!!", false},
		{"other key", body, other.Sign(body), false},
		{"body changed by one byte", append([]byte{}, append(body[:len(body)-1:len(body)-1], '}', '\n')...), good, false},
		{"truncated signature", body, good[:len(good)-4], false},
		{"line break inside", body, good[:10] + "\n" + good[10:], false},
		{"signature of empty body", body, v.Sign(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Verify(tt.body, tt.sig); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadToken(t *testing.T) {
	for _, tok := range []string{"", "not base64!", "===="} {
		if _, err := New(tok); err == nil {
			t.Errorf("New(%q) accepted a bad token", tok)
		}
	}
}

// FuzzVerify: no input panics, a signature only verifies the body it was
// made for, and a flipped byte never verifies.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"webhook_setting_id":"12345","webhook_event_type":"mention_to_me"}`), "")
	f.Add([]byte(""), "AAAA")
	f.Add([]byte("[To:1234567]unbanbot さん\n203.0.113.5"), "zzzz====")
	v, _ := New(token)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		good := v.Sign(body)
		if !v.Verify(body, good) {
			t.Fatal("own signature rejected")
		}
		if sig != good && v.Verify(body, sig) {
			// Only the canonical spelling verifies: no line breaks, no
			// alternative padding bits.
			t.Fatalf("foreign signature %q accepted", sig)
		}
		if len(body) > 0 {
			flipped := append([]byte{}, body...)
			flipped[0] ^= 1
			if v.Verify(flipped, good) {
				t.Fatal("signature verified a changed body")
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	v, _ := New(token)
	body := make([]byte, 1024)
	sig := v.Sign(body)
	for b.Loop() {
		v.Verify(body, sig)
	}
}

func TestWellFormed(t *testing.T) {
	v, err := New(token)
	if err != nil {
		t.Fatal(err)
	}
	sig := v.Sign([]byte("body"))
	for _, c := range []struct {
		sig  string
		want bool
	}{
		{sig, true},
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), true},
		{"", false},
		{sig[:43], false},
		{sig + "=", false},
		{base64.StdEncoding.EncodeToString(make([]byte, 31)), false},
		{base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff}), false},
		{sig[:42] + "B=", false}, // non-zero padding bits: a second spelling
	} {
		if got := WellFormed(c.sig); got != c.want {
			t.Errorf("WellFormed(%q) = %v, want %v", c.sig, got, c.want)
		}
	}
}
