// Command cdk is the AWS CDK app for sshguard-unban: one stack with the
// Chatwork webhook, the unban and refresh state machines, their Lambda
// functions, the SSM documents run on the hosts, and their storage,
// schedule and alarms. Run it through the CDK CLI from the repository root
// (cdk.json says "go run ./cdk"); configuration comes from CDK context, see
// config.go and the README's "Deploy to AWS" section.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// StackName is the CloudFormation stack name.
const StackName = "SshguardUnban"

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sshguard-unban cdk:", err)
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	cfg, err := LoadConfig(app.Node())
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := FindRepoRoot(wd)
	if err != nil {
		return err
	}
	src, err := LoadSources(root)
	if err != nil {
		return err
	}
	// Environment-agnostic on purpose: the template uses AWS::Region and
	// AWS::AccountId, needs no lookups, and synthesizes offline without
	// credentials; `cdk deploy` picks the account and region from the
	// caller's profile.
	stack := NewUnbanStack(app, StackName, &StackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("sshguard-unban: Chatwork self-service unban for sshguard on EC2 hosts"),
		},
		Config:  cfg,
		Sources: src,
	})
	// -c nag=true runs the cdk-nag AwsSolutions pack during synth (the
	// tests always do): an unsuppressed finding then fails the synth.
	if v := app.Node().TryGetContext(jsii.String("nag")); v == true || v == "true" {
		awscdk.Aspects_Of(stack.Stack).Add(cdknag.NewAwsSolutionsChecks(nil), nil)
	}
	app.Synth(nil)
	return nil
}
