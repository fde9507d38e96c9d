package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"sshguard-unban/shared/banlist/awserr"
	"sshguard-unban/shared/taskerr"
)

func respErr(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err}}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		transient bool
	}{
		{"throttling", respErr(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), true},
		{"s3 slow down", respErr(503, &smithy.GenericAPIError{Code: "SlowDown"}), true},
		{"5xx", respErr(500, &smithy.GenericAPIError{Code: "InternalServerError", Fault: smithy.FaultServer}), true},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"invalid document", respErr(400, &smithy.GenericAPIError{Code: "InvalidDocument"}), false},
		{"access denied", respErr(403, &smithy.GenericAPIError{Code: "AccessDenied"}), false},
		{"plain", errors.New("boom"), false},
	}
	for _, c := range cases {
		got := awserr.Classify(c.err)
		if taskerr.IsTransient(got) != c.transient {
			t.Errorf("%s: transient=%v, want %v", c.name, taskerr.IsTransient(got), c.transient)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("%s: original error lost", c.name)
		}
	}
	if awserr.Classify(nil) != nil {
		t.Error("nil")
	}
}
