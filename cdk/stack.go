package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// WebhookPathKeyParameter is the stack parameter holding the webhook
// path's secret segment (api.go).
const WebhookPathKeyParameter = "WebhookPathKey"

// StackProps configures NewUnbanStack.
type StackProps struct {
	awscdk.StackProps
	Config  Config
	Sources Sources
}

// UnbanStack exposes what tests and outputs need.
type UnbanStack struct {
	awscdk.Stack
	Functions      map[string]awslambda.Function // by handler name
	Unban, Refresh awsstepfunctions.StateMachine
	Bucket         awss3.Bucket
	HostPolicy     awsiam.ManagedPolicy
	// PolicyTable holds quotas, approvals and the member cache
	// (shared/policystore); grant it to the functions that need it.
	PolicyTable awsdynamodb.Table
}

// NewUnbanStack defines the whole service. Each construct group lives in its
// own file: storage.go (buckets, secrets), table.go (the policy table),
// documents.go (the SSM documents and who may send them), functions.go (the
// Lambdas and their grants), statemachines.go (the two machines and the
// refresh schedule), api.go (the webhook's HTTP API), alarms.go,
// hostpolicy.go and outputs.go.
func NewUnbanStack(scope constructs.Construct, id string, props *StackProps) *UnbanStack {
	cfg := props.Config
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	if missing := cfg.Missing(); len(missing) > 0 {
		awscdk.Annotations_Of(stack).AddWarningV2(jsii.String("sshguard-unban:missing-context"), jsii.String(
			"Not set: "+strings.Join(missing, ", ")+". The stack deploys, but the bot answers nobody until these are given with -c or in cdk.json."), nil)
	}
	s := &UnbanStack{Stack: stack}

	data := newStorage(stack, cfg)
	s.PolicyTable = newPolicyTable(stack, cfg)
	secrets := newChatworkSecrets(stack, cfg)
	docs := newDocuments(stack, cfg, props.Sources)
	httpAPI := newHTTPAPI(stack)
	fns := newFunctions(stack, cfg, props.Sources.LambdaDir, data, s.PolicyTable, secrets, docs, publicURL(httpAPI))
	s.Unban, s.Refresh = newStateMachines(stack, cfg, props.Sources, fns)
	fns.addAPIFunctions(s.Unban, data, s.PolicyTable)
	api := newWebhookAPI(stack, cfg, httpAPI, fns.byHandler)
	topic := newAlarms(stack, cfg, s.Unban, s.Refresh, fns.byHandler)
	s.HostPolicy = newHostPolicy(stack, data)
	newOutputs(stack, cfg, outputs{api: api, secrets: secrets, bucket: data, docs: docs, unban: s.Unban, refresh: s.Refresh, topic: topic, hostPolicy: s.HostPolicy})

	s.Functions, s.Bucket = fns.byHandler, data
	return s
}
