package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCDKCLISynth runs what CI runs: the CDK CLI from package.json,
// offline, with no credentials, against the repository's cdk.json. It needs
// `npm ci` first (node_modules/.bin/cdk) and is skipped without it or with
// -short.
//
//	AWS_REGION=ap-northeast-1 npx cdk synth --no-notices --no-version-reporting
func TestCDKCLISynth(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	root, _ := testSources(t)
	if _, err := os.Stat(filepath.Join(root, "node_modules", ".bin", "cdk")); err != nil {
		t.Skip("node_modules/.bin/cdk missing: run npm ci")
	}
	out := t.TempDir()
	cmd := exec.Command("npx", "--no-install", "cdk", "synth", "--no-notices", "--no-version-reporting", "--quiet", "-o", out)
	cmd.Dir = root
	// No credentials and no metadata service: the synth must not need them.
	var env []string
	for _, e := range os.Environ() {
		k := strings.SplitN(e, "=", 2)[0]
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "CDK_") {
			continue
		}
		env = append(env, e)
	}
	env = append(env,
		"AWS_REGION=ap-northeast-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_CONFIG_FILE=/nonexistent",
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=1",
	)
	if dir := os.Getenv(LambdaDirEnv); dir != "" {
		env = append(env, LambdaDirEnv+"="+dir)
	}
	cmd.Env = env
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(filepath.Join(out, StackName+".template.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Resources map[string]struct{ Type string }
	}
	if err := json.Unmarshal(raw, &tpl); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range tpl.Resources {
		if r.Type == "AWS::StepFunctions::StateMachine" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("cdk synth produced %d state machines, want 2", n)
	}
}
