// Command bootstrap is the one binary behind every Lambda function of the
// stack: the function's handler name (_HANDLER, set by the provided.al2023
// runtime from the function's Handler property) picks the handler. One
// binary keeps the build, the asset and the cold-start code identical for all
// functions; lambdas/app holds the wiring.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"sshguard-unban/lambdas/app"
)

func main() {
	level := app.LogLevel(os.Getenv)
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})))

	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		slog.Error("cannot load AWS configuration", "error", err)
		os.Exit(1)
	}
	name := os.Getenv("_HANDLER")
	h, err := app.NewHandler(ctx, name, os.Getenv, cfg)
	if err != nil {
		slog.Error("cannot start", "handler", name, "error", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
