// Command unbanbot is the tool people use around the bot:
//
//	unbanbot local [--once MESSAGE] run the whole system locally and talk to the bot
//	unbanbot parse                 read a Chatwork message body on stdin, print the parse result as JSON
//	unbanbot sign --token TOKEN    read a webhook body on stdin, print its Chatwork signature
//
// Each subcommand is a small function over stdin/stdout so tests run it
// in-process.
package main

import (
	"fmt"
	"io"
	"os"
)

type command struct {
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"parse": {"read a Chatwork message body on stdin and print what the bot understands, as JSON", runParse},
	"sign":  {"read a webhook request body on stdin and print its X-ChatWorkWebhookSignature", runSign},
	"local": {"run the whole system on this machine (no AWS account) and talk to the bot", runLocal},
}

// order keeps the usage text stable.
var order = []string{"local", "parse", "sign"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "unbanbot: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: unbanbot COMMAND [flags]\n\ncommands:")
	for _, name := range order {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
}
