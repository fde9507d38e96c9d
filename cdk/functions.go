package main

import (
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/history"
)

// fnSpec sizes one function. Go on arm64 needs little memory; the larger
// ones get more because Lambda's CPU share grows with memory and they make
// TLS calls to several services.
//
// Each task function's timeout is below the TimeoutSeconds of every Task
// state that invokes it (statemachine/*.asl.json: 30 s for parse, 60 s for
// the others, 120 s for refresh-list's store): the function is stopped
// cleanly by Lambda before Step Functions gives up on it, so a late
// invocation can never write after the state machine has moved on.
// stack_test.go checks this against the ASL files.
type fnSpec struct {
	handler string
	desc    string
	timeout float64 // seconds
	memory  float64 // MB
}

var fnSpecs = []fnSpec{
	// API Gateway waits at most 30 s and Chatwork wants a quick 2xx; the
	// webhook only verifies the signature and starts an execution.
	{functions.Webhook, "Verifies Chatwork webhooks and starts the unban state machine", 10, 256},
	{functions.Parse, "Extracts addresses from a Chatwork message", 5, 128},
	{functions.Lookup, "Finds which hosts' ban lists block the addresses", 30, 256},
	{functions.Unban, "Sends the unban SSM command", 30, 256},
	{functions.WaitForCommand, "Polls SSM command invocations and reads their output", 30, 256},
	// Reads and writes one list per host, every minute.
	{functions.RefreshList, "Sends the report SSM command and stores ban lists", 50, 512},
	// Room for one bounded wait on Chatwork's rate limit.
	{functions.Notify, "Posts replies and notices to Chatwork", 45, 256},
	// A few DynamoDB writes and, now and then, Chatwork's member list.
	{functions.Policy, "Decides who may unban what, and carries out SREs' approvals", 20, 256},
	// Reads the index and every host list, 16 at a time.
	{functions.Page, "Serves /ip and the SREs' ban-list page", 15, 256},
}

// apiOnly are the functions only API Gateway invokes: they are defined
// after the unban state machine, whose ARN they know (addAPIFunctions).
func apiOnly(handler string) bool { return handler == functions.Webhook || handler == functions.Page }

// constructID is the function's construct id, from the one table.
func constructID(handler string) string {
	f, ok := functions.ByHandler(handler)
	if !ok {
		panic("cdk: no function " + handler + " in shared/functions")
	}
	return f.Construct
}

// lambdaFunctions are the stack's functions and what they are built from.
type lambdaFunctions struct {
	byHandler map[string]awslambda.Function
	stack     awscdk.Stack
	cfg       Config
	code      awslambda.Code
	deploy    app.Deployment
	secrets   chatworkSecrets
}

// newFunctions defines every task function with its own role and log
// group, and grants each exactly what its handler calls. The webhook comes
// later (addWebhook): it needs the unban state machine's ARN, and the
// machine needs the task functions' ARNs.
func newFunctions(stack awscdk.Stack, cfg Config, lambdaDir string, bucket awss3.Bucket, table awsdynamodb.Table, secrets chatworkSecrets, docs documents, publicURL string) *lambdaFunctions {
	f := &lambdaFunctions{
		byHandler: map[string]awslambda.Function{},
		stack:     stack,
		cfg:       cfg,
		// One asset for all functions: the same reproducible bootstrap binary.
		code:    awslambda.Code_FromAsset(jsii.String(lambdaDir), nil),
		secrets: secrets,
		// The one source of every function's environment is lambdas/app;
		// CloudFormation tokens travel through it as strings.
		deploy: app.Deployment{
			WebhookSecretID: *secrets.webhook.id,
			APISecretID:     *secrets.api.id,
			PageSecretID:    *secrets.page.id,
			PublicURL:       publicURL,
			BotAccountID:    cfg.BotAccountID,
			AllowedRooms:    cfg.AllowedRooms,
			NotifyRoomID:    cfg.NotifyRoomID,
			SRERoomID:       cfg.SRERoomID,
			Locale:          cfg.Locale,
			Bucket:          *bucket.BucketName(),
			UnbanDocument:   *docs.unban.Ref(),
			ReportDocument:  *docs.report.Ref(),
			TagKey:          cfg.TargetTagKey,
			TagValue:        cfg.TargetTagValue,
			Freshness:       time.Duration(cfg.FreshnessSeconds) * time.Second,
			CommandTimeout:  time.Duration(cfg.CommandTimeoutSeconds) * time.Second,
			PolicyTable:     *table.TableName(),
			Policy:          cfg.policy(),
		},
	}
	for _, spec := range fnSpecs {
		if !apiOnly(spec.handler) {
			f.add(spec)
		}
	}
	f.grantTasks(bucket, docs)
	f.grantPolicyTable(table)
	f.grantTaskResponse()
	return f
}

