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

	"sshguard-unban/shared/awserr"
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

func TestIsNotFound(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"get: NoSuchKey", respErr(404, &smithy.GenericAPIError{Code: "NoSuchKey"}), true},
		{"head: bare 404", respErr(404, &smithy.GenericAPIError{Code: "NotFound"}), true},
		{"404 without a code", respErr(404, errors.New("not found")), true},
		{"404 with another code", respErr(404, &smithy.GenericAPIError{Code: "NoSuchUpload"}), false},
		{"denied", respErr(403, &smithy.GenericAPIError{Code: "AccessDenied"}), false},
		{"no such bucket is a configuration error", respErr(404, &smithy.GenericAPIError{Code: "NoSuchBucket"}), false},
		{"wrapped", fmt.Errorf("ctx: %w", respErr(404, &smithy.GenericAPIError{Code: "NoSuchKey"})), true},
		{"nil", nil, false},
	}
	for _, c := range cases {
		if got := awserr.IsNotFound(c.err); got != c.want {
			t.Errorf("%s: IsNotFound=%v, want %v", c.name, got, c.want)
		}
	}
}
