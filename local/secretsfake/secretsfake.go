// Package secretsfake serves GetSecretValue over the Secrets Manager JSON 1.1
// protocol, so the production secrets code runs unchanged in the local mode
// and tests (only the endpoint differs).
package secretsfake

import (
	"encoding/json"
	"net/http"
	"sync"
)

// Server holds secrets by id. It checks that a request is signed (an
// Authorization header is present) but does not verify SigV4.
type Server struct {
	mu      sync.Mutex
	secrets map[string]string
	reads   int
}

// New returns a Server holding the given id → SecretString pairs.
func New(secrets map[string]string) *Server {
	s := &Server{secrets: map[string]string{}}
	for k, v := range secrets {
		s.secrets[k] = v
	}
	return s
}

// Reads counts GetSecretValue calls (the Lambdas should cache).
func (s *Server) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// ServeHTTP implements the protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Header.Get("Authorization") == "" {
		fail(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "request is not signed")
		return
	}
	if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		fail(w, http.StatusBadRequest, "UnknownOperationException", "only GetSecretValue is served locally")
		return
	}
	var in struct{ SecretId string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "SerializationException", "malformed request")
		return
	}
	s.mu.Lock()
	s.reads++
	v, ok := s.secrets[in.SecretId]
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"ARN":          "arn:aws:secretsmanager:local:000000000000:secret:" + in.SecretId,
		"Name":         in.SecretId,
		"SecretString": v,
		"VersionId":    "local",
	})
}

func fail(w http.ResponseWriter, status int, typ, msg string) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}