// grantPolicyTable: the policy task reads and writes every item kind
// (quotas, the member cache, approvals); notify only approval items, which
// it creates and renews (dynamodb:LeadingKeys on the key's prefix).
func (f *lambdaFunctions) grantPolicyTable(table awsdynamodb.Table) {
	items := []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
	f.byHandler[functions.Policy].AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PolicyItems"),
		Actions:   jsii.Strings(items...),
		Resources: &[]*string{table.TableArn()},
	}))
	notify := f.byHandler[functions.Notify]
	notify.AddToRolePolicy(leadingKeys("ApprovalItems", table, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, "approval#*"))
	// The request history: notify appends to it and never reads it (IAM
	// cannot limit an update expression to list_append).
	notify.AddToRolePolicy(leadingKeys("AppendHistory", table, []string{"dynamodb:UpdateItem"}, history.KeyPrefix+"*"))
}

// leadingKeys allows actions on the table's items whose key matches
// pattern. ForAllValues alone is true for a request without the key: Null
// makes the key required (the IAM evaluation test checks both).
func leadingKeys(sid string, table awsdynamodb.Table, actions []string, pattern string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(sid),
		Actions:   jsii.Strings(actions...),
		Resources: &[]*string{table.TableArn()},
		Conditions: &map[string]interface{}{
			"ForAllValues:StringLike": map[string]interface{}{"dynamodb:LeadingKeys": []string{pattern}},
			"Null":                    map[string]interface{}{"dynamodb:LeadingKeys": "false"},
		},
	})
}

// grantTaskResponse lets the policy task resume executions waiting for an
// SRE (SendTaskSuccess/Failure). These actions take no resource (Service
// Authorization Reference; the IAM evaluation test's simulator refuses a
// state machine ARN for them): what limits them is the task token, which
// only the waiting execution's notify call ever saw and the policy table
// keeps, and that only this role holds the permission.
func (f *lambdaFunctions) grantTaskResponse() {
	role := f.byHandler[functions.Policy].Role()
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("AnswerApprovals"),
		Actions:   jsii.Strings("states:SendTaskSuccess", "states:SendTaskFailure"),
		Resources: jsii.Strings("*"),
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("states:SendTaskSuccess and states:SendTaskFailure support no resource-level permissions; a task token (unguessable, known only to the waiting execution and the policy table) names the one execution they act on."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
}

// addAPIFunctions defines the functions behind the HTTP API: the webhook,
// which may start the unban state machine and read its token, and the
// page, which reads the ban lists, the request history and its link key,
// and nothing else.
func (f *lambdaFunctions) addAPIFunctions(unban awsstepfunctions.StateMachine, bucket awss3.Bucket, table awsdynamodb.Table) {
	f.deploy.StateMachineARN = *unban.StateMachineArn()
	for _, spec := range fnSpecs {
		if apiOnly(spec.handler) {
			f.add(spec)
		}
	}
	unban.GrantStartExecution(f.byHandler[functions.Webhook])
	f.grantSecret(functions.Webhook, f.secrets.webhook)

	page := f.byHandler[functions.Page]
	page.AddToRolePolicy(listBucket(bucket))
	page.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadBanLists"),
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &[]*string{bucket.ArnForObjects(jsii.String(BanlistPrefix + "*"))},
	}))
	page.AddToRolePolicy(leadingKeys("ReadHistory", table, []string{"dynamodb:BatchGetItem"}, history.KeyPrefix+"*"))
	f.grantSecret(functions.Page, f.secrets.page)
	f.suppressObjects(functions.Page, BanlistPrefix)
}

