// Package chatwork posts and edits messages and lists room members through
// the Chatwork REST API v2, and builds the markup the bot's replies use.
package chatwork

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"sshguard-unban/shared/pause"
	"sshguard-unban/shared/taskerr"
)

// DefaultBaseURL is the production API.
const DefaultBaseURL = "https://api.chatwork.com/v2"

// Chatwork's posting limit per room: RoomLimit posts (messages and tasks)
// per RoomWindow. Senders that may post in bursts merge their messages to
// stay under it.
const (
	RoomLimit  = 10
	RoomWindow = 10 * time.Second
)

// TokenFunc returns the API token; it is called per request so the token is
// read from the secret cache, never stored in configuration.
type TokenFunc func(ctx context.Context) (string, error)

// Client posts messages. Its zero retry settings are replaced by defaults
// that fit inside a Lambda's timeout.
type Client struct {
	BaseURL string
	Token   TokenFunc
	HTTP    *http.Client

	// MaxAttempts bounds tries per request (default 4).
	MaxAttempts int
	// MaxWait is the longest the client waits for a rate-limit reset or a
	// backoff (default 20 s); a longer wait is left to the state machine's
	// Retry as a TransientError.
	MaxWait time.Duration
	// Now and Sleep are replaceable for tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// APIError is a refusal that retrying will not fix (400, 401, 403, 404 …).
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("chatwork: HTTP %d: %s", e.Status, e.Body)
}

// PostMessage posts body to the room and returns the new message id.
func (c *Client) PostMessage(ctx context.Context, roomID, body string) (string, error) {
	form := url.Values{"body": {body}, "self_unread": {"0"}}
	return c.messageID(c.send(ctx, http.MethodPost, "/rooms/"+url.PathEscape(roomID)+"/messages", form))
}

// UpdateMessage replaces the text of a message the bot posted.
func (c *Client) UpdateMessage(ctx context.Context, roomID, messageID, body string) error {
	_, err := c.send(ctx, http.MethodPut, "/rooms/"+url.PathEscape(roomID)+"/messages/"+url.PathEscape(messageID), url.Values{"body": {body}})
	return err
}

// Member is one member of a room, as GET /rooms/{room_id}/members lists it.
type Member struct {
	AccountID        json.Number `json:"account_id"`
	Role             string      `json:"role"`
	Name             string      `json:"name"`
	OrganizationID   json.Number `json:"organization_id"`
	OrganizationName string      `json:"organization_name"`
}

// RoomMembers lists the members of a room: who they are and which
// organization they belong to (a guest from another company has another
// organization_id).
func (c *Client) RoomMembers(ctx context.Context, roomID string) ([]Member, error) {
	raw, err := c.send(ctx, http.MethodGet, "/rooms/"+url.PathEscape(roomID)+"/members", nil)
	if err != nil {
		return nil, err
	}
	var ms []Member
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&ms); err != nil {
		return nil, fmt.Errorf("chatwork: unexpected members answer: %s", snippet(raw))
	}
	return ms, nil
}

// messageID reads {"message_id": …} from an answer.
func (c *Client) messageID(raw []byte, err error) (string, error) {
	if err != nil {
		return "", err
	}
	var out struct {
		MessageID json.Number `json:"message_id"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return "", fmt.Errorf("chatwork: unexpected answer: %s", snippet(raw))
		}
	}
	return out.MessageID.String(), nil
}

func (c *Client) send(ctx context.Context, method, path string, form url.Values) ([]byte, error) {
	token, err := c.Token(ctx)
	if err != nil {
		return nil, err
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 4
	}
	var last error
	for attempt := 1; ; attempt++ {
		raw, wait, err := c.try(ctx, method, path, form, token, attempt)
		if err == nil {
			return raw, nil
		}
		last = err
		if !taskerr.IsTransient(err) || attempt >= attempts {
			return nil, last
		}
		if wait > c.maxWait() {
			// The reset is too far away to wait for inside one invocation.
			return nil, last
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, taskerr.Transient(err)
		}
	}
}

// try makes one request. On a retryable failure it returns how long to wait.
func (c *Client) try(ctx context.Context, method, path string, form url.Values, token string, attempt int) ([]byte, time.Duration, error) {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("X-ChatWorkToken", token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.backoff(attempt), taskerr.Transient(fmt.Errorf("chatwork: %s %s: %w", method, path, redactErr(err)))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))

	switch {
	case resp.StatusCode == http.StatusTooManyRequests && strings.Contains(string(raw), "per room"):
		// The room's posting limit (10 posts per 10 seconds), not the
		// token's: the x-ratelimit-* headers say nothing about it, and it
		// clears about 10 s after the room's oldest recent post.
		return nil, RoomWindow + rand.N(time.Second), taskerr.Transient(&APIError{Status: resp.StatusCode, Body: "room posting limit"})
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, c.untilReset(resp.Header, attempt), taskerr.Transient(&APIError{Status: resp.StatusCode, Body: "rate limited"})
	case resp.StatusCode >= 500:
		return nil, c.backoff(attempt), taskerr.Transient(&APIError{Status: resp.StatusCode, Body: snippet(raw)})
	case resp.StatusCode >= 300:
		return nil, 0, &APIError{Status: resp.StatusCode, Body: snippet(raw)}
	}
	if remaining := resp.Header.Get("X-Ratelimit-Remaining"); remaining == "0" {
		// The token's budget is spent: hold the next call until the reset
		// instead of collecting a 429.
		if d := c.untilReset(resp.Header, attempt); d > 0 && d <= c.maxWait() {
			_ = c.sleep(ctx, d)
		}
	}
	return raw, 0, nil
}

// untilReset reads x-ratelimit-reset (a Unix time) and returns the wait;
// without the header it falls back to backoff.
func (c *Client) untilReset(h http.Header, attempt int) time.Duration {
	reset, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64)
	if err != nil {
		return c.backoff(attempt)
	}
	d := time.Unix(reset, 0).Sub(c.now())
	if d < 0 {
		d = 0
	}
	// A second of margin: the reset is whole seconds and clocks differ.
	return d + time.Second
}

// backoff is exponential with full jitter: 0.5 s, 1 s, 2 s … (random part
// spreads concurrent Lambdas apart).
func (c *Client) backoff(attempt int) time.Duration {
	base := 500 * time.Millisecond << (attempt - 1)
	return base/2 + rand.N(base/2+1)
}

func (c *Client) maxWait() time.Duration {
	if c.MaxWait > 0 {
		return c.MaxWait
	}
	return 20 * time.Second
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	return pause.For(ctx, d)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// redactErr drops the request URL's details from transport errors; the URL
// holds no token (it travels in a header) but keeps messages short.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
