package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"sshguard-unban/shared/signature"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in, intent, reason string
		addrs              []string
	}{
		{"[To:1234567]unbanbot さん\n203.0.113.5 です", "unban", "", []string{"203.0.113.5"}},
		{"[To:1234567]unbanbot さん\n192.0.2.0/24", "unban", "cidr", []string{}},
		{"[To:1234567]unbanbot さん ありがとう", "thanks", "", []string{}},
		{"[To:1234567]unbanbot さん", "help", "", []string{}},
	}
	for _, tt := range tests {
		out, errOut, code := runCLI(t, tt.in, "parse")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got struct {
			Intent    string   `json:"intent"`
			Addresses []string `json:"addresses"`
			Reason    string   `json:"reason"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(out, "\n") != 1 {
			t.Fatalf("not one JSON object: %q", out)
		}
		if got.Intent != tt.intent || got.Reason != tt.reason || strings.Join(got.Addresses, ",") != strings.Join(tt.addrs, ",") || got.Addresses == nil {
			t.Errorf("%q → %s", tt.in, out)
		}
	}
}

func TestSignCommand(t *testing.T) {
	const token = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5"
	body := `{"webhook_event_type":"mention_to_me"}`
	out, _, code := runCLI(t, body, "sign", "--token", token)
	v, _ := signature.New(token)
	if code != 0 || strings.TrimSpace(out) != v.Sign([]byte(body)) {
		t.Fatalf("exit %d, out %q", code, out)
	}
	t.Setenv("CHATWORK_WEBHOOK_TOKEN", token)
	if out2, _, _ := runCLI(t, body, "sign"); out2 != out {
		t.Fatalf("env token gave %q", out2)
	}
	t.Setenv("CHATWORK_WEBHOOK_TOKEN", "")
	if _, _, code := runCLI(t, body, "sign", "--token", "not base64!"); code != 2 {
		t.Fatalf("bad token: exit %d", code)
	}
}

func TestUsage(t *testing.T) {
	if _, errOut, code := runCLI(t, "", "nope"); code != 2 || !strings.Contains(errOut, "parse") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, _, code := runCLI(t, ""); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
}
