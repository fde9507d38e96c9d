package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Key prefixes in the one bucket. Each function is granted only the
// prefixes it uses.
const (
	BanlistPrefix       = "banlists/"
	CommandOutputPrefix = "command-output/"
	ReplyMarkPrefix     = "replies/"

	// Command output is read once, within minutes, by wait-for-command or
	// refresh-list; a week leaves room to look at a failed run.
	commandOutputExpiryDays = 7
	// A reply mark must outlive any redrive of the execution that wrote it
	// (redrive is possible for 14 days after a failure).
	replyMarkExpiryDays = 30

	// The webhook route Chatwork posts to.
	WebhookPath = "/chatwork"
)

// Handler names: the one bootstrap binary dispatches on _HANDLER.
const (
	HandlerWebhook        = "webhook"
	HandlerParse          = "parse"
	HandlerLookup         = "lookup"
	HandlerUnban          = "unban"
	HandlerWaitForCommand = "wait-for-command"
	HandlerRefreshList    = "refresh-list"
	HandlerNotify         = "notify"
)

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
}

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
	id      string
	desc    string
	timeout float64 // seconds
	memory  float64 // MB
}

var fnSpecs = []fnSpec{
	// API Gateway waits at most 30 s and Chatwork wants a quick 2xx; the
	// webhook only verifies the signature and starts an execution.
	{HandlerWebhook, "WebhookFunction", "Verifies Chatwork webhooks and starts the unban state machine", 10, 256},
	{HandlerParse, "ParseFunction", "Extracts addresses from a Chatwork message", 5, 128},
	{HandlerLookup, "LookupFunction", "Finds which hosts' ban lists block the addresses", 30, 256},
	{HandlerUnban, "UnbanFunction", "Sends the unban SSM command", 30, 256},
	{HandlerWaitForCommand, "WaitForCommandFunction", "Polls SSM command invocations and reads their output", 30, 256},
	// Reads and writes one list per host, every minute.
	{HandlerRefreshList, "RefreshListFunction", "Sends the report SSM command and stores ban lists", 50, 512},
	// Room for one bounded wait on Chatwork's rate limit.
	{HandlerNotify, "NotifyFunction", "Posts replies and notices to Chatwork", 45, 256},
}

