package host

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The runnable scripts. Each is its own file plus common.sh, put in at its
// include line: SSM runs one self-contained script per document, and one
// copy of the shared part is what keeps the two from drifting apart.
const (
	UnbanScript  = "sshguard-unban.sh"
	ReportScript = "sshguard-report.sh"
	// CommonFile is the shared part; IncludeLine the line of a script it
	// replaces.
	CommonFile  = "common.sh"
	IncludeLine = "# @include common.sh"
)

// Scripts are the names Script and Assemble accept.
var Scripts = []string{UnbanScript, ReportScript}

//go:embed common.sh sshguard-unban.sh sshguard-report.sh
var sources embed.FS

// Script returns the runnable text of a script (UnbanScript or
// ReportScript), assembled from the sources compiled into this binary.
func Script(name string) (string, error) { return Assemble(sources, name) }

// Assemble builds a runnable script from the sources in src (a directory
// holding the script and common.sh): the script's one IncludeLine becomes
// the contents of common.sh. The CDK app assembles from the checked-out
// tree at synth time, the tests and the local mode from the embedded copy:
// the same function, so the documents run what the tests ran.
func Assemble(src fs.FS, name string) (string, error) {
	if !slices.Contains(Scripts, name) {
		return "", fmt.Errorf("host: no script %q", name)
	}
	body, err := fs.ReadFile(src, name)
	if err != nil {
		return "", fmt.Errorf("host: %w", err)
	}
	common, err := fs.ReadFile(src, CommonFile)
	if err != nil {
		return "", fmt.Errorf("host: %w", err)
	}
	if slices.Contains(lines(string(common)), IncludeLine) {
		return "", fmt.Errorf("host: %s includes itself", CommonFile)
	}
	var out strings.Builder
	n := 0
	for _, l := range lines(string(body)) {
		if l == IncludeLine {
			n++
			out.WriteString(strings.TrimSuffix(string(common), "\n") + "\n")
			continue
		}
		out.WriteString(l + "\n")
	}
	if n != 1 {
		return "", fmt.Errorf("host: %s has %d %q lines, want 1", name, n, IncludeLine)
	}
	return out.String(), nil
}

// WriteScript writes the assembled script to dir/name, executable, and
// returns its path: how tests and the local mode run it.
func WriteScript(dir, name string) (string, error) {
	s, err := Script(name)
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", errors.New("host: WriteScript needs a directory")
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
		return "", fmt.Errorf("host: %w", err)
	}
	return p, nil
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
