//go:build !linux

package dynalite

import "os/exec"

// killWithParent: only Linux has Pdeathsig; elsewhere the child ends when
// its stdin pipe closes with the parent.
func killWithParent(*exec.Cmd) {}