// NewUnbanStack defines the whole service.
func NewUnbanStack(scope constructs.Construct, id string, props *StackProps) *UnbanStack {
	cfg := props.Config
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	s := &UnbanStack{Stack: stack, Functions: map[string]awslambda.Function{}}
	if missing := cfg.Missing(); len(missing) > 0 {
		awscdk.Annotations_Of(stack).AddWarningV2(jsii.String("sshguard-unban:missing-context"), jsii.String(
			"Not set: "+strings.Join(missing, ", ")+". The stack deploys, but the bot answers nobody until these are given with -c or in cdk.json."), nil)
	}
	retention := cfg.Retention()

	// ---- Storage -------------------------------------------------------

	// Server access logs for the data bucket. Its own objects are not
	// logged: logging the log bucket into itself would loop, and into a
	// third bucket would only move the question.
	logBucket := awss3.NewBucket(stack, jsii.String("AccessLogBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		// S3 server access log delivery supports only SSE-S3 on the target.
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:         jsii.String("expire-access-logs"),
			Expiration: awscdk.Duration_Days(jsii.Number(float64(cfg.LogRetentionDays))),
		}},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(logBucket, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-S1"),
		Reason: jsii.String("This bucket is the server-access-log destination of the data bucket; logging it into itself would create a feedback loop, and access to it is limited to the account's administrators and the S3 log delivery service."),
	}}, jsii.Bool(true))

	// One bucket for ban lists, SSM command output and reply marks.
	// Encryption is SSE-S3, not KMS: the SSM agent on every host writes
	// command output with the instance role, which would then need
	// kms:GenerateDataKey on a key shared with the Lambdas; the objects are
	// IP addresses and host names, and refresh reads and writes them every
	// minute, so per-request KMS charges would buy no real protection.
	bucket := awss3.NewBucket(stack, jsii.String("DataBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		// ACLs off: the agent's bucket-owner-full-control ACL is then moot
		// and every object belongs to this account.
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: logBucket,
		ServerAccessLogsPrefix: jsii.String("data-bucket/"),
		// No versioning: ban lists are rewritten every minute from the hosts
		// themselves, so old versions would only cost money.
		LifecycleRules: &[]*awss3.LifecycleRule{
			{
				Id:         jsii.String("expire-command-output"),
				Prefix:     jsii.String(CommandOutputPrefix),
				Expiration: awscdk.Duration_Days(jsii.Number(commandOutputExpiryDays)),
			},
			{
				Id:         jsii.String("expire-reply-marks"),
				Prefix:     jsii.String(ReplyMarkPrefix),
				Expiration: awscdk.Duration_Days(jsii.Number(replyMarkExpiryDays)),
			},
			{
				Id:                                  jsii.String("abort-incomplete-uploads"),
				AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
			},
		},
	})
	s.Bucket = bucket

	// ---- Secret --------------------------------------------------------

	// The Chatwork tokens. By default the stack creates the secret with a
	// CloudFormation-generated random webhook_token and an empty api_token:
	// no token value is in the code or the template, the functions fail
	// closed (shared/secrets reports the secret as incomplete, so the
	// webhook rejects every request) until an operator writes the real
	// tokens with `aws secretsmanager put-secret-value`, and the secret's
	// name is generated, so deleting and re-creating the stack never clashes
	// with a secret still in its recovery window. With -c secretName=NAME
	// the stack uses an existing secret instead (managed outside the stack).
	var secret awssecretsmanager.ISecret
	var secretID *string
	if cfg.SecretName == "" {
		created := awssecretsmanager.NewSecret(stack, jsii.String("ChatworkSecret"), &awssecretsmanager.SecretProps{
			Description: jsii.String(`Chatwork tokens for sshguard-unban: {"api_token":"…","webhook_token":"…"}. Set with put-secret-value.`),
			GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
				SecretStringTemplate: jsii.String(`{"api_token":""}`),
				GenerateStringKey:    jsii.String("webhook_token"),
				ExcludePunctuation:   jsii.Bool(true),
				PasswordLength:       jsii.Number(32),
			},
		})
		cdknag.NagSuppressions_AddResourceSuppressions(created, &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-SMG4"),
			Reason: jsii.String("The secret holds Chatwork API and webhook tokens that are issued by Chatwork, not by AWS; there is no rotation Lambda that could mint new ones. Operators rotate them in Chatwork and write them with put-secret-value (README)."),
		}}, jsii.Bool(true))
		secret = created
		secretID = created.SecretArn()
	} else {
		secret = awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String("ChatworkSecret"), jsii.String(cfg.SecretName))
		secretID = jsii.String(cfg.SecretName)
	}

	// ---- SSM documents -------------------------------------------------

	unbanContent, err := UnbanDocumentContent(props.Sources.UnbanScript, cfg.CommandTimeoutSeconds)
	if err != nil {
		panic(err)
	}
	reportContent, err := ReportDocumentContent(props.Sources.ReportScript, cfg.CommandTimeoutSeconds)
	if err != nil {
		panic(err)
	}
	// Names are generated: a content change replaces the document under a
	// new name and the functions' environment follows.
	unbanDoc := awsssm.NewCfnDocument(stack, jsii.String("UnbanDocument"), &awsssm.CfnDocumentProps{
		DocumentType:   jsii.String("Command"),
		DocumentFormat: jsii.String("JSON"),
		Content:        unbanContent,
	})
	reportDoc := awsssm.NewCfnDocument(stack, jsii.String("ReportDocument"), &awsssm.CfnDocumentProps{
		DocumentType:   jsii.String("Command"),
		DocumentFormat: jsii.String("JSON"),
		Content:        reportContent,
	})
	documentArn := func(d awsssm.CfnDocument) *string {
		return stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("document"), ResourceName: d.Ref()})
	}
	// SendCommand is allowed on instances carrying the target tag only, and
	// with one named document only: the functions cannot run
	// AWS-RunShellScript or anything else, nor reach untagged hosts.
	instanceArn := stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ec2"), Resource: jsii.String("instance"), ResourceName: jsii.String("*")})
	sendCommand := func(doc awsssm.CfnDocument) []awsiam.PolicyStatement {
		return []awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("SendCommandDocument"),
				Actions:   jsii.Strings("ssm:SendCommand"),
				Resources: &[]*string{documentArn(doc)},
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("SendCommandTaggedInstances"),
				Actions:   jsii.Strings("ssm:SendCommand"),
				Resources: &[]*string{instanceArn},
				Conditions: &map[string]interface{}{
					"StringEquals": map[string]interface{}{
						"ssm:resourceTag/" + cfg.TargetTagKey: cfg.TargetTagValue,
					},
				},
			}),
		}
	}

	// ---- Lambda functions ----------------------------------------------

	// One asset for all functions: the same reproducible bootstrap binary.
	code := awslambda.Code_FromAsset(jsii.String(props.Sources.LambdaDir), nil)
	env := map[string]map[string]string{
		HandlerWebhook: {
			"BOT_ACCOUNT_ID": cfg.BotAccountID,
			"ALLOWED_ROOMS":  strings.Join(cfg.AllowedRooms, ","),
		},
		HandlerParse: {},
		HandlerLookup: {
			"BANLIST_PREFIX":    BanlistPrefix,
			"FRESHNESS_SECONDS": fmt.Sprint(cfg.FreshnessSeconds),
		},
		HandlerUnban: {
			"TARGET_TAG_KEY":          cfg.TargetTagKey,
			"TARGET_TAG_VALUE":        cfg.TargetTagValue,
			"COMMAND_OUTPUT_PREFIX":   CommandOutputPrefix,
			"COMMAND_TIMEOUT_SECONDS": fmt.Sprint(cfg.CommandTimeoutSeconds),
		},
		HandlerWaitForCommand: {
			"COMMAND_OUTPUT_PREFIX": CommandOutputPrefix,
		},
		HandlerRefreshList: {
			"TARGET_TAG_KEY":          cfg.TargetTagKey,
			"TARGET_TAG_VALUE":        cfg.TargetTagValue,
			"BANLIST_PREFIX":          BanlistPrefix,
			"COMMAND_OUTPUT_PREFIX":   CommandOutputPrefix,
			"COMMAND_TIMEOUT_SECONDS": fmt.Sprint(cfg.CommandTimeoutSeconds),
		},
		HandlerNotify: {
			"NOTIFY_ROOM_ID":    cfg.NotifyRoomID,
			"SRE_ROOM_ID":       cfg.SRERoomID,
			"LOCALE":            cfg.Locale,
			"REPLY_MARK_PREFIX": ReplyMarkPrefix,
		},
	}
	// Values that are CloudFormation tokens.
	tokenEnv := map[string]map[string]*string{
		HandlerWebhook:        {"CHATWORK_SECRET_ID": secretID},
		HandlerLookup:         {"BANLIST_BUCKET": bucket.BucketName()},
		HandlerUnban:          {"UNBAN_DOCUMENT": unbanDoc.Ref(), "COMMAND_OUTPUT_BUCKET": bucket.BucketName()},
		HandlerWaitForCommand: {"COMMAND_OUTPUT_BUCKET": bucket.BucketName()},
		HandlerRefreshList:    {"REPORT_DOCUMENT": reportDoc.Ref(), "BANLIST_BUCKET": bucket.BucketName(), "COMMAND_OUTPUT_BUCKET": bucket.BucketName()},
		HandlerNotify:         {"CHATWORK_SECRET_ID": secretID, "BANLIST_BUCKET": bucket.BucketName()},
	}

	for _, spec := range fnSpecs {
		vars := map[string]*string{"LOG_LEVEL": jsii.String(cfg.LogLevel)}
		for k, v := range env[spec.handler] {
			vars[k] = jsii.String(v)
		}
		for k, v := range tokenEnv[spec.handler] {
			vars[k] = v
		}
		// Own role per function: no managed policies, only the statements
		// granted below plus what CDK adds for logs and X-Ray.
		role := awsiam.NewRole(stack, jsii.String(spec.id+"Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("sshguard-unban " + spec.handler + " function"),
		})
		logGroup := awslogs.NewLogGroup(stack, jsii.String(spec.id+"Logs"), &awslogs.LogGroupProps{
			Retention: retention,
		})
		logGroup.GrantWrite(role)
		fp := &awslambda.FunctionProps{
			Description:  jsii.String(spec.desc),
			Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture: awslambda.Architecture_ARM_64(),
			Handler:      jsii.String(spec.handler),
			Code:         code,
			Role:         role,
			LogGroup:     logGroup,
			Timeout:      awscdk.Duration_Seconds(jsii.Number(spec.timeout)),
			MemorySize:   jsii.Number(spec.memory),
			Tracing:      awslambda.Tracing_ACTIVE,
			Environment:  &vars,
		}
		if spec.handler == HandlerWebhook && cfg.WebhookReservedConcurrency > 0 {
			// The webhook is the only function the internet can trigger:
			// a flood of (even unsigned) requests then cannot take the
			// account's whole Lambda concurrency, nor start executions
			// faster than this many at a time.
			fp.ReservedConcurrentExecutions = jsii.Number(float64(cfg.WebhookReservedConcurrency))
		}
		fn := awslambda.NewFunction(stack, jsii.String(spec.id), fp)
		s.Functions[spec.handler] = fn
		cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String("Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support resource-level permissions, so AWS requires Resource \"*\" for them."),
			AppliesTo: &[]interface{}{"Resource::*"},
		}}, jsii.Bool(true))
	}
	fns := s.Functions

	// Bucket access, by prefix. s3:ListBucket (no prefix condition) is
	// granted to every function that reads objects which may not exist yet
	// (a host's first list, a reply mark, a command's empty stdout): without
	// it S3 answers 403 instead of 404 and the code could not tell "missing"
	// from "denied". It reveals key names only, in this service's own bucket.
	listBucket := awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ListDataBucket"),
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &[]*string{bucket.BucketArn()},
	})
	objects := func(sid string, actions []string, prefix string) awsiam.PolicyStatement {
		return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(sid),
			Actions:   jsii.Strings(actions...),
			Resources: &[]*string{bucket.ArnForObjects(jsii.String(prefix + "*"))},
		})
	}
	grant := func(handler string, stmts ...awsiam.PolicyStatement) {
		for _, st := range stmts {
			fns[handler].AddToRolePolicy(st)
		}
	}
	grant(HandlerLookup, listBucket, objects("ReadBanLists", []string{"s3:GetObject"}, BanlistPrefix))
	grant(HandlerUnban, sendCommand(unbanDoc)...)
	grant(HandlerWaitForCommand, listBucket, objects("ReadCommandOutput", []string{"s3:GetObject"}, CommandOutputPrefix))
	// These two read calls act on command ids, not on resources:
	// they support no resource-level permissions.
	grant(HandlerWaitForCommand, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadCommandInvocations"),
		Actions:   jsii.Strings("ssm:ListCommandInvocations", "ssm:GetCommandInvocation"),
		Resources: jsii.Strings("*"),
	}))
	grant(HandlerRefreshList, sendCommand(reportDoc)...)
	grant(HandlerRefreshList, listBucket,
		objects("ReadWriteBanLists", []string{"s3:GetObject", "s3:PutObject"}, BanlistPrefix),
		objects("ReadCommandOutput", []string{"s3:GetObject"}, CommandOutputPrefix))
	grant(HandlerNotify, listBucket, objects("ReadWriteReplyMarks", []string{"s3:GetObject", "s3:PutObject"}, ReplyMarkPrefix))
	secret.GrantRead(fns[HandlerWebhook], nil)
	secret.GrantRead(fns[HandlerNotify], nil)

	// Object wildcards under one prefix are the narrowest S3 grant possible
	// (keys contain instance ids, command ids and execution names).
	objectWildcards := func(prefixes ...string) *[]interface{} {
		var out []interface{}
		for _, p := range prefixes {
			out = append(out, &cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<DataBucket[0-9A-F]{8}\.Arn>\/` + strings.TrimSuffix(p, "/") + `\/\*$/`)})
		}
		return &out
	}
	suppressObjects := func(handler string, prefixes ...string) {
		cdknag.NagSuppressions_AddResourceSuppressions(fns[handler].Role(), &[]*cdknag.NagPackSuppression{{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String("Object access is limited to this service's bucket and to the key prefix(es) the function works on (" + strings.Join(prefixes, ", ") + "); the object names under them (instance ids, command ids, execution names) are not known in advance."),
			AppliesTo: objectWildcards(prefixes...),
		}}, jsii.Bool(true))
	}
	suppressObjects(HandlerLookup, BanlistPrefix)
	suppressObjects(HandlerWaitForCommand, CommandOutputPrefix)
	suppressObjects(HandlerRefreshList, BanlistPrefix, CommandOutputPrefix)
	suppressObjects(HandlerNotify, ReplyMarkPrefix)
	for _, h := range []string{HandlerUnban, HandlerRefreshList} {
		cdknag.NagSuppressions_AddResourceSuppressions(fns[h].Role(), &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("ssm:SendCommand on instance/* is conditioned on ssm:resourceTag/" + cfg.TargetTagKey + " = " + cfg.TargetTagValue + ", so only hosts opted in with that tag are reachable; the statement beside it names the one SSM document allowed."),
			AppliesTo: &[]interface{}{
				"Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*",
			},
		}}, jsii.Bool(true))
	}
	cdknag.NagSuppressions_AddResourceSuppressions(fns[HandlerWaitForCommand].Role(), &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("ssm:ListCommandInvocations and ssm:GetCommandInvocation support no resource-level permissions (Service Authorization Reference), so Resource \"*\" is required; both are read-only."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	if cfg.SecretName != "" {
		// Secret_FromSecretNameV2 grants on NAME-?????? (the random suffix
		// Secrets Manager appends): this matches exactly that one secret.
		for _, h := range []string{HandlerWebhook, HandlerNotify} {
			cdknag.NagSuppressions_AddResourceSuppressions(fns[h].Role(), &[]*cdknag.NagPackSuppression{{
				Id:        jsii.String("AwsSolutions-IAM5"),
				Reason:    jsii.String("The secret is referenced by name; \"-??????\" matches only the 6-character suffix Secrets Manager appends to that name."),
				AppliesTo: &[]interface{}{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:.*-\?\?\?\?\?\?$/`)}},
			}}, jsii.Bool(true))
		}
	}

	// ---- State machines ------------------------------------------------

	s.Unban = newStateMachine(stack, "UnbanStateMachine", props.Sources.UnbanASL, fns, retention)
	s.Refresh = newStateMachine(stack, "RefreshStateMachine", props.Sources.RefreshASL, fns, retention)

	// The webhook may start the unban state machine and nothing else.
	s.Unban.GrantStartExecution(fns[HandlerWebhook])
	fns[HandlerWebhook].AddEnvironment(jsii.String("STATE_MACHINE_ARN"), s.Unban.StateMachineArn(), nil)

	// ---- Refresh schedule ----------------------------------------------

	schedulerRole := awsiam.NewRole(stack, jsii.String("RefreshScheduleRole"), &awsiam.RoleProps{
		// Only schedules of this account may assume it (confused deputy).
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()},
			},
		}),
		Description: jsii.String("EventBridge Scheduler: start the sshguard-unban refresh state machine"),
	})
	awsscheduler.NewSchedule(stack, jsii.String("RefreshSchedule"), &awsscheduler.ScheduleProps{
		Description: jsii.String("Refresh the per-host sshguard ban lists"),
		Schedule:    awsscheduler.ScheduleExpression_Expression(jsii.String(cfg.RefreshSchedule), nil),
		Target: awsschedulertargets.NewStepFunctionsStartExecution(s.Refresh, &awsschedulertargets.ScheduleTargetBaseProps{
			Role:  schedulerRole,
			Input: awsscheduler.ScheduleTargetInput_FromObject(map[string]interface{}{}),
			// A missed refresh is replaced by the next one: no retries
			// piling up behind a slow run.
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
		}),
	})

	// ---- HTTP API ------------------------------------------------------

	accessLogs := awslogs.NewLogGroup(stack, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{Retention: retention})
	api := awsapigatewayv2.NewHttpApi(stack, jsii.String("WebhookApi"), &awsapigatewayv2.HttpApiProps{
		Description: jsii.String("Chatwork webhook for sshguard-unban"),
		// The stage is defined below to carry throttling and access logs.
		CreateDefaultStage: jsii.Bool(false),
	})
	stage := awsapigatewayv2.NewHttpStage(stack, jsii.String("WebhookApiStage"), &awsapigatewayv2.HttpStageProps{
		HttpApi:    api,
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(cfg.APIRateLimit),
			BurstLimit: jsii.Number(float64(cfg.APIBurstLimit)),
		},
	})
	// Access logs through the L1 property: the L2 takes an interface value
	// that Go cannot build as a plain struct. HTTP APIs write access logs
	// with API Gateway's service-linked role: no log-group policy is needed.
	stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format: awsapigateway.AccessLogFormat_Custom(jsii.String(
			`{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime",` +
				`"routeKey":"$context.routeKey","status":"$context.status","responseLength":"$context.responseLength",` +
				`"integrationStatus":"$context.integrationStatus","integrationError":"$context.integrationErrorMessage",` +
				`"latency":"$context.responseLatency","userAgent":"$context.identity.userAgent"}`)).ToString(),
	})
	route := api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path:        jsii.String(WebhookPath),
		Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_POST},
		Integration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("WebhookIntegration"), fns[HandlerWebhook], nil),
	})
	for _, r := range *route {
		cdknag.NagSuppressions_AddResourceSuppressions(r, &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-APIG4"),
			Reason: jsii.String("Chatwork cannot sign requests for IAM or present a JWT/Cognito token. Every request is authenticated in the webhook function by the HMAC-SHA256 signature Chatwork computes over the raw body with the webhook token (X-ChatWorkWebhookSignature), compared in constant time; unsigned requests are rejected before anything runs, and stage throttling plus reserved concurrency bound their cost."),
		}}, jsii.Bool(true))
	}

	// ---- Alarms --------------------------------------------------------

	// CloudWatch can publish to an encrypted topic only with a customer
	// managed key whose policy lets cloudwatch.amazonaws.com use it.
	topicKey := awskms.NewKey(stack, jsii.String("AlarmTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("sshguard-unban alarm topic"),
		EnableKeyRotation: jsii.Bool(true),
	})
	// No aws:SourceAccount condition: AWS documents this statement without
	// one for CloudWatch alarm actions, and a condition CloudWatch does not
	// send would silently drop every alarm notification. The key serves this
	// topic only, and publishing to the topic still needs access to it.
	topicKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // in a key policy "*" means this key
	}), nil)
	topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("sshguard-unban alarms"),
		MasterKey:   topicKey,
		EnforceSSL:  jsii.Bool(true),
	})
	if cfg.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(topic)
	alarm := func(id, desc string, metric awscloudwatch.Metric, missing awscloudwatch.TreatMissingData,
		threshold float64, op awscloudwatch.ComparisonOperator, periods float64) {
		a := awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(desc),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			ComparisonOperator: op,
			EvaluationPeriods:  jsii.Number(periods),
			TreatMissingData:   missing,
		})
		a.AddAlarmAction(action)
	}
	fiveMinSum := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
	for _, m := range []struct {
		name string
		sm   awsstepfunctions.StateMachine
	}{{"Unban", s.Unban}, {"Refresh", s.Refresh}} {
		for _, k := range []struct {
			kind   string
			metric awscloudwatch.Metric
		}{
			{"Failed", m.sm.MetricFailed(fiveMinSum)},
			{"TimedOut", m.sm.MetricTimedOut(fiveMinSum)},
			{"Aborted", m.sm.MetricAborted(fiveMinSum)},
		} {
			alarm(m.name+"Executions"+k.kind+"Alarm",
				fmt.Sprintf("sshguard-unban: an execution of the %s state machine %s", strings.ToLower(m.name), strings.ToLower(k.kind)),
				k.metric, awscloudwatch.TreatMissingData_NOT_BREACHING, 1,
				awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)
		}
	}
	// A broken schedule (or scheduler role) fails silently: the lists go
	// stale and every unban falls back to all hosts. Alarm when no refresh
	// started for three schedule periods (at least 15 minutes). Only for
	// rate() schedules: a cron() may leave long gaps on purpose.
	if period, ok := ratePeriodSeconds(cfg.RefreshSchedule); ok {
		periods := math.Max(3, math.Ceil(3*period/300))
		if periods <= 288 { // CloudWatch evaluates at most one day
			alarm("RefreshNotRunningAlarm", "sshguard-unban: the refresh state machine has not started for "+fmt.Sprint(periods*5)+" minutes",
				s.Refresh.MetricStarted(fiveMinSum), awscloudwatch.TreatMissingData_BREACHING, 1,
				awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, periods)
		}
	}
	// Webhook errors never reach a state machine, so the alarms above would
	// not see them.
	alarm("WebhookErrorsAlarm", "sshguard-unban: the webhook function failed",
		fns[HandlerWebhook].MetricErrors(fiveMinSum), awscloudwatch.TreatMissingData_NOT_BREACHING, 1,
		awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)

	// ---- Host policy ---------------------------------------------------

	// Attach to the instance role of every host tagged for the bot, together
	// with the AWS managed policy AmazonSSMManagedInstanceCore (which the SSM
	// agent needs for Run Command at all, and which AWS keeps current as the
	// agent changes). This policy adds only the command-output upload.
	s.HostPolicy = awsiam.NewManagedPolicy(stack, jsii.String("HostPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("sshguard-unban hosts: upload SSM command output. Attach with AmazonSSMManagedInstanceCore."),
		Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid: jsii.String("UploadCommandOutput"),
				// The agent sends the bucket-owner-full-control ACL with each
				// upload; with ACLs disabled on the bucket it changes nothing.
				Actions:   jsii.Strings("s3:PutObject", "s3:PutObjectAcl"),
				Resources: &[]*string{bucket.ArnForObjects(jsii.String(CommandOutputPrefix + "*"))},
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid: jsii.String("CheckBucketEncryption"),
				// The agent checks the bucket's encryption before uploading.
				Actions:   jsii.Strings("s3:GetEncryptionConfiguration"),
				Resources: &[]*string{bucket.BucketArn()},
			}),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(s.HostPolicy, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Hosts may only upload under command-output/ of this service's bucket; the keys below it are named by SSM (command id/instance id/step), so they cannot be listed in advance."),
		AppliesTo: objectWildcards(CommandOutputPrefix),
	}}, jsii.Bool(false))

	// ---- Outputs -------------------------------------------------------

	out := func(id, desc string, value *string, export bool) {
		o := &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: value}
		if export {
			o.ExportName = jsii.String(*stack.StackName() + "-" + id)
		}
		awscdk.NewCfnOutput(stack, jsii.String(id), o)
	}
	out("WebhookUrl", "Chatwork webhook URL (account webhook, event mention_to_me)", jsii.String(*stage.Url()+strings.TrimPrefix(WebhookPath, "/")), false)
	out("HostPolicyArn", "Attach to the instance role of each tagged host, with AmazonSSMManagedInstanceCore", s.HostPolicy.ManagedPolicyArn(), true)
	out("ChatworkSecretId", "Secret to fill with {\"api_token\":…,\"webhook_token\":…}", secretID, false)
	out("DataBucketName", "Ban lists, command output and reply marks", bucket.BucketName(), false)
	out("UnbanStateMachineArn", "Unban state machine", s.Unban.StateMachineArn(), false)
	out("RefreshStateMachineArn", "Refresh state machine", s.Refresh.StateMachineArn(), false)
	out("UnbanDocumentName", "SSM document run on hosts to unban", unbanDoc.Ref(), false)
	out("ReportDocumentName", "SSM document run on hosts to list bans", reportDoc.Ref(), false)
	out("AlarmTopicArn", "Alarm notifications", topic.TopicArn(), false)
	out("TargetTag", "Tag hosts with this key=value to let the bot reach them", jsii.String(cfg.TargetTagKey+"="+cfg.TargetTagValue), false)
	return s
}

