package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sshguard-unban/host"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/ssmdoc"
)

// Sources are the files of the repository the stack is built from. They are
// read at synth time, so the template always matches the checked-out tree.
type Sources struct {
	UnbanASL     string // statemachine/unban.asl.json
	RefreshASL   string // statemachine/refresh.asl.json
	UnbanScript  string // host/sshguard-unban.sh with host/common.sh put in (host.Assemble)
	ReportScript string // host/sshguard-report.sh, likewise
	LambdaDir    string // directory holding the linux/arm64 "bootstrap" binary
}

// LoadScripts assembles the two host scripts from root/host at synth time,
// with the same function the tests and the local mode use (host.Script
// assembles from the copy compiled into them).
func LoadScripts(root string) (unban, report string, err error) {
	src := os.DirFS(filepath.Join(root, "host"))
	if unban, err = host.Assemble(src, host.UnbanScript); err != nil {
		return "", "", err
	}
	if report, err = host.Assemble(src, host.ReportScript); err != nil {
		return "", "", err
	}
	return unban, report, nil
}

// LambdaDirEnv names a directory that already holds a linux/arm64
// `bootstrap`; when set, the app uses it instead of building. It exists for
// people iterating on the stack alone; CI leaves it unset so every synth
// builds ./lambdas/bootstrap from the tree.
const LambdaDirEnv = "SSHGUARD_UNBAN_LAMBDA_DIR"

// FindRepoRoot walks up from dir to the directory holding go.mod: `go run
// ./cdk` runs from the repository root, `go test ./cdk` from cdk/.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// LoadSources reads the ASL, assembles the host scripts and builds (or
// locates) the Lambda binary.
func LoadSources(root string) (Sources, error) {
	var s Sources
	var err error
	if s.UnbanScript, s.ReportScript, err = LoadScripts(root); err != nil {
		return s, err
	}
	files := []struct {
		dst  *string
		path string
	}{
		{&s.UnbanASL, "statemachine/unban.asl.json"},
		{&s.RefreshASL, "statemachine/refresh.asl.json"},
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			return s, fmt.Errorf("read %s: %w", f.path, err)
		}
		*f.dst = string(b)
	}
	if dir := os.Getenv(LambdaDirEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "bootstrap")); err != nil {
			return s, fmt.Errorf("%s=%s: %w", LambdaDirEnv, dir, err)
		}
		s.LambdaDir = dir
		return s, nil
	}
	dir, err := BuildBootstrap(root, filepath.Join(root, "build", "lambda"))
	if err != nil {
		return s, err
	}
	s.LambdaDir = dir
	return s, nil
}

// BuildBootstrap compiles ./lambdas/bootstrap for the Lambda runtime into
// outDir/bootstrap. The flags make the bytes reproducible (-trimpath,
// -buildvcs=false, no cgo, stripped), so an unchanged tree keeps the same
// asset hash and `cdk deploy` does not update the functions needlessly.
// The binary is written to a temporary name and renamed, so a concurrent
// synth (tests and the CLI share build/lambda) never packages a partial file.
func BuildBootstrap(root, outDir string) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(outDir, ".bootstrap-*")
	if err != nil {
		return "", err
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)

	cmd := exec.Command("go", "build",
		"-tags", "lambda.norpc",
		"-trimpath",
		"-buildvcs=false",
		"-ldflags=-s -w",
		"-o", tmpName,
		"./lambdas/bootstrap")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	// The CDK CLI reads the app's stdout for nothing, but keep it clean.
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build ./lambdas/bootstrap: %w", err)
	}
	if err := os.Chmod(tmpName, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmpName, filepath.Join(outDir, "bootstrap")); err != nil {
		return "", err
	}
	return outDir, nil
}

// Definition substitution names the ASL files may use, and the function each
// stands for (the same table the local mode serves the tasks by).
var substitutionFunctions = functions.Substitutions()