func (f *lambdaFunctions) add(spec fnSpec) {
	id := constructID(spec.handler)
	vars := map[string]*string{"LOG_LEVEL": jsii.String(f.cfg.LogLevel)}
	for k, v := range app.Environment(spec.handler, f.deploy) {
		vars[k] = jsii.String(v)
	}
	// Own role per function: no managed policies, only the statements
	// granted below plus what CDK adds for logs and X-Ray.
	role := awsiam.NewRole(f.stack, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("sshguard-unban " + spec.handler + " function"),
	})
	logGroup := awslogs.NewLogGroup(f.stack, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		Retention: f.cfg.Retention(),
	})
	logGroup.GrantWrite(role)
	fp := &awslambda.FunctionProps{
		Description:  jsii.String(spec.desc),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String(spec.handler),
		Code:         f.code,
		Role:         role,
		LogGroup:     logGroup,
		Timeout:      awscdk.Duration_Seconds(jsii.Number(spec.timeout)),
		MemorySize:   jsii.Number(spec.memory),
		Tracing:      awslambda.Tracing_ACTIVE,
		Environment:  &vars,
	}
	if spec.handler == functions.Webhook && f.cfg.WebhookReservedConcurrency > 0 {
		// The webhook is the only function the internet can trigger: a
		// flood of (even unsigned) requests then cannot take the account's
		// whole Lambda concurrency, nor start executions faster than this
		// many at a time.
		fp.ReservedConcurrentExecutions = jsii.Number(float64(f.cfg.WebhookReservedConcurrency))
	}
	f.byHandler[spec.handler] = awslambda.NewFunction(f.stack, jsii.String(id), fp)
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support resource-level permissions, so AWS requires Resource \"*\" for them."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
}

// listBucket (no prefix condition) is granted to every function that reads
// objects which may not exist yet (a host's first list, a reply mark, a
// command's empty stdout): without it S3 answers 403 instead of 404 and the
// code could not tell "missing" from "denied". It reveals key names only,
// in this service's own bucket.
func listBucket(bucket awss3.Bucket) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ListDataBucket"),
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &[]*string{bucket.BucketArn()},
	})
}

