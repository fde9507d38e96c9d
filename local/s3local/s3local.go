// Package s3local serves an in-memory S3 (gofakes3 with the s3mem backend)
// on 127.0.0.1 for tests and the local mode, and builds aws-sdk-go-v2 S3
// clients pointed at it.
//
// gofakes3 only stores objects correctly over plain HTTP (over HTTPS the
// SDK's chunked trailing checksums end up inside the object), so the server
// is plain HTTP, the client uses path-style addressing, and uploads must come
// from a seekable body such as bytes.Reader. It honours the conditional
// write headers If-Match and If-None-Match on PutObject atomically, like S3.
package s3local

import (
	"fmt"
	"net"
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

// Server is a running in-memory S3 endpoint.
type Server struct {
	// URL is the endpoint, e.g. "http://127.0.0.1:38111" (no trailing slash).
	URL     string
	Backend *s3mem.Backend

	srv *http.Server
	ln  net.Listener
}

// Start serves a fresh in-memory S3 on addr ("" means 127.0.0.1 on a free
// port) and creates the given buckets.
func Start(addr string, buckets ...string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, fmt.Errorf("s3local: create bucket %q: %w", b, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithoutVersioning())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3local: listen: %w", err)
	}
	s := &Server{
		URL:     "http://" + ln.Addr().String(),
		Backend: backend,
		srv:     &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second},
		ln:      ln,
	}
	go func() { _ = s.srv.Serve(ln) }() // returns ErrServerClosed on Close
	return s, nil
}

// CreateBucket adds a bucket to a running server.
func (s *Server) CreateBucket(name string) error { return s.Backend.CreateBucket(name) }

// Close stops the server at once, dropping open connections (Shutdown would
// wait up to 5 s for connections that were dialled but never used).
func (s *Server) Close() error { return s.srv.Close() }

// Client returns an S3 client for this server.
func (s *Server) Client() *s3.Client { return NewClient(s.URL) }

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
