package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"sshguard-unban/shared/message"
)

// maxInput matches the webhook's body limit.
const maxInput = 64 << 10

func runParse(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	body, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
	if err != nil {
		fmt.Fprintln(stderr, "unbanbot parse:", err)
		return 1
	}
	if len(body) > maxInput {
		fmt.Fprintf(stderr, "unbanbot parse: message longer than %d bytes\n", maxInput)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(message.Parse(string(body))); err != nil {
		fmt.Fprintln(stderr, "unbanbot parse:", err)
		return 1
	}
	return 0
}
