package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"sshguard-unban/shared/signature"
)

func runSign(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	token := fs.String("token", "", "the webhook token from Chatwork's webhook settings (default: $CHATWORK_WEBHOOK_TOKEN, which keeps it out of the process list)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *token == "" {
		*token = os.Getenv("CHATWORK_WEBHOOK_TOKEN")
	}
	v, err := signature.New(*token)
	if err != nil {
		fmt.Fprintln(stderr, "unbanbot sign: give the webhook token (base64) with --token or $CHATWORK_WEBHOOK_TOKEN")
		return 2
	}
	// The exact bytes: a trailing newline from echo is part of the body
	// curl sends with --data-binary @-, so it is signed too.
	body, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
	if err != nil {
		fmt.Fprintln(stderr, "unbanbot sign:", err)
		return 1
	}
	fmt.Fprintln(stdout, v.Sign(body))
	return 0
}
