package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"sshguard-unban/lambdas/app"
)

// Key prefixes in the one bucket (lambdas/app owns them: it hands them to
// the functions). Each function is granted only the prefixes it uses.
const (
	BanlistPrefix       = app.BanlistPrefix
	CommandOutputPrefix = app.CommandOutputPrefix
	ReplyMarkPrefix     = app.ReplyMarkPrefix

	// Command output is read once, within minutes, by wait-for-command or
	// refresh-list; a week leaves room to look at a failed run.
	commandOutputExpiryDays = 7
	// A reply mark must outlive any redrive of the execution that wrote it
	// (redrive is possible for 14 days after a failure).
	replyMarkExpiryDays = 30
	// The request path's shared state and the reply outbox live seconds to
	// minutes; a day leaves room to look at a failed run.
	requestStateExpiryDays = 1
)

// newStorage defines the data bucket (ban lists, SSM command output, reply
// marks) and the bucket for its access logs.
func newStorage(stack awscdk.Stack, cfg Config) awss3.Bucket {
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
	return awss3.NewBucket(stack, jsii.String("DataBucket"), &awss3.BucketProps{
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
				Id:         jsii.String("expire-request-state"),
				Prefix:     jsii.String(app.CommandsPrefix),
				Expiration: awscdk.Duration_Days(jsii.Number(requestStateExpiryDays)),
			},
			{
				Id:         jsii.String("expire-outbox"),
				Prefix:     jsii.String(app.OutboxPrefix),
				Expiration: awscdk.Duration_Days(jsii.Number(requestStateExpiryDays)),
			},
			{
				Id:                                  jsii.String("abort-incomplete-uploads"),
				AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
			},
		},
	})
}

// chatworkSecret is the secret holding the Chatwork tokens and the id the
// functions read it by.
type chatworkSecret struct {
	secret awssecretsmanager.ISecret
	id     *string
}

// newChatworkSecret defines (or imports) the Chatwork tokens' secret. By
// default the stack creates it with a CloudFormation-generated random
// webhook_token and an empty api_token: no token value is in the code or the
// template, the functions fail closed (shared/secrets reports the secret as
// incomplete, so the webhook rejects every request) until an operator writes
// the real tokens with `aws secretsmanager put-secret-value`, and the
// secret's name is generated, so deleting and re-creating the stack never
// clashes with a secret still in its recovery window. With -c
// secretName=NAME the stack uses an existing secret instead (managed outside
// the stack).
func newChatworkSecret(stack awscdk.Stack, cfg Config) chatworkSecret {
	if cfg.SecretName != "" {
		return chatworkSecret{
			secret: awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String("ChatworkSecret"), jsii.String(cfg.SecretName)),
			id:     jsii.String(cfg.SecretName),
		}
	}
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
	return chatworkSecret{secret: created, id: created.SecretArn()}
}
