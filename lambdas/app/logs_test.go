package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/workflow"
)

// A parse run, built as the Lambda builds it (NewHandler, the default
// logger at debug level) and invoked with the JSON Step Functions sends,
// logs what it understood and never the message body it read: not the
// words, nor the refused parts.
func TestParseRunLogsNoBody(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	h, err := NewHandler(context.Background(), functions.Parse, getenv(Environment(functions.Parse, testDeployment)), aws.Config{Region: "ap-northeast-1"})
	if err != nil {
		t.Fatal(err)
	}
	body := "[To:1234567]unbanbot さん\nXYZZY 社外秘のプロジェクト名です。203.0.113.5 と 198.51.100.0/24 をお願いします"
	payload, _ := json.Marshal(workflow.Request{RoomID: "567890123", MessageID: "1790000000000000000", AccountID: "123456", Body: body, SentAt: 1732399999})
	out, err := h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "203.0.113.5") {
		t.Fatalf("parse did not find the address: %s", out)
	}
	logs := buf.String()
	if !strings.Contains(logs, "parsed message") {
		t.Fatalf("no parse log line:\n%s", logs)
	}
	for _, part := range []string{"XYZZY", "社外秘", "unbanbot", "198.51.100.0/24", "お願いします"} {
		if strings.Contains(logs, part) {
			t.Errorf("the log carries %q from the body:\n%s", part, logs)
		}
	}
}
