package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/shared/functions"
)

// webhookAPI is the HTTP API and the webhook's URL on it.
type webhookAPI struct {
	stage awsapigatewayv2.HttpStage
	// webhookURL carries the path key: the URL to set in Chatwork.
	webhookURL *string
}

// newHTTPAPI is the HTTP API itself, defined before the functions: notify
// links to its pages (PublicURL), and the API resource depends on nothing.
func newHTTPAPI(stack awscdk.Stack) awsapigatewayv2.HttpApi {
	return awsapigatewayv2.NewHttpApi(stack, jsii.String("WebhookApi"), &awsapigatewayv2.HttpApiProps{
		Description: jsii.String("Chatwork webhook and pages for sshguard-unban"),
		// The stage is defined below to carry throttling and access logs.
		CreateDefaultStage: jsii.Bool(false),
		// Both families: /ip must show employees whose SSH goes over IPv6
		// their IPv6 address, the one sshguard blocked.
		IpAddressType: awsapigatewayv2.IpAddressType_DUAL_STACK,
	})
}

// publicURL is the $default stage's URL, ending in "/".
func publicURL(api awsapigatewayv2.HttpApi) string { return *api.ApiEndpoint() + "/" }

// newWebhookAPI routes the API on a throttled $default stage with access
// logs: POST /chatwork/{WebhookPathKey} → the webhook function, GET /ip and
// GET /bans → the page function.
//
// The path key is why a flood cannot starve Chatwork's deliveries, which
// are never resent (README, "Flood protection"): a request to any other
// path gets API Gateway's own 404, runs nothing and draws nothing from the
// webhook route's throttle, since the stage's limits apply to each route
// separately. It is a stack parameter, so it is in no file in git; `cdk
// deploy` keeps its previous value.
func newWebhookAPI(stack awscdk.Stack, cfg Config, api awsapigatewayv2.HttpApi, fns map[string]awslambda.Function) webhookAPI {
	key := awscdk.NewCfnParameter(stack, jsii.String(WebhookPathKeyParameter), &awscdk.CfnParameterProps{
		Type:                  jsii.String("String"),
		Description:           jsii.String("The webhook URL's secret path segment: 32 or more random characters (openssl rand -hex 16). Set it on the first deploy; later deploys keep it."),
		AllowedPattern:        jsii.String(app.WebhookPathKeyPattern),
		ConstraintDescription: jsii.String("32 to 128 characters from A-Z a-z 0-9 _ - (openssl rand -hex 16)"),
	})
	accessLogs := awslogs.NewLogGroup(stack, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{Retention: cfg.Retention()})
	stage := awsapigatewayv2.NewHttpStage(stack, jsii.String("WebhookApiStage"), &awsapigatewayv2.HttpStageProps{
		HttpApi:    api,
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		// DefaultRouteSettings: the limits of each route, one bucket per route.
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(cfg.APIRateLimit),
			BurstLimit: jsii.Number(float64(cfg.APIBurstLimit)),
		},
	})
	// Access logs through the L1 property: the L2 takes an interface value
	// that Go cannot build as a plain struct. HTTP APIs write access logs
	// with API Gateway's service-linked role: no log-group policy is needed.
	// The route key holds the path key: like the stack's parameters, the
	// access logs are readable inside the account only.
	stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format: awsapigateway.AccessLogFormat_Custom(jsii.String(
			`{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime",` +
				`"routeKey":"$context.routeKey","status":"$context.status","responseLength":"$context.responseLength",` +
				`"integrationStatus":"$context.integrationStatus","integrationError":"$context.integrationErrorMessage",` +
				`"latency":"$context.responseLatency","userAgent":"$context.identity.userAgent"}`)).ToString(),
	})
	// A token inside the path: the route key becomes a Fn::Join with the
	// parameter (HttpApi.addRoutes would put it in a construct id).
	path := app.WebhookPathPrefix + *key.ValueAsString()
	route := awsapigatewayv2.NewHttpRoute(stack, jsii.String("WebhookRoute"), &awsapigatewayv2.HttpRouteProps{
		HttpApi:     api,
		RouteKey:    awsapigatewayv2.HttpRouteKey_With(jsii.String(path), awsapigatewayv2.HttpMethod_POST),
		Integration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("WebhookIntegration"), fns[functions.Webhook], nil),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(route, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-APIG4"),
		Reason: jsii.String("Chatwork cannot sign requests for IAM or present a JWT/Cognito token. Every request is authenticated in the webhook function by the HMAC-SHA256 signature Chatwork computes over the raw body with the webhook token (X-ChatWorkWebhookSignature), compared in constant time; a request without a well-formed signature is rejected before any call, the route's path holds a secret key so a flood elsewhere gets API Gateway's 404, and route throttling plus reserved concurrency bound the cost."),
	}}, jsii.Bool(true))
	// The pages: /ip is public by design (it only echoes the caller's
	// address); /bans answers 403 to anything but a valid signed link.
	pages := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("PageIntegration"), fns[functions.Page], nil)
	for _, p := range []struct{ id, path, reason string }{
		{"IpRoute", "/ip", "GET /ip shows callers their own address as API Gateway sees it, to everyone by design (employees are not signed in anywhere AWS can check); it reads nothing and calls nothing."},
		{"BansRoute", "/bans", "GET /bans is for SREs holding a link the bot signed (HMAC-SHA256 with the page key, 15 minutes, bound to an SRE account), checked in the page function in constant time before anything is read; Chatwork accounts are not IAM, JWT or Cognito identities."},
	} {
		r := awsapigatewayv2.NewHttpRoute(stack, jsii.String(p.id), &awsapigatewayv2.HttpRouteProps{
			HttpApi:     api,
			RouteKey:    awsapigatewayv2.HttpRouteKey_With(jsii.String(p.path), awsapigatewayv2.HttpMethod_GET),
			Integration: pages,
		})
		cdknag.NagSuppressions_AddResourceSuppressions(r, &[]*cdknag.NagPackSuppression{{Id: jsii.String("AwsSolutions-APIG4"), Reason: jsii.String(p.reason)}}, jsii.Bool(true))
	}
	return webhookAPI{stage: stage, webhookURL: jsii.String(*stage.Url() + strings.TrimPrefix(path, "/"))}
}
