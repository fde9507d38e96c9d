package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"
)

// outputs are the resources the deploy guide (README) names.
type outputs struct {
	api            webhookAPI
	secrets        chatworkSecrets
	bucket         awss3.Bucket
	docs           documents
	unban, refresh awsstepfunctions.StateMachine
	topic          awssns.Topic
	hostPolicy     awsiam.ManagedPolicy
}

// newOutputs defines the stack outputs an operator needs after deploy.
func newOutputs(stack awscdk.Stack, cfg Config, o outputs) {
	out := func(id, desc string, value *string, export bool) {
		p := &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: value}
		if export {
			p.ExportName = jsii.String(*stack.StackName() + "-" + id)
		}
		awscdk.NewCfnOutput(stack, jsii.String(id), p)
	}
	out("WebhookUrl", "Chatwork webhook URL (account webhook, event mention_to_me)", o.api.webhookURL, false)
	out("ApiUrl", "The HTTP API's base URL: ApiUrl + ip is the what-is-my-address page; ApiUrl + bans the SREs' page (signed links only)", o.api.stage.Url(), false)
	out("PageLinkSecretId", "Secret holding the HMAC key of the ban-list page's links (read by notify and page)", o.secrets.page.id, false)
	out("HostPolicyArn", "Attach to the instance role of each tagged host, with AmazonSSMManagedInstanceCore", o.hostPolicy.ManagedPolicyArn(), true)
	out("ChatworkWebhookSecretId", "Secret to fill with {\"webhook_token\":…} (read by the webhook only)", o.secrets.webhook.id, false)
	out("ChatworkApiSecretId", "Secret to fill with {\"api_token\":…} (read by notify only)", o.secrets.api.id, false)
	out("DataBucketName", "Ban lists, command output and reply marks", o.bucket.BucketName(), false)
	out("UnbanStateMachineArn", "Unban state machine", o.unban.StateMachineArn(), false)
	out("RefreshStateMachineArn", "Refresh state machine", o.refresh.StateMachineArn(), false)
	out("UnbanDocumentName", "SSM document run on hosts to unban", o.docs.unban.Ref(), false)
	out("ReportDocumentName", "SSM document run on hosts to list bans", o.docs.report.Ref(), false)
	out("AlarmTopicArn", "Alarm notifications", o.topic.TopicArn(), false)
	out("TargetTag", "Tag hosts with this key=value to let the bot reach them", jsii.String(cfg.TargetTagKey+"="+cfg.TargetTagValue), false)
}
