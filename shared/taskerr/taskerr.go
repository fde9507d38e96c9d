// Package taskerr gives task Lambdas error types whose names the state
// machines match in Retry and Catch (ErrorEquals). aws-lambda-go reports a
// returned error's Go type name as the error type, so the type names below
// are part of the contract with statemachine/*.asl.json.
package taskerr

import (
	"errors"
	"reflect"
)

// TransientError is worth retrying: throttling, a 5xx, a network error.
// The ASL retries "TransientError" with backoff and jitter.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Transient marks err as retryable (nil stays nil).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// IsTransient reports whether err (or an error it wraps) is a TransientError.
func IsTransient(err error) bool {
	var t *TransientError
	return errors.As(err, &t)
}

// Name is the error type the Lambda runtime reports for err, computed the way
// aws-lambda-go does (the Go type name, pointer stripped). The local task
// bridge uses it so the ASL sees the same names as in AWS.
func Name(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// InvalidInputError is a task input that cannot be acted on. Retrying the
// same input cannot help, so the ASL only retries TransientError; a Catch
// then turns it into a failure reply and an SRE alert.
type InvalidInputError struct{ Reason string }

func (e *InvalidInputError) Error() string { return "invalid input: " + e.Reason }
