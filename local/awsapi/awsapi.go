// Package awsapi is the one local AWS endpoint: an http.Handler that routes
// each request to the fake of the service it is for, the way the real
// protocols tell them apart. JSON protocols (SSM, Step Functions, Secrets
// Manager, DynamoDB) name the operation in X-Amz-Target; S3's REST protocol has no
// target header. An aws.Config has a single BaseEndpoint, so every client of
// a test or of the local mode points here.
package awsapi

import (
	"net/http"
	"strings"
)

// Router dispatches by service. A nil field answers 400
// UnknownOperationException, as AWS does for a target it does not serve.
type Router struct {
	SSM            http.Handler // X-Amz-Target: AmazonSSM.*
	StepFunctions  http.Handler // X-Amz-Target: AWSStepFunctions.*
	SecretsManager http.Handler // X-Amz-Target: secretsmanager.*
	DynamoDB       http.Handler // X-Amz-Target: DynamoDB_20120810.*
	S3             http.Handler // no X-Amz-Target
}

// ServeHTTP routes one request.
func (rt Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	var h http.Handler
	switch {
	case strings.HasPrefix(target, "AmazonSSM."):
		h = rt.SSM
	case strings.HasPrefix(target, "AWSStepFunctions."):
		h = rt.StepFunctions
	case strings.HasPrefix(target, "secretsmanager."):
		h = rt.SecretsManager
	case strings.HasPrefix(target, "DynamoDB_20120810."):
		h = rt.DynamoDB
	case target == "":
		h = rt.S3
	}
	if h == nil {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"UnknownOperationException","message":"no local service for this request"}`))
		return
	}
	h.ServeHTTP(w, r)
}
