// Package chatworkfake is a local stand-in for the Chatwork REST API v2: it
// checks the token header and form encoding like the real service, records
// every message, enforces the real limits (300 requests per 5 minutes per
// token, with the x-ratelimit-* headers; 10 posts per 10 seconds per room,
// answered 429 with Chatwork's message), and can inject 429 and 5xx answers. Tests and the local mode point the
// production client at it.
package chatworkfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Message is one message in a room.
type Message struct {
	RoomID    string
	MessageID string
	Body      string
	Time      time.Time // posted
	Updated   bool
	Edited    time.Time // last edited (zero if never)
	// Earlier are the bodies it had before each edit, oldest first: what
	// the room saw before the message took its current text.
	Earlier []string
}

// Shown is when the message took its current text.
func (m Message) Shown() time.Time {
	if m.Updated {
		return m.Edited
	}
	return m.Time
}

// Server is the fake API. Set the exported fields before the first request.
type Server struct {
	// TokenLimit requests per Window per token (Chatwork: 300 per 5 minutes).
	TokenLimit int
	Window     time.Duration
	// RoomLimit posts per RoomWindow in one room (Chatwork: 10 per 10
	// seconds, messages and tasks together), a sliding window.
	RoomLimit  int
	RoomWindow time.Duration
	// Latency, if non-nil, is each request's service time (outside the
	// fake's lock, so requests overlap as they do against the real API).
	Latency func() time.Duration
	// Now is the fake's clock (tests move it).
	Now func() time.Time
	// OnMessage, if set, is called for each posted or edited message (the
	// local mode prints the conversation with it).
	OnMessage func(Message)

	token string

	mu          sync.Mutex
	messages    []Message
	inject      []injected
	windowStart time.Time
	used        int
	posts       map[string][]time.Time // room → recent post times
	requests    int
	refused     int
	nextID      int64
	members     map[string][]Member // room → members
}

// Member is a room member as GET /rooms/{room_id}/members answers it
// (numbers as numbers, as Chatwork sends them).
type Member struct {
	AccountID        int64  `json:"account_id"`
	Role             string `json:"role"`
	Name             string `json:"name"`
	ChatworkID       string `json:"chatwork_id"`
	OrganizationID   int64  `json:"organization_id"`
	OrganizationName string `json:"organization_name"`
	Department       string `json:"department"`
	AvatarImageURL   string `json:"avatar_image_url"`
}

// SetMembers sets who is in a room (a room without members answers 404, as
// for a room the bot is not in).
func (s *Server) SetMembers(roomID string, ms ...Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members == nil {
		s.members = map[string][]Member{}
	}
	s.members[roomID] = append([]Member(nil), ms...)
}

// BasePath is where the API lives on the server, as in
// https://api.chatwork.com/v2: a client's base URL is the served URL + BasePath.
const BasePath = "/v2"

// New returns the fake, accepting only the given API token. It is an
// http.Handler: serve it with httptest.NewServer.
func New(token string) *Server {
	return &Server{TokenLimit: 300, Window: 5 * time.Minute, RoomLimit: 10, RoomWindow: 10 * time.Second,
		Now: time.Now, token: token, nextID: 1790000000000000000, posts: map[string][]time.Time{}}
}

type injected struct {
	method string // "" for any
	status int
}

// FailNext makes the next n requests fail with status (429 or 5xx).
// Calls queue up in order.
func (s *Server) FailNext(status, n int) { s.FailNextOn("", status, n) }

// FailNextOn makes the next n requests with this method (http.MethodPut:
// edits) fail with status; other requests pass.
func (s *Server) FailNextOn(method string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.inject = append(s.inject, injected{method: method, status: status})
	}
}

// Pending counts injected failures not yet answered.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inject)
}

// Messages returns a copy of every message, in posting order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// RoomMessages returns the messages of one room.
func (s *Server) RoomMessages(roomID string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.RoomID == roomID {
			out = append(out, m)
		}
	}
	return out
}

