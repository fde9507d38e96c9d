// Package browser lets a Go test open pages in a real headless chromium
// (Debian's /usr/bin/chromium) and ask what a user sees: the visible text,
// an element's text or attribute, the page after filling and submitting a
// form, a full-page screenshot, and axe-core's accessibility violations.
//
// A Browser is one Node process (driver.mjs, embedded here) running
// playwright-core, which drives one chromium over a pipe; requests and
// answers are JSON lines on its stdin and stdout. Each Page is a fresh
// browser context (its own cookies, viewport, locale, JavaScript on or
// off), so one Browser serves a whole test package. Playwright's own
// browser downloads are never used.
//
// Available says why pages cannot be opened here; local/browser/browsertest
// turns that into the project's rule (skip, but fail under CI).
package browser

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/tailbuf"
)

//go:embed driver.mjs
var driverScript string

// DefaultChromium is where Debian's chromium package puts the browser.
const DefaultChromium = "/usr/bin/chromium"

// chromiumArgs: no sandbox and no GPU (containers and CI have neither), and
// none of chromium's own connections (component updates, sync, field
// trials, QUIC): on a closed network they are refused, and a test page
// must be the only thing the browser talks to. Playwright adds a fresh
// temporary --user-data-dir itself.
var chromiumArgs = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
}

// ErrUnavailable is wrapped by Available's and Launch's errors when
// something the browser needs is not installed (make test installs it all).
var ErrUnavailable = errors.New("browser: cannot run here")

// Config says where the pieces are; the zero value finds them all.
type Config struct {
	// Chromium is the browser executable (default DefaultChromium).
	Chromium string
	// NodePath is Node ≥ 22 (default <repo>/node_modules/.bin/node) and
	// ModulesDir the node_modules holding playwright-core and axe-core
	// (default <repo>/node_modules), <repo> as sfnrunner.RepoRoot finds it.
	NodePath   string
	ModulesDir string
}

func (c Config) withDefaults() (Config, error) {
	if c.Chromium == "" {
		c.Chromium = DefaultChromium
	}
	var err error
	c.NodePath, c.ModulesDir, err = sfnrunner.NodeDefaults(c.NodePath, c.ModulesDir)
	return c, err
}

// check says what is missing, wrapping ErrUnavailable.
func (c Config) check() error {
	if fi, err := os.Stat(c.Chromium); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%w: no chromium at %s (Debian package chromium; make test installs it as root)", ErrUnavailable, c.Chromium)
	}
	for _, pkg := range []string{"playwright-core", "axe-core"} {
		if _, err := os.Stat(filepath.Join(c.ModulesDir, pkg, "package.json")); err != nil {
			return fmt.Errorf("%w: npm package %s not in %s (run npm ci)", ErrUnavailable, pkg, c.ModulesDir)
		}
	}
	out, err := exec.Command(c.NodePath, "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: no node at %s (run npm ci): %v", ErrUnavailable, c.NodePath, err)
	}
	v := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < 22 {
		return fmt.Errorf("%w: %s is node %s, need ≥ 22 (run npm ci)", ErrUnavailable, c.NodePath, v)
	}
	return nil
}

// Available reports why pages cannot be opened with the default Config
// (nil: they can): no chromium, no Node ≥ 22, or no playwright-core or
// axe-core in node_modules. The error wraps ErrUnavailable.
func Available() error {
	c, err := Config{}.withDefaults()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return c.check()
}

// Browser is a running chromium. It is safe for concurrent use; each Page
// belongs to one goroutine.
type Browser struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *tailbuf.Buffer
	version string
	writeMu sync.Mutex

	mu      sync.Mutex
	pending map[uint64]chan reply
	nextID  uint64
	err     error // why the driver is gone, once it is

	done      chan struct{} // closed when the driver has exited
	closeOnce sync.Once
}

// request is one line to the driver; the fields each op reads are named
// in driver.mjs.
type request struct {
	ID            uint64 `json:"id"`
	Op            string `json:"op"`
	Page          string `json:"page,omitempty"`
	TimeoutMillis int64  `json:"timeout_ms,omitempty"`
	URL           string `json:"url,omitempty"`
	Selector      string `json:"selector,omitempty"`
	Name          string `json:"name,omitempty"`
	Text          string `json:"text"`
	Path          string `json:"path,omitempty"`
	// open
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	Mobile     bool   `json:"mobile,omitempty"`
	Locale     string `json:"locale,omitempty"`
	JavaScript bool   `json:"javascript"`
}

