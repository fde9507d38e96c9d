package app

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
)

// fullEnv is what cdk/ sets, across all functions.
var fullEnv = map[string]string{
	"STATE_MACHINE_ARN":  "arn:aws:states:ap-northeast-1:123456789012:stateMachine:unban",
	"CHATWORK_SECRET_ID": "chatwork", "BOT_ACCOUNT_ID": "1234567", "ALLOWED_ROOMS": "1, 2",
	"BANLIST_BUCKET": "bucket", "BANLIST_PREFIX": "banlists", "FRESHNESS_SECONDS": "180",
	"UNBAN_DOCUMENT": "unban-doc", "REPORT_DOCUMENT": "report-doc", "TARGET_TAG_KEY": "sshguard-unban", "TARGET_TAG_VALUE": "enabled",
	"COMMAND_OUTPUT_BUCKET": "bucket", "COMMAND_OUTPUT_PREFIX": "command-output", "COMMAND_TIMEOUT_SECONDS": "120",
	"NOTIFY_ROOM_ID": "3", "SRE_ROOM_ID": "4", "LOCALE": "ja", "REPLY_MARK_PREFIX": "replies/",
}

func getenv(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestEveryHandlerBuilds(t *testing.T) {
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("ap-northeast-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names {
		if _, err := NewHandler(context.Background(), name, getenv(fullEnv), cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMisconfigurationNamesTheVariables(t *testing.T) {
	cfg, _ := config.LoadDefaultConfig(context.Background(), config.WithRegion("ap-northeast-1"))
	tests := []struct {
		name string
		drop string
		set  map[string]string
		want string
	}{
		{name: "webhook", drop: "STATE_MACHINE_ARN", want: "STATE_MACHINE_ARN"},
		{name: "lookup", drop: "BANLIST_BUCKET", want: "BANLIST_BUCKET"},
		{name: "unban", drop: "UNBAN_DOCUMENT", want: "UNBAN_DOCUMENT"},
		{name: "unban", set: map[string]string{"COMMAND_TIMEOUT_SECONDS": "soon"}, want: "COMMAND_TIMEOUT_SECONDS"},
		{name: "refresh-list", drop: "TARGET_TAG_KEY", want: "TARGET_TAG_KEY"},
		{name: "notify", drop: "CHATWORK_SECRET_ID", want: "CHATWORK_SECRET_ID"},
		{name: "nonesuch", want: "no handler named"},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range fullEnv {
			env[k] = v
		}
		delete(env, tt.drop)
		for k, v := range tt.set {
			env[k] = v
		}
		_, err := NewHandler(context.Background(), tt.name, getenv(env), cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s without %s: err = %v", tt.name, tt.drop, err)
		}
	}
}

// BenchmarkColdStart is the init work a new Lambda instance does before its
// first event: load the AWS configuration and build the handler.
func BenchmarkColdStart(b *testing.B) {
	b.Setenv("AWS_REGION", "ap-northeast-1")
	for b.Loop() {
		cfg, err := config.LoadDefaultConfig(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := NewHandler(context.Background(), "refresh-list", getenv(fullEnv), cfg); err != nil {
			b.Fatal(err)
		}
	}
}
