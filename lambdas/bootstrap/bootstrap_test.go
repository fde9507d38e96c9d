package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real bootstrap binary, built as for Lambda (for this machine's
// architecture), run by the Lambda Runtime Interface Emulator, which speaks
// the Runtime API to it exactly as the Lambda service does.

func build(t *testing.T, dir, out string, args ...string) string {
	t.Helper()
	bin := filepath.Join(dir, out)
	cmd := exec.Command("go", append([]string{"build", "-o", bin}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", out, err, b)
	}
	return bin
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// emulate starts the emulator with the bootstrap for one handler name and
// returns the invoke URL and the combined log (the emulator's and the
// function's stdout/stderr).
func emulate(t *testing.T, rie, bootstrap string, env ...string) (string, *lockedBuffer) {
	t.Helper()
	addr := freeAddr(t)
	logs := &lockedBuffer{}
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", freeAddr(t), bootstrap)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "AWS_REGION=ap-northeast-1",
		"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local"}, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return url, logs
		}
	}
	t.Fatalf("emulator did not listen:\n%s", logs)
	return "", nil
}

func invoke(t *testing.T, url, payload string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(payload))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logged waits until every want appears in the log: the emulator answers
// the invocation before it has written its own account of the failure.
func logged(logs *lockedBuffer, want ...string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		all := true
		for _, w := range want {
			all = all && strings.Contains(logs.String(), w)
		}
		if all || time.Now().After(deadline) {
			return all
		}
	}
}

var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

func TestBootstrapUnderTheRuntimeEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	dir := t.TempDir()
	bootstrap := build(t, dir, "bootstrap", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", ".")
	rie := build(t, dir, "aws-lambda-rie", "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie")

	t.Run("parse answers through the Runtime API", func(t *testing.T) {
		url, logs := emulate(t, rie, bootstrap, "_HANDLER=parse")
		status, got := invoke(t, url, `{"room_id":"1","message_id":"2","account_id":"3","body":"[To:1]bot\n２０３．０．１１３．５です"}`)
		if status != http.StatusOK || got != `{"intent":"unban","addresses":["203.0.113.5"]}` {
			t.Fatalf("answer %s\n%s", got, logs)
		}
		// The function's own log lines are JSON (slog), one per line.
		if !logged(logs, `{"time":`, `"msg":"parsed message"`) {
			t.Errorf("no JSON log line:\n%s", logs)
		}
		if m := initReport.FindStringSubmatch(logs.String()); m != nil {
			t.Logf("cold start (process start to ready, as the emulator reports it): %s ms", m[1])
		}
	})

	t.Run("a misconfigured function fails at init, naming the variables", func(t *testing.T) {
		url, logs := emulate(t, rie, bootstrap, "_HANDLER=lookup")
		// The process exits before it asks for an event: the service
		// reports Runtime.ExitError (the emulator: 502).
		if status, got := invoke(t, url, `{"addresses":["203.0.113.5"]}`); status != http.StatusBadGateway {
			t.Errorf("answer %d %s, want the runtime to have exited", status, got)
		}
		if !logged(logs, "Runtime exited with error: exit status 1", "BANLIST_BUCKET") {
			t.Errorf("the log does not name the missing variable:\n%s", logs)
		}
	})

	t.Run("an unknown handler name fails at init", func(t *testing.T) {
		url, logs := emulate(t, rie, bootstrap, "_HANDLER=nonesuch")
		if status, got := invoke(t, url, `{}`); status != http.StatusBadGateway {
			t.Errorf("answer %d %s, want the runtime to have exited", status, got)
		}
		if !logged(logs, `no handler named \"nonesuch\"`) {
			t.Errorf("log:\n%s", logs)
		}
	})
}