// Requests counts every request received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Refused counts requests refused by a rate limit itself, the token's or a
// room's (not injected failures): a client that respects the limits keeps
// this at zero.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// RoomLimitMessage is the error Chatwork answers (HTTP 429) when a room's
// posting limit is exceeded.
const RoomLimitMessage = "Rate limit for message posting per room exceeded."

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.Latency != nil {
		time.Sleep(s.Latency())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++

	if r.Header.Get("X-ChatWorkToken") != s.token {
		writeErr(w, http.StatusUnauthorized, "Invalid API token")
		return
	}
	if i := s.injectedFor(r.Method); i >= 0 {
		status := s.inject[i].status
		s.inject = append(s.inject[:i], s.inject[i+1:]...)
		if status == http.StatusTooManyRequests {
			s.rateHeaders(w, 0)
		}
		writeErr(w, status, "injected failure")
		return
	}
	now := s.Now()
	if now.Sub(s.windowStart) >= s.Window {
		s.windowStart, s.used = now, 0
	}
	if s.used >= s.TokenLimit {
		s.refused++
		s.rateHeaders(w, 0)
		writeErr(w, http.StatusTooManyRequests, "Rate limit exceeded")
		return
	}
	s.used++
	s.rateHeaders(w, s.TokenLimit-s.used)

	// /v2/rooms/{room}/messages[/{id}], /v2/rooms/{room}/members
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) == 4 && parts[0] == "v2" && parts[1] == "rooms" && parts[3] == "members" && digits(parts[2]) && r.Method == http.MethodGet {
		ms, ok := s.members[parts[2]]
		if !ok {
			writeErr(w, http.StatusNotFound, "You don't have permission to get members of this room")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ms)
		return
	}
	if len(parts) < 4 || parts[0] != "v2" || parts[1] != "rooms" || parts[3] != "messages" || !digits(parts[2]) {
		writeErr(w, http.StatusNotFound, "no such endpoint")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeErr(w, http.StatusBadRequest, "body must be form-encoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeErr(w, http.StatusBadRequest, "malformed form")
		return
	}
	body := r.PostForm.Get("body")
	if body == "" {
		writeErr(w, http.StatusBadRequest, "Parameter body is empty")
		return
	}
	room := parts[2]
	switch {
	case len(parts) == 4 && r.Method == http.MethodPost:
		if !s.roomAllows(room, now) {
			s.refused++
			writeErr(w, http.StatusTooManyRequests, RoomLimitMessage)
			return
		}
		id := strconv.FormatInt(s.nextID, 10)
		s.nextID++
		m := Message{RoomID: room, MessageID: id, Body: body, Time: now}
		s.messages = append(s.messages, m)
		s.notify(m)
		fmt.Fprintf(w, `{"message_id":"%s"}`, id)
	case len(parts) == 5 && r.Method == http.MethodPut:
		// An edit is not a post: it counts against the token's budget
		// (above), not the room's posting limit.
		for i := range s.messages {
			if s.messages[i].RoomID == room && s.messages[i].MessageID == parts[4] {
				m := &s.messages[i]
				m.Earlier = append(m.Earlier[:len(m.Earlier):len(m.Earlier)], m.Body)
				m.Body, m.Updated, m.Edited = body, true, now
				s.notify(s.messages[i])
				fmt.Fprintf(w, `{"message_id":"%s"}`, parts[4])
				return
			}
		}
		writeErr(w, http.StatusNotFound, "no such message")
	default:
		writeErr(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// injectedFor is the index of the first queued failure for method, or -1.
func (s *Server) injectedFor(method string) int {
	for i, f := range s.inject {
		if f.method == "" || f.method == method {
			return i
		}
	}
	return -1
}

// roomAllows records a post in room at now unless RoomLimit posts happened
// within the last RoomWindow.
func (s *Server) roomAllows(room string, now time.Time) bool {
	recent := s.posts[room][:0]
	for _, t := range s.posts[room] {
		if now.Sub(t) < s.RoomWindow {
			recent = append(recent, t)
		}
	}
	if s.RoomLimit > 0 && len(recent) >= s.RoomLimit {
		s.posts[room] = recent
		return false
	}
	s.posts[room] = append(recent, now)
	return true
}

func (s *Server) notify(m Message) {
	if s.OnMessage != nil {
		s.OnMessage(m)
	}
}

func (s *Server) rateHeaders(w http.ResponseWriter, remaining int) {
	h := w.Header()
	h.Set("X-Ratelimit-Limit", strconv.Itoa(s.TokenLimit))
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-Ratelimit-Reset", strconv.FormatInt(s.windowStart.Add(s.Window).Unix(), 10))
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[%q]}`, msg)
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