// grantTasks gives each task function the bucket prefixes, SSM calls and
// secret it uses, and nothing else.
func (f *lambdaFunctions) grantTasks(bucket awss3.Bucket, docs documents) {
	listBucket := listBucket(bucket)
	objects := func(sid string, actions []string, prefix string) awsiam.PolicyStatement {
		return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(sid),
			Actions:   jsii.Strings(actions...),
			Resources: &[]*string{bucket.ArnForObjects(jsii.String(prefix + "*"))},
		})
	}
	grant := func(handler string, stmts ...awsiam.PolicyStatement) {
		for _, st := range stmts {
			f.byHandler[handler].AddToRolePolicy(st)
		}
	}
	rw := []string{"s3:GetObject", "s3:PutObject"}
	grant(functions.Lookup, listBucket, objects("ReadBanLists", []string{"s3:GetObject"}, BanlistPrefix))
	// unban records the command requests for the same addresses share.
	grant(functions.Unban, docs.sendCommand(docs.unban)...)
	grant(functions.Unban, listBucket, objects("ReadWriteSharedCommands", rw, app.CoalescePrefix))
	// wait-for-command reads the hosts' output, writes each command's
	// shared outcome and its poller's lease, and marks the shared command
	// done.
	grant(functions.WaitForCommand, listBucket,
		objects("ReadCommandOutput", []string{"s3:GetObject"}, CommandOutputPrefix),
		objects("ReadWriteCommandState", rw, app.CommandsPrefix))
	// These read calls act on command ids or on the account's managed
	// instances as a whole: they support no resource-level permissions.
	grant(functions.WaitForCommand, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadCommandInvocations"),
		Actions:   jsii.Strings("ssm:ListCommandInvocations", "ssm:GetCommandInvocation", "ssm:DescribeInstanceInformation"),
		Resources: jsii.Strings("*"),
	}))
	grant(functions.RefreshList, docs.sendCommand(docs.report)...)
	grant(functions.RefreshList, listBucket,
		objects("ReadWriteBanLists", []string{"s3:GetObject", "s3:PutObject"}, BanlistPrefix),
		objects("ReadCommandOutput", []string{"s3:GetObject"}, CommandOutputPrefix))
	grant(functions.Notify, listBucket, objects("ReadWriteReplyMarks", rw, ReplyMarkPrefix),
		objects("ReadWriteOutbox", []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, app.OutboxPrefix))
	f.grantSecret(functions.Notify, f.secrets.api)
	// notify signs the page links the bot gives SREs.
	f.grantSecret(functions.Notify, f.secrets.page)
	// The policy task reads a room's members (organization ids) with it.
	f.grantSecret(functions.Policy, f.secrets.api)

	f.suppressObjects(functions.Lookup, BanlistPrefix)
	f.suppressObjects(functions.Unban, app.CoalescePrefix)
	f.suppressObjects(functions.WaitForCommand, CommandOutputPrefix, app.CommandsPrefix)
	f.suppressObjects(functions.RefreshList, BanlistPrefix, CommandOutputPrefix)
	f.suppressObjects(functions.Notify, ReplyMarkPrefix, app.OutboxPrefix)
	for _, h := range []string{functions.Unban, functions.RefreshList} {
		cdknag.NagSuppressions_AddResourceSuppressions(f.byHandler[h].Role(), &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("ssm:SendCommand on instance/* is conditioned on ssm:resourceTag/" + f.cfg.TargetTagKey + " = " + f.cfg.TargetTagValue + ", so only hosts opted in with that tag are reachable; the statement beside it names the one SSM document allowed."),
			AppliesTo: &[]interface{}{
				"Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*",
			},
		}}, jsii.Bool(true))
	}
	cdknag.NagSuppressions_AddResourceSuppressions(f.byHandler[functions.WaitForCommand].Role(), &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("ssm:ListCommandInvocations, ssm:GetCommandInvocation and ssm:DescribeInstanceInformation support no resource-level permissions (Service Authorization Reference), so Resource \"*\" is required; all three are read-only."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
}

// grantSecret lets one function read one token's secret. For a created
// secret that is GetSecretValue on it, and Decrypt under the tokens' key in
// the key policy: for this role only, only through Secrets Manager, and only
// for this secret (Secrets Manager passes the secret's ARN as encryption
// context). An imported secret's key is managed outside the stack.
func (f *lambdaFunctions) grantSecret(handler string, s chatworkSecret) {
	fn := f.byHandler[handler]
	if !s.imported {
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("Read" + s.sid),
			Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
			Resources: &[]*string{s.id},
		}))
		f.secrets.key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("Decrypt" + constructID(handler) + s.sid),
			Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(fn.Role().RoleArn())},
			Actions:    jsii.Strings("kms:Decrypt"),
			Resources:  jsii.Strings("*"), // in a key policy "*" means this key
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"kms:ViaService": awscdk.Fn_Join(jsii.String(""), &[]*string{
					jsii.String("secretsmanager."), f.stack.Region(), jsii.String(".amazonaws.com")})},
				"StringLike": map[string]interface{}{"kms:EncryptionContext:SecretARN": s.arnPattern},
			},
		}), nil)
		return
	}
	s.secret.GrantRead(fn, nil)
	// Secret_FromSecretNameV2 grants on NAME-?????? (the random suffix
	// Secrets Manager appends): this matches exactly that one secret.
	cdknag.NagSuppressions_AddResourceSuppressions(fn.Role(), &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("The secret is referenced by name; \"-??????\" matches only the 6-character suffix Secrets Manager appends to that name."),
		AppliesTo: &[]interface{}{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:.*-\?\?\?\?\?\?$/`)}},
	}}, jsii.Bool(true))
}

func (f *lambdaFunctions) suppressObjects(handler string, prefixes ...string) {
	cdknag.NagSuppressions_AddResourceSuppressions(f.byHandler[handler].Role(), &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Object access is limited to this service's bucket and to the key prefix(es) the function works on (" + strings.Join(prefixes, ", ") + "); the object names under them (instance ids, command ids, execution names) are not known in advance."),
		AppliesTo: objectWildcards(prefixes...),
	}}, jsii.Bool(true))
}

// objectWildcards matches, in cdk-nag's findings, object wildcards under one
// prefix of the data bucket: the narrowest S3 grant possible (keys contain
// instance ids, command ids and execution names).
func objectWildcards(prefixes ...string) *[]interface{} {
	var out []interface{}
	for _, p := range prefixes {
		out = append(out, &cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<DataBucket[0-9A-F]{8}\.Arn>\/` + strings.TrimSuffix(p, "/") + `\/\*$/`)})
	}
	return &out
}