var placeholderRe = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Placeholders returns the ${Name} substitutions an ASL definition uses,
// sorted. An unknown name is an error: CloudFormation would leave it in the
// definition verbatim and the state machine would fail at run time.
func Placeholders(asl string) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for _, m := range placeholderRe.FindAllStringSubmatch(asl, -1) {
		if _, ok := substitutionFunctions[m[1]]; !ok {
			return nil, fmt.Errorf("unknown definition substitution ${%s}", m[1])
		}
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, errors.New("definition uses no ${...FunctionArn} substitution")
	}
	return names, nil
}

// The unban document's parameters. SSM validates every item of the address
// list against allowedPattern before it accepts SendCommand, so an item can
// hold only hex digits, dots and colons: enough for any textual IPv4 or IPv6
// address (45 characters with an embedded IPv4), and nothing a shell treats
// specially. The host script still parses each argument as an address. The
// two optional parameters (ssmdoc) are one-item lists validated the same way.
const (
	AddressesParam         = ssmdoc.AddressesParam
	AddressItemPattern     = ssmdoc.AddressItemPattern
	AddressesMaxItems      = ssmdoc.MaxAddresses
	ExceptionSecondsParam  = ssmdoc.ExceptionSecondsParam
	RemoveBlacklistedParam = ssmdoc.RemoveBlacklistedParam
	UnbanStepName          = ssmdoc.UnbanStep
	ReportStepName         = ssmdoc.ReportStep
	scriptHeredocMarker    = "SSHGUARD_UNBAN_EMBEDDED_SCRIPT_EOF"
	paramsHeredocMarker    = "SSHGUARD_UNBAN_PARAMETER_EOF"
	commandDocumentLimit   = 64 * 1024 // SSM's size limit for a Command document
)

