package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"sshguard-unban/shared/functions"
)

// newWebhookAPI defines the HTTP API Chatwork posts to: POST WebhookPath
// → the webhook function, on a throttled $default stage with access logs.
// It returns the stage (its URL is an output).
func newWebhookAPI(stack awscdk.Stack, cfg Config, fns map[string]awslambda.Function) awsapigatewayv2.HttpStage {
	accessLogs := awslogs.NewLogGroup(stack, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{Retention: cfg.Retention()})
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
		Integration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("WebhookIntegration"), fns[functions.Webhook], nil),
	})
	for _, r := range *route {
		cdknag.NagSuppressions_AddResourceSuppressions(r, &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-APIG4"),
			Reason: jsii.String("Chatwork cannot sign requests for IAM or present a JWT/Cognito token. Every request is authenticated in the webhook function by the HMAC-SHA256 signature Chatwork computes over the raw body with the webhook token (X-ChatWorkWebhookSignature), compared in constant time; unsigned requests are rejected before anything runs, and stage throttling plus reserved concurrency bound their cost."),
		}}, jsii.Bool(true))
	}
	return stage
}