// newStateMachine defines a Standard state machine from an ASL file. The
// definition goes into the template as a string (DefinitionBody_FromString),
// so template tests and reviewers see it, and the ${XFunctionArn}
// placeholders it uses become DefinitionSubstitutions with the real ARNs.
// Because CDK cannot see inside the string, the role is granted
// lambda:InvokeFunction explicitly, on exactly the functions the definition
// names (unqualified ARNs, as the Task states use them).
func newStateMachine(stack awscdk.Stack, id, asl string, fns map[string]awslambda.Function, retention awslogs.RetentionDays) awsstepfunctions.StateMachine {
	names, err := Placeholders(asl)
	if err != nil {
		panic(fmt.Sprintf("%s: %v", id, err))
	}
	subs := map[string]*string{}
	var arns []*string
	for _, n := range names {
		fn := fns[substitutionFunctions[n]]
		subs[n] = fn.FunctionArn()
		arns = append(arns, fn.FunctionArn())
	}
	// ALL events with execution data: a failed unban is debugged from these
	// logs (which state, which input). The data is what the execution
	// history already shows for 90 days (addresses, host ids, the chat
	// message), never a token; retention follows logRetentionDays.
	logGroup := awslogs.NewLogGroup(stack, jsii.String(id+"Logs"), &awslogs.LogGroupProps{Retention: retention})
	sm := awsstepfunctions.NewStateMachine(stack, jsii.String(id), &awsstepfunctions.StateMachineProps{
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(asl)),
		DefinitionSubstitutions: &subs,
		Logs: &awsstepfunctions.LogOptions{
			Destination:          logGroup,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(true),
		},
		TracingEnabled: jsii.Bool(true),
	})
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("InvokeTaskFunctions"),
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: &arns,
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(sm.Role(), &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Added by CDK for execution logging and X-Ray: the CloudWatch Logs delivery actions (logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies, DescribeLogGroups) and xray:PutTraceSegments/PutTelemetryRecords/GetSamplingRules/GetSamplingTargets support no resource-level permissions."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	return sm
}

var rateRe = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// ratePeriodSeconds returns the period of a rate() schedule expression.
func ratePeriodSeconds(expr string) (float64, bool) {
	m := rateRe.FindStringSubmatch(expr)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0, false
	}
	unit := map[string]float64{"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[m[2]]
	return float64(n) * unit, true
}