// UnbanDocumentContent is the SSM Command document that runs
// host/sshguard-unban.sh with the requested addresses.
//
// How the addresses reach the script: the SSM agent renders a StringList
// parameter used inside a longer string as its JSON encoding, so the line
// "L{{ addresses }}" inside a quoted here-document becomes
// L["192.0.2.12","2001:db8::5"]. The shell takes the here-document's text
// as it is (no expansion, no command substitution, quotes mean nothing),
// and JSON encodes a newline in an item as \n, so no item can end the
// here-document early: whatever an item holds — a quote, $(), backticks —
// SSM's allowedPattern is not what keeps it from running. The wrapper then
// strips the "L" and the brackets, splits on commas with globbing off,
// strips each item's double quotes and hands the items to the script as
// separate quoted arguments ("$@"), which validates each strictly. No
// parameter value is ever evaluated. (interpolationType ENV_VAR is
// documented for String parameters only, so it cannot carry a list.)
//
// The two optional parameters arrive the same way, as one-item StringLists:
// exceptionSeconds as X["300"], removeBlacklisted as B["false"]. Not String
// or Boolean: the agent puts a String (and anything it takes for one) into
// the line as it is, so a newline and the marker would end any
// here-document and quotes would leave any quoting; only a list is always
// JSON-encoded. (ENV_VAR would need agent 3.3.2746.0 or later on every host,
// and an older agent would silently pass nothing.) They become the script's
// options --exception-seconds and --remove-blacklisted.
func UnbanDocumentContent(script string, timeoutSeconds int) (map[string]interface{}, error) {
	lines := []string{
		"#!/bin/sh",
		"# Generated by the sshguard-unban CDK app from host/sshguard-unban.sh.",
		"# The parameters arrive JSON-encoded in quoted here-documents (see cdk/sources.go).",
		"set -f",
	}
	lines = append(lines, paramLines("raw", "L", AddressesParam)...)
	lines = append(lines,
		`raw=${raw#\[}`,
		`raw=${raw%\]}`,
		"IFS=,",
		"set -- $raw",
		"unset IFS",
		"n=$#",
		"while [ \"$n\" -gt 0 ]; do",
		`	a=${1#\"}`,
		`	a=${a%\"}`,
		"	shift",
		"	set -- \"$@\" \"$a\"",
		"	n=$((n - 1))",
		"done",
		"set +f",
	)
	// One item each: strip the brackets and the item's quotes. Whatever
	// else an item held stays in the value, inert: the script checks xs,
	// and rb must be exactly true or false.
	lines = append(lines, paramLines("xs", "X", ExceptionSecondsParam)...)
	lines = append(lines, `xs=${xs#\[\"}`, `xs=${xs%\"\]}`)
	lines = append(lines, paramLines("rb", "B", RemoveBlacklistedParam)...)
	lines = append(lines, `rb=${rb#\[\"}`, `rb=${rb%\"\]}`,
		"case $rb in",
		"true) set -- --remove-blacklisted \"$@\" ;;",
		"false) ;;",
		`*) echo '{"error":"removeBlacklisted must be true or false","code":"usage","results":[]}'; exit 2 ;;`,
		"esac",
		"set -- --exception-seconds \"$xs\" \"$@\"",
	)
	run, err := embedScript(script, `"$@"`)
	if err != nil {
		return nil, fmt.Errorf("host/sshguard-unban.sh: %w", err)
	}
	lines = append(lines, run...)
	doc := map[string]interface{}{
		"schemaVersion": "2.2",
		"description":   "Free exact IPv4/IPv6 addresses from sshguard's blocks on this host, never a containing prefix (sshguard-unban). Prints one JSON object.",
		"parameters": map[string]interface{}{
			AddressesParam: map[string]interface{}{
				"type":           "StringList",
				"description":    "The addresses to unban: one IPv4 or IPv6 address per item.",
				"allowedPattern": AddressItemPattern,
				"minItems":       1,
				"maxItems":       AddressesMaxItems,
			},
			ExceptionSecondsParam: map[string]interface{}{
				"type":           "StringList",
				"description":    "One item: seconds an address stays excepted from a containing prefix that stays blocked for everyone else: 0 for the host default (30 x BLOCK_TIME), else 10 to 86400.",
				"default":        []interface{}{ssmdoc.ExceptionSecondsDefault},
				"allowedPattern": ssmdoc.ExceptionSecondsPattern,
				"minItems":       1,
				"maxItems":       1,
			},
			RemoveBlacklistedParam: map[string]interface{}{
				"type":           "StringList",
				"description":    "One item, true or false. SRE override: true also takes the addresses off sshguard's blacklist (they are left alone otherwise). Never set by the bot.",
				"default":        []interface{}{"false"},
				"allowedPattern": ssmdoc.RemoveBlacklistedPattern,
				"minItems":       1,
				"maxItems":       1,
			},
		},
		"mainSteps": []interface{}{shellStep(UnbanStepName, lines, timeoutSeconds)},
	}
	return doc, checkSize(doc)
}

// paramLines sets the shell variable v to the agent's rendering of the
// list parameter name, read through a quoted here-document: nothing in it is
// expanded, and a JSON-encoded list has no newline to end it early. The
// prefix keeps the line from being only the reference (the agent would put
// the list itself there) and is stripped again.
func paramLines(v, prefix, name string) []string {
	return []string{
		v + "=$(cat <<'" + paramsHeredocMarker + "'",
		prefix + "{{ " + name + " }}",
		paramsHeredocMarker,
		")",
		v + "=${" + v + "#" + prefix + "}",
	}
}

