package ssmcmd

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/shared/workflow"
)

func TestOutcome(t *testing.T) {
	cases := []struct {
		status, details string
		want            string
	}{
		{"Pending", "Pending", workflow.HostPending},
		{"InProgress", "In Progress", workflow.HostPending},
		{"Delayed", "Delayed", workflow.HostPending},
		{"Success", "Success", workflow.HostSucceeded},
		{"Failed", "Failed", workflow.HostFailed},
		{"Cancelled", "Cancelled", workflow.HostFailed},
		{"Cancelling", "Cancelling", workflow.HostFailed},
		{"TimedOut", "Execution Timed Out", workflow.HostTimedOut},
		{"TimedOut", "Delivery Timed Out", workflow.HostOffline},
		{"Failed", "Undeliverable", workflow.HostOffline}, // what SSM really returns
		{"Failed", "Terminated", workflow.HostOffline},
		{"Undeliverable", "", workflow.HostOffline},
		{"SomethingNew", "", workflow.HostPending},
	}
	for _, c := range cases {
		got, _ := Outcome(types.CommandInvocation{Status: types.CommandInvocationStatus(c.status), StatusDetails: aws.String(c.details)})
		if got != c.want {
			t.Errorf("%s/%s → %s, want %s", c.status, c.details, got, c.want)
		}
	}
}

func TestInlineStdout(t *testing.T) {
	cases := []struct {
		in, out  string
		complete bool
	}{
		{`{"a":1}`, `{"a":1}`, true},
		{"{\"a\":1}\n----------ERROR-------\nwarning", `{"a":1}`, true},
		{"{\"a\":\n---Output truncated---\n----------ERROR-------\nx", "{\"a\":\n---Output truncated---", false},
		{"{\"a\":1}\n----------ERROR-------\nxx\n---Error truncated----", `{"a":1}`, true},
		{"", "", true},
	}
	for _, c := range cases {
		out, ok := InlineStdout(c.in)
		if out != c.out || ok != c.complete {
			t.Errorf("InlineStdout(%q) = %q, %v", c.in, out, ok)
		}
	}
}

func TestParseS3URL(t *testing.T) {
	cases := []struct{ in, bucket, key string }{
		{"https://s3.us-east-1.amazonaws.com/b/p/c/i/awsrunShellScript/s/stdout", "b", "p/c/i/awsrunShellScript/s/stdout"},
		{"https://s3.amazonaws.com/b/k", "b", "k"},
		{"https://b.s3.eu-west-1.amazonaws.com/k/stdout", "b", "k/stdout"},
		{"", "", ""},
		{"https://example.com/x", "", ""},
	}
	for _, c := range cases {
		b, k := parseS3URL(c.in)
		if b != c.bucket || k != c.key {
			t.Errorf("parseS3URL(%q) = %q %q", c.in, b, k)
		}
	}
}

func TestOutputKey(t *testing.T) {
	if k := OutputKey("/pfx/", "cmd", "i-1", "unban", "stdout"); k != "pfx/cmd/i-1/awsrunShellScript/unban/stdout" {
		t.Fatal(k)
	}
	if k := OutputKey("", "cmd", "i-1", "unban", "stdout"); k != "cmd/i-1/awsrunShellScript/unban/stdout" {
		t.Fatal(k)
	}
}
