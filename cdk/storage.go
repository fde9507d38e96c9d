package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/shared/secrets"
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

// chatworkSecret is the secret of one Chatwork token and the id its
// function reads it by.
type chatworkSecret struct {
	secret awssecretsmanager.ISecret
	id     *string
	// imported: named with -c …SecretName and managed outside the stack
	// (its key too); otherwise created here under the tokens' key.
	imported bool
	// arnPattern matches the created secret's ARN (its name plus the
	// suffix Secrets Manager appends), for the key policy's condition.
	arnPattern *string
	// sid names the secret in policy statement ids.
	sid string
}

// chatworkSecrets are the two tokens' secrets, the ban-list page's link
// key (always created) and the key they are encrypted with.
type chatworkSecrets struct {
	webhook, api chatworkSecret
	page         chatworkSecret
	key          awskms.Key
}

// newChatworkSecrets defines (or imports) one secret per Chatwork token,
// so the webhook (which the internet reaches) cannot read the API token,
// and notify cannot read the webhook token.
//
// A created secret is encrypted with a customer managed key whose policy
// names each reader (grantSecret): only that role, only through Secrets
// Manager, only for its own secret. The webhook secret gets a
// CloudFormation-generated random webhook_token and the API secret an
// empty api_token: no token is in the code or the template, the webhook
// rejects every request and notify fails closed (shared/secrets reports the
// secret incomplete) until an operator writes the real tokens with
// `aws secretsmanager put-secret-value`. The names contain the stack's
// unique id: the key policy can then match the secret's ARN without
// depending on the secret (which depends on the key), and a re-created
// stack never clashes with a secret still in its recovery window.
func newChatworkSecrets(stack awscdk.Stack, cfg Config) chatworkSecrets {
	var out chatworkSecrets
	// The page key is always created here, so the key always exists.
	out.key = awskms.NewKey(stack, jsii.String("ChatworkTokensKey"), &awskms.KeyProps{
		Description:       jsii.String("sshguard-unban secrets: Chatwork tokens and the ban-list page's link key"),
		EnableKeyRotation: jsii.Bool(true),
	})
	// arn:…:cloudformation:REGION:ACCOUNT:stack/NAME/UUID → UUID
	stackUUID := awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), stack.StackId(), nil))
	define := func(id, imported, token string, value *awssecretsmanager.SecretProps) chatworkSecret {
		// webhook_token → WebhookToken, for statement ids
		sid := ""
		for w := range strings.SplitSeq(token, "_") {
			sid += strings.ToUpper(w[:1]) + w[1:]
		}
		if imported != "" {
			return chatworkSecret{
				secret:   awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String(id), jsii.String(imported)),
				id:       jsii.String(imported),
				imported: true,
				sid:      sid,
			}
		}
		name := awscdk.Fn_Join(jsii.String(""), &[]*string{stack.StackName(), jsii.String("/"), stackUUID, jsii.String("/" + token)})
		value.SecretName = name
		value.EncryptionKey = out.key
		if value.Description == nil {
			value.Description = jsii.String("Chatwork " + token + " for sshguard-unban: {\"" + token + "\":\"…\"}. Set with put-secret-value.")
		}
		created := awssecretsmanager.NewSecret(stack, jsii.String(id), value)
		reason := "The secret holds a Chatwork token, issued by Chatwork, not by AWS; there is no rotation Lambda that could mint a new one. Operators rotate it in Chatwork and write it with put-secret-value (README)."
		if token == pageKeyName {
			reason = "The ban-list page's link key lives as long as a link does not (15 minutes); rotating it by hand (README) only cuts off links already given out, so no rotation Lambda is worth its cost."
		}
		cdknag.NagSuppressions_AddResourceSuppressions(created, &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-SMG4"),
			Reason: jsii.String(reason),
		}}, jsii.Bool(true))
		return chatworkSecret{
			secret: created,
			id:     created.SecretArn(),
			sid:    sid,
			// Secrets Manager appends "-" and six random characters.
			arnPattern: stack.FormatArn(&awscdk.ArnComponents{
				Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
				ResourceName: awscdk.Fn_Join(jsii.String(""), &[]*string{name, jsii.String("-??????")}),
				ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
			}),
		}
	}
	out.webhook = define("ChatworkWebhookSecret", cfg.WebhookSecretName, string(secrets.WebhookTokenKey), &awssecretsmanager.SecretProps{
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{}`),
			GenerateStringKey:    jsii.String(string(secrets.WebhookTokenKey)),
			ExcludePunctuation:   jsii.Bool(true),
			PasswordLength:       jsii.Number(32),
		},
	})
	// An empty placeholder, not a token: notify fails closed until it is set.
	out.api = define("ChatworkApiSecret", cfg.APISecretName, string(secrets.APITokenKey), &awssecretsmanager.SecretProps{
		SecretObjectValue: &map[string]awscdk.SecretValue{string(secrets.APITokenKey): awscdk.SecretValue_UnsafePlainText(jsii.String(""))},
	})
	// The whole SecretString is the HMAC key of the page links
	// (shared/pagelink): 64 random characters, made by CloudFormation.
	out.page = define("PageLinkSecret", "", pageKeyName, &awssecretsmanager.SecretProps{
		Description: jsii.String("sshguard-unban: HMAC key of the ban-list page's signed links (read by notify, which signs, and page, which checks)."),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			ExcludePunctuation: jsii.Bool(true),
			PasswordLength:     jsii.Number(64),
		},
	})
	return out
}

// pageKeyName names the page key's secret (after the stack's unique id).
const pageKeyName = "page_link_key"