// ReportDocumentContent is the SSM Command document that runs
// host/sshguard-report.sh, which takes no input.
func ReportDocumentContent(script string, timeoutSeconds int) (map[string]interface{}, error) {
	lines := []string{
		"#!/bin/sh",
		"# Generated by the sshguard-unban CDK app from host/sshguard-report.sh.",
	}
	run, err := embedScript(script, "")
	if err != nil {
		return nil, fmt.Errorf("host/sshguard-report.sh: %w", err)
	}
	lines = append(lines, run...)
	doc := map[string]interface{}{
		"schemaVersion": "2.2",
		"description":   "Report every address or prefix sshguard blocks on this host (sshguard-unban). Prints one JSON object.",
		"mainSteps":     []interface{}{shellStep(ReportStepName, lines, timeoutSeconds)},
	}
	return doc, checkSize(doc)
}

func shellStep(name string, lines []string, timeoutSeconds int) map[string]interface{} {
	return map[string]interface{}{
		"action":       "aws:runShellScript",
		"name":         name,
		"precondition": map[string]interface{}{"StringEquals": []interface{}{"platformType", "Linux"}},
		"inputs": map[string]interface{}{
			"runCommand": toInterfaces(lines),
			// The agent kills the script after this long; the value is a
			// string as in AWS-RunShellScript.
			"timeoutSeconds": fmt.Sprint(timeoutSeconds),
		},
	}
}

// embedScript returns lines that write script verbatim to a private
// temporary file (a quoted here-document: no expansion) and run it with the
// interpreter named on its #! line, followed by args. The script runs
// exactly as in its own tests: its own process, its own traps and exit
// status, and stdin that is not the script text.
func embedScript(script, args string) ([]string, error) {
	if !strings.HasSuffix(script, "\n") {
		script += "\n"
	}
	body := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
	interp, err := interpreter(body[0])
	if err != nil {
		return nil, err
	}
	for i, l := range body {
		if strings.TrimRight(l, "\r") == scriptHeredocMarker {
			return nil, fmt.Errorf("line %d equals the here-document marker %s", i+1, scriptHeredocMarker)
		}
	}
	// The agent replaces {{ name }} in every runCommand line, and SSM
	// resolves {{ssm:...}} before that: the script must hold neither.
	if strings.Contains(script, "{{") {
		return nil, errors.New("contains \"{{\", which SSM would treat as a parameter reference")
	}
	run := interp + ` "$d/script"`
	if args != "" {
		run += " " + args
	}
	lines := []string{
		"umask 077",
		`d=$(mktemp -d) || { echo '{"error":"mktemp failed","code":"wrapper_failed"}'; exit 3; }`,
		`trap 'rm -rf "$d"' EXIT`,
		`cat > "$d/script" <<'` + scriptHeredocMarker + `'`,
	}
	lines = append(lines, body...)
	lines = append(lines, scriptHeredocMarker, run)
	return lines, nil
}

// interpreter turns a #! line into the command that runs the script file
// (the temporary file is not executable, and /tmp may be noexec).
func interpreter(first string) (string, error) {
	if !strings.HasPrefix(first, "#!") {
		return "", errors.New("first line is not a #! line")
	}
	f := strings.Fields(strings.TrimPrefix(first, "#!"))
	if len(f) == 0 || !strings.HasPrefix(f[0], "/") {
		return "", fmt.Errorf("unsupported #! line %q", first)
	}
	for _, w := range f {
		if strings.ContainsAny(w, "'\"`$\\;&|<>(){}*?[]~") {
			return "", fmt.Errorf("unsupported #! line %q", first)
		}
	}
	return strings.Join(f, " "), nil
}

func checkSize(doc map[string]interface{}) error {
	n := 0
	for _, s := range doc["mainSteps"].([]interface{}) {
		for _, l := range s.(map[string]interface{})["inputs"].(map[string]interface{})["runCommand"].([]interface{}) {
			n += len(l.(string)) + 1
		}
	}
	// Leave room for the rest of the document and JSON escaping.
	if n > commandDocumentLimit-8*1024 {
		return fmt.Errorf("command document too large (%d bytes of script) for SSM's 64 KB limit", n)
	}
	return nil
}

func toInterfaces(ss []string) []interface{} {
	out := make([]interface{}, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
