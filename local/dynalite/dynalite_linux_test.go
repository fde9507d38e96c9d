package dynalite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"sshguard-unban/local/dynalite"
	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/local/sfnrunner"
)

// helperEnv makes the test binary act as a parent that starts dynalite,
// prints its endpoint and waits to be killed.
const helperEnv = "DYNALITE_TEST_PARENT"

func TestParentHelper(t *testing.T) {
	modules := os.Getenv(helperEnv)
	if modules == "" {
		t.Skip("helper process for TestKilledWithParent")
	}
	srv, err := dynalite.Start(context.Background(), modules)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(srv.Endpoint())
	select {}
}

// A parent killed with SIGKILL (no Close) takes dynalite with it.
func TestKilledWithParent(t *testing.T) {
	srv := dynalitetest.Start(t) // skips without dynalite
	srv.Close()
	root, err := sfnrunner.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join(root, "node_modules")
	parent := exec.Command(os.Args[0], "-test.run=^TestParentHelper$")
	parent.Env = append(os.Environ(), helperEnv+"="+modules)
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		parent.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	endpoint := strings.TrimSpace(line)
	client := dynalite.NewClient(endpoint)
	if _, err := client.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("helper's dynalite does not answer: %v", err)
	}
	child := childPID(t, parent.Process.Pid)
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("dynalite (pid %d) outlived its killed parent", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childPID finds the one child of pid (the node process) in /proc: it
// hangs off whichever thread of the Go parent started it.
func childPID(t *testing.T, pid int) int {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var children []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		children = append(children, strings.Fields(string(b))...)
	}
	if len(children) != 1 {
		t.Fatalf("the helper has children %q, want one", children)
	}
	child, err := strconv.Atoi(children[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}