type reply struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// Launch starts chromium; ctx bounds the start only. Close it when done.
func Launch(ctx context.Context, cfg Config) (*Browser, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	modules, err := filepath.Abs(cfg.ModulesDir)
	if err != nil {
		return nil, err
	}
	// -e, not a temporary file, so a killed test leaves nothing behind.
	cmd := exec.Command(cfg.NodePath, "--input-type=module", "-e", driverScript)
	b := &Browser{cmd: cmd, stderr: &tailbuf.Buffer{}, pending: map[uint64]chan reply{}, done: make(chan struct{})}
	cmd.Stderr = b.stderr
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("browser: start %s: %w", cfg.NodePath, err)
	}
	ready := make(chan reply, 1)
	go b.read(stdout, ready)

	first, _ := json.Marshal(map[string]any{"modules": modules, "chromium": cfg.Chromium, "args": chromiumArgs})
	if _, err := b.stdin.Write(append(first, '\n')); err != nil {
		b.Close()
		return nil, fmt.Errorf("browser: start: %w", err)
	}
	select {
	case r := <-ready:
		if r.Error != "" {
			b.Close()
			return nil, fmt.Errorf("browser: launch %s: %s", cfg.Chromium, r.Error)
		}
		_ = json.Unmarshal(r.Result, &b.version)
		return b, nil
	case <-b.done:
		return nil, b.gone()
	case <-ctx.Done():
		b.Close()
		return nil, fmt.Errorf("browser: launch: %w", ctx.Err())
	}
}

// read delivers the driver's answers until it exits. The first line is
// the launch's outcome, passed on as a reply.
func (b *Browser) read(stdout io.Reader, ready chan<- reply) {
	r := bufio.NewReader(stdout)
	first := true
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var m struct {
				reply
				Ready   bool   `json:"ready"`
				Version string `json:"version"`
				Fatal   string `json:"fatal"`
			}
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				fmt.Fprintf(b.stderr, "browser: bad driver line %q\n", line)
			} else if first {
				first = false
				v, _ := json.Marshal(m.Version)
				ready <- reply{Result: v, Error: m.Fatal}
			} else if m.Fatal != "" {
				fmt.Fprintf(b.stderr, "driver: %s\n", m.Fatal)
			} else {
				b.mu.Lock()
				ch := b.pending[m.ID]
				delete(b.pending, m.ID)
				b.mu.Unlock()
				if ch != nil {
					ch <- m.reply
				}
			}
		}
		if err != nil {
			break
		}
	}
	werr := b.cmd.Wait()
	b.mu.Lock()
	b.err = fmt.Errorf("browser: driver exited (%v): %s", werr, b.stderr)
	b.mu.Unlock()
	close(b.done)
}

func (b *Browser) gone() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Version is chromium's version, as it reports it.
func (b *Browser) Version() string { return b.version }

// call sends req and decodes its result into out (if not nil). The
// driver's own timeout for the step is the sooner of timeout and ctx's
// deadline, so a slow step fails with Playwright's explanation.
func (b *Browser) call(ctx context.Context, timeout time.Duration, req request, out any) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	req.TimeoutMillis = max(timeout.Milliseconds(), 1)
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return b.err
	}
	b.nextID++
	req.ID = b.nextID
	b.pending[req.ID] = ch
	b.mu.Unlock()
	forget := func() {
		b.mu.Lock()
		delete(b.pending, req.ID)
		b.mu.Unlock()
	}

	line, err := json.Marshal(req)
	if err != nil {
		forget()
		return err
	}
	b.writeMu.Lock()
	_, err = b.stdin.Write(append(line, '\n'))
	b.writeMu.Unlock()
	if err != nil {
		forget()
		return fmt.Errorf("browser: %s: %w", req.Op, err)
	}
	select {
	case r := <-ch:
		return b.decode(req.Op, r, out)
	case <-b.done:
		select {
		case r := <-ch: // answered just before the driver exited
			return b.decode(req.Op, r, out)
		default:
			return b.gone()
		}
	case <-ctx.Done():
		forget()
		return fmt.Errorf("browser: %s: %w", req.Op, ctx.Err())
	}
}

func (b *Browser) decode(op string, r reply, out any) error {
	if r.Error != "" {
		return fmt.Errorf("browser: %s: %s", op, r.Error)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result, out)
}

// Close stops chromium and the driver (their temporary profile goes with
// them). Safe to call more than once.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		_ = b.stdin.Close() // the driver closes chromium and exits
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
	return nil
}
