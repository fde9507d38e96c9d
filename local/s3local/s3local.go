// Package s3local is an in-memory S3 (gofakes3 with the s3mem backend) for
// tests and the local mode, as an http.Handler, and builds aws-sdk-go-v2 S3
// clients pointed at wherever it is served.
//
// gofakes3 only stores objects correctly over plain HTTP (over HTTPS the
// SDK's chunked trailing checksums end up inside the object), so the server
// is plain HTTP, the client uses path-style addressing, and uploads must come
// from a seekable body such as bytes.Reader. It honours the conditional
// write headers If-Match and If-None-Match on PutObject atomically, like S3.
package s3local

import (
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Region is the region the clients built here sign for (gofakes3 ignores it).
const Region = "us-east-1"

// Server is an in-memory S3 endpoint, an http.Handler: serve it with
// httptest.NewServer (tests) or any http.Server (the local mode).
type Server struct {
	Backend *s3mem.Backend
	handler http.Handler
}

// New returns a fresh in-memory S3 holding the given empty buckets. A bucket
// name S3 would refuse panics: the names are the caller's constants.
func New(buckets ...string) *Server {
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			panic(fmt.Sprintf("s3local: create bucket %q: %v", b, err))
		}
	}
	return &Server{Backend: backend, handler: gofakes3.New(backend, gofakes3.WithoutVersioning()).Server()}
}

// ServeHTTP serves the S3 REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// NewClient builds an aws-sdk-go-v2 S3 client for a gofakes3 endpoint:
// static dummy credentials, path-style addressing, and its own plain HTTP
// client (so AWS_CA_BUNDLE and proxy settings of the machine do not apply).
func NewClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
	})
}
