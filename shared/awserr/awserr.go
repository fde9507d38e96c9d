// Package awserr classifies errors returned by aws-sdk-go-v2 clients for the
// task Lambdas: what is worth retrying becomes a taskerr.TransientError (the
// state machines retry that type name), everything else stays as it is and
// ends the task.
package awserr

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"sshguard-unban/shared/taskerr"
)

// extra codes that are transient for us although the SDK does not retry them.
var transientCodes = map[string]bool{
	"InternalServerError":        true, // SSM
	"InternalError":              true, // S3
	"ServiceUnavailable":         true,
	"ConditionalRequestConflict": true, // S3: a concurrent conditional write
}

// Classify returns nil for nil, err unchanged when it is already transient,
// taskerr.Transient(err) for throttling, 5xx, timeouts and network errors,
// and err unchanged otherwise (permanent).
func Classify(err error) error {
	if err == nil || taskerr.IsTransient(err) {
		return err
	}
	if IsTransient(err) {
		return taskerr.Transient(err)
	}
	return err
}

// IsTransient reports whether err is a throttling, server-side, timeout or
// network error.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if c := re.HTTPStatusCode(); c >= 500 || c == 429 {
			return true
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if transientCodes[ae.ErrorCode()] || ae.ErrorFault() == smithy.FaultServer {
			return true
		}
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return true
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// IsNotFound reports whether err says the object or resource does not exist:
// S3's NoSuchKey (GetObject), NotFound (HeadObject, no body to carry a
// code) or a 404 without a code. NoSuchBucket is a 404 too, but a missing
// bucket is a broken deployment, not a missing object. The one place the
// project decides "missing".
func IsNotFound(err error) bool {
	switch Code(err) {
	case "NoSuchKey", "NotFound", "ResourceNotFoundException":
		return true
	case "":
		return HTTPStatus(err) == 404
	}
	return false
}

// Code returns the AWS error code of err ("" if it has none).
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// HTTPStatus returns the HTTP status of a failed AWS call (0 if unknown).
func HTTPStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
