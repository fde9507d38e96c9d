package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"sshguard-unban/shared/functions"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/jsii-runtime-go"

	"sshguard-unban/lambdas/app"
)

func TestFunctions(t *testing.T) {
	s := defaultStack(t)
	fns := s.resources("AWS::Lambda::Function")
	if len(fns) != len(functions.All) {
		t.Fatalf("%d functions, want %d", len(fns), len(functions.All))
	}
	bucketID := idOf(s.stack.Stack, cfn(s.stack.Bucket))
	roles := map[string]string{}
	logGroups := map[string]string{}
	codes := map[string]bool{}
	for id, r := range fns {
		p := props(r)
		h := p["Handler"].(string)
		if f, ok := functions.ByHandler(h); !ok || !strings.HasPrefix(id, f.Construct) {
			t.Errorf("%s: handler %q is not the table's (shared/functions)", id, h)
			continue
		}
		if p["Runtime"] != "provided.al2023" || compact(p["Architectures"]) != `["arm64"]` {
			t.Errorf("%s: runtime %v %v, want provided.al2023 arm64", h, p["Runtime"], p["Architectures"])
		}
		if compact(p["TracingConfig"]) != `{"Mode":"Active"}` {
			t.Errorf("%s: tracing %v", h, p["TracingConfig"])
		}
		vars := map[string]interface{}{}
		if e, ok := p["Environment"].(map[string]interface{}); ok {
			vars = e["Variables"].(map[string]interface{})
		}
		checkEnvironment(t, h, vars)
		// Bucket variables name the data bucket.
		for _, k := range []string{"BANLIST_BUCKET", "COMMAND_OUTPUT_BUCKET"} {
			if v, ok := vars[k]; ok && compact(v) != `{"Ref":"`+bucketID+`"}` {
				t.Errorf("%s: %s = %v", h, k, compact(v))
			}
		}
		// One role and one log group per function.
		role := p["Role"].(map[string]interface{})["Fn::GetAtt"].([]interface{})[0].(string)
		if other, dup := roles[role]; dup {
			t.Errorf("%s and %s share role %s", h, other, role)
		}
		roles[role] = h
		lg := p["LoggingConfig"].(map[string]interface{})["LogGroup"].(map[string]interface{})["Ref"].(string)
		if other, dup := logGroups[lg]; dup {
			t.Errorf("%s and %s share log group %s", h, other, lg)
		}
		logGroups[lg] = h
		codes[compact(p["Code"])] = true
		if h == functions.Webhook {
			if p["ReservedConcurrentExecutions"] != float64(Defaults.WebhookReservedConcurrency) {
				t.Errorf("webhook reserved concurrency %v", p["ReservedConcurrentExecutions"])
			}
		} else if _, ok := p["ReservedConcurrentExecutions"]; ok {
			t.Errorf("%s: unexpected reserved concurrency", h)
		}
	}
	if len(codes) != 1 {
		t.Errorf("functions use %d different code assets, want one shared bootstrap asset", len(codes))
	}
	for lg := range logGroups {
		r := s.json["Resources"].(map[string]interface{})[lg].(map[string]interface{})
		if props(r)["RetentionInDays"] != float64(Defaults.LogRetentionDays) {
			t.Errorf("log group %s retention %v", lg, props(r)["RetentionInDays"])
		}
	}
	// Literal values, through the assertions API.
	tpl := s.template
	check(t, "webhook env", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]interface{}{
			"Handler": "webhook",
			"Environment": map[string]interface{}{"Variables": assertions.Match_ObjectLike(&map[string]interface{}{
				"BOT_ACCOUNT_ID":             "1234567",
				"ALLOWED_ROOMS":              "567890123,567890124,567890126", // and the SRE room: approvals are answered there
				"STATE_MACHINE_ARN":          map[string]interface{}{"Ref": idOf(s.stack.Stack, cfn(s.stack.Unban))},
				"CHATWORK_WEBHOOK_SECRET_ID": assertions.Match_ObjectLike(&map[string]interface{}{"Ref": assertions.Match_StringLikeRegexp(jsii.String("^ChatworkWebhookSecret"))}),
			})},
		})
	})
	check(t, "notify env", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]interface{}{
			"Handler": "notify",
			"Environment": map[string]interface{}{"Variables": assertions.Match_ObjectLike(&map[string]interface{}{
				"NOTIFY_ROOM_ID": "567890125", "SRE_ROOM_ID": "567890126", "LOCALE": "ja", "REPLY_MARK_PREFIX": "replies/",
			})},
		})
	})
	check(t, "unban env", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]interface{}{
			"Handler": "unban",
			"Environment": map[string]interface{}{"Variables": assertions.Match_ObjectLike(&map[string]interface{}{
				"UNBAN_DOCUMENT":          map[string]interface{}{"Ref": "UnbanDocument"},
				"TARGET_TAG_KEY":          "sshguard-unban",
				"TARGET_TAG_VALUE":        "enabled",
				"COMMAND_OUTPUT_PREFIX":   "command-output/",
				"COMMAND_TIMEOUT_SECONDS": "60",
			})},
		})
	})
	check(t, "refresh-list env", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]interface{}{
			"Handler": "refresh-list",
			"Environment": map[string]interface{}{"Variables": assertions.Match_ObjectLike(&map[string]interface{}{
				"REPORT_DOCUMENT": map[string]interface{}{"Ref": "ReportDocument"},
				"BANLIST_PREFIX":  "banlists/",
			})},
		})
	})
	check(t, "lookup env", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]interface{}{
			"Handler": "lookup",
			"Environment": map[string]interface{}{"Variables": assertions.Match_ObjectLike(&map[string]interface{}{
				"FRESHNESS_SECONDS": "900", "BANLIST_PREFIX": "banlists/",
			})},
		})
	})
}

// checkEnvironment feeds a synthesized function's environment to the code
// that reads it in Lambda (lambdas/bootstrap's log level, then
// lambdas/app.NewHandler), and fails on a variable the code needs but the
// template lacks, or one the template sets but no code reads. Values that
// are CloudFormation tokens become placeholders of the right shape.
func checkEnvironment(t *testing.T, handler string, vars map[string]interface{}) {
	t.Helper()
	env := map[string]string{}
	for k, v := range vars {
		switch v := v.(type) {
		case string:
			env[k] = v
		default: // {"Ref": …}, {"Fn::GetAtt": …} or {"Fn::Join": …}
			env[k] = "token-" + strings.ToLower(k)
			if strings.HasSuffix(k, "_URL") {
				env[k] = "https://" + env[k] + ".example/"
			}
		}
	}
	read := map[string]bool{}
	getenv := func(k string) string { read[k] = true; return env[k] }
	app.LogLevel(getenv)
	cfg := aws.Config{Region: "ap-northeast-1"}
	if _, err := app.NewHandler(context.Background(), handler, getenv, cfg); err != nil {
		t.Errorf("%s: the synthesized environment does not start the handler: %v", handler, err)
	}
	for k := range env {
		if !read[k] {
			t.Errorf("%s: the template sets %s, which no code reads", handler, k)
		}
	}
}

// Each function must stop (Lambda timeout) before the Task state that
// invokes it gives up (TimeoutSeconds in the ASL).
func TestFunctionTimeoutsBelowTaskTimeouts(t *testing.T) {
	s := defaultStack(t)
	timeout := map[string]float64{}
	for _, r := range s.resources("AWS::Lambda::Function") {
		p := props(r)
		timeout[p["Handler"].(string)] = p["Timeout"].(float64)
	}
	for _, asl := range []string{sources.UnbanASL, sources.RefreshASL} {
		var def struct {
			States map[string]struct {
				Type           string
				Resource       string
				TimeoutSeconds float64
				Parameters     struct{ InvocationType, FunctionName string }
			}
		}
		if err := json.Unmarshal([]byte(asl), &def); err != nil {
			t.Fatal(err)
		}
		for name, st := range def.States {
			if st.Type != "Task" || st.Parameters.InvocationType == "Event" {
				// An asynchronous call waits only for the Invoke API.
				continue
			}
			resource := st.Resource
			if strings.HasPrefix(resource, "arn:aws:states:::lambda:invoke") {
				// The Lambda integration (a callback): the function is a
				// parameter, and it must end before the Task gives up.
				resource = st.Parameters.FunctionName
			}
			m := placeholderRe.FindStringSubmatch(resource)
			if m == nil {
				t.Errorf("%s: Resource %q is not a ${...FunctionArn} substitution", name, st.Resource)
				continue
			}
			h := substitutionFunctions[m[1]]
			if st.TimeoutSeconds == 0 {
				t.Errorf("%s: Task without TimeoutSeconds", name)
			} else if timeout[h] >= st.TimeoutSeconds {
				t.Errorf("%s: %s timeout %vs is not below the Task's TimeoutSeconds %v", name, h, timeout[h], st.TimeoutSeconds)
			}
		}
	}
}

func TestStateMachines(t *testing.T) {
	s := defaultStack(t)
	sms := s.resources("AWS::StepFunctions::StateMachine")
	if len(sms) != 2 {
		t.Fatalf("%d state machines, want 2", len(sms))
	}
	fnIDs := map[string]string{} // handler -> logical id
	for id, r := range s.resources("AWS::Lambda::Function") {
		fnIDs[props(r)["Handler"].(string)] = id
	}
	byID := map[string]string{
		idOf(s.stack.Stack, cfn(s.stack.Unban)):   sources.UnbanASL,
		idOf(s.stack.Stack, cfn(s.stack.Refresh)): sources.RefreshASL,
	}
	// Unban is the audit (Standard: its history is kept 90 days, and it can
	// be redriven); the scheduled refresh needs neither (Express).
	wantType := map[string]string{
		idOf(s.stack.Stack, cfn(s.stack.Unban)):   "STANDARD",
		idOf(s.stack.Stack, cfn(s.stack.Refresh)): "EXPRESS",
	}
	roles := s.rolePolicies()
	for id, r := range sms {
		p := props(r)
		asl, ok := byID[id]
		if !ok {
			t.Errorf("unexpected state machine %s", id)
			continue
		}
		if p["StateMachineType"] != wantType[id] {
			t.Errorf("%s: type %v", id, p["StateMachineType"])
		}
		if compact(p["TracingConfiguration"]) != `{"Enabled":true}` {
			t.Errorf("%s: tracing %v", id, compact(p["TracingConfiguration"]))
		}
		// Every event, without the data: no message body or address in
		// CloudWatch Logs (the execution history has them).
		lc := p["LoggingConfiguration"].(map[string]interface{})
		if lc["Level"] != "ALL" || lc["IncludeExecutionData"] != false || len(asList(lc["Destinations"])) != 1 {
			t.Errorf("%s: logging %v", id, compact(lc))
		}
		// The definition is the file, verbatim, with its placeholders.
		if p["DefinitionString"] != asl {
			t.Errorf("%s: DefinitionString is not the ASL file verbatim: %.200v", id, compact(p["DefinitionString"]))
		}
		names := must(Placeholders(asl))
		subs := p["DefinitionSubstitutions"].(map[string]interface{})
		if got := keys(subs); !reflect.DeepEqual(got, names) {
			t.Errorf("%s: substitutions %v, want %v", id, got, names)
		}
		var wantArns []string
		for _, n := range names {
			fid := fnIDs[substitutionFunctions[n]]
			want := `{"Fn::GetAtt":["` + fid + `","Arn"]}`
			if compact(subs[n]) != want {
				t.Errorf("%s: ${%s} = %s, want %s", id, n, compact(subs[n]), want)
			}
			wantArns = append(wantArns, want)
		}
		// The role may invoke exactly the functions the definition names.
		role := p["RoleArn"].(map[string]interface{})["Fn::GetAtt"].([]interface{})[0].(string)
		var gotArns []string
		for _, st := range roles[role] {
			if hasAction(st, "lambda:InvokeFunction") {
				if len(st.Actions) != 1 {
					t.Errorf("%s: invoke statement has extra actions %v", id, st.Actions)
				}
				for _, r := range st.Resources {
					gotArns = append(gotArns, compact(r))
				}
			}
		}
		sort.Strings(gotArns)
		sort.Strings(wantArns)
		if !reflect.DeepEqual(gotArns, wantArns) {
			t.Errorf("%s: lambda:InvokeFunction on %v, want %v", id, gotArns, wantArns)
		}
	}
	// The unban machine uses all seven task functions, refresh three.
	if n := len(must(Placeholders(sources.UnbanASL))); n != 7 {
		t.Errorf("unban.asl.json uses %d functions, want 7", n)
	}
}

func TestSchedule(t *testing.T) {
	s := defaultStack(t)
	refreshID := idOf(s.stack.Stack, cfn(s.stack.Refresh))
	check(t, "schedule", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]interface{}{
			"ScheduleExpression": "rate(5 minutes)",
			"State":              "ENABLED",
			"FlexibleTimeWindow": map[string]interface{}{"Mode": "OFF"},
			"Target": assertions.Match_ObjectLike(&map[string]interface{}{
				"Arn":         map[string]interface{}{"Ref": refreshID},
				"RetryPolicy": map[string]interface{}{"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
			}),
		})
	})
	scheds := s.resources("AWS::Scheduler::Schedule")
	if len(scheds) != 1 {
		t.Fatalf("%d schedules", len(scheds))
	}
	var roleID string
	for _, r := range scheds {
		roleID = props(r)["Target"].(map[string]interface{})["RoleArn"].(map[string]interface{})["Fn::GetAtt"].([]interface{})[0].(string)
	}
	role := props(s.json["Resources"].(map[string]interface{})[roleID].(map[string]interface{}))
	trust := compact(role["AssumeRolePolicyDocument"])
	if !strings.Contains(trust, `"Service":"scheduler.amazonaws.com"`) || !strings.Contains(trust, `"aws:SourceAccount"`) {
		t.Errorf("scheduler role trust %s", trust)
	}
	sts := s.rolePolicies()[roleID]
	if len(sts) != 1 || compact(sts[0].Actions) != `["states:StartExecution"]` || compact(sts[0].Resources) != `[{"Ref":"`+refreshID+`"}]` {
		t.Errorf("scheduler role policy %s", compact(sts))
	}
	// Another schedule expression from context.
	s2 := synth(t, map[string]interface{}{"refreshSchedule": "rate(5 minutes)"})
	check(t, "schedule from context", func() {
		s2.template.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]interface{}{"ScheduleExpression": "rate(5 minutes)"})
	})
}

func TestHTTPAPI(t *testing.T) {
	s := defaultStack(t)
	tpl := s.template
	webhookID := ""
	for id, r := range s.resources("AWS::Lambda::Function") {
		if props(r)["Handler"] == functions.Webhook {
			webhookID = id
		}
	}
	check(t, "api", func() {
		// Dual stack: /ip shows an IPv6 asker their IPv6 address.
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), map[string]interface{}{"ProtocolType": "HTTP", "IpAddressType": "dualstack"})
	})
	check(t, "route", func() {
		tpl.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Route"), jsii.Number(3))
		for _, key := range []string{"GET /ip", "GET /bans"} {
			tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), map[string]interface{}{"RouteKey": key})
		}
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), map[string]interface{}{
			"RouteKey": map[string]interface{}{"Fn::Join": []interface{}{"", []interface{}{"POST " + app.WebhookPathPrefix, map[string]interface{}{"Ref": WebhookPathKeyParameter}}}},
		})
	})
	// The path key (#12, flood protection): a parameter with no default, so
	// every stack has its own, and a pattern CloudFormation enforces.
	check(t, "path key parameter", func() {
		tpl.HasParameter(jsii.String(WebhookPathKeyParameter), map[string]interface{}{
			"Type": "String", "AllowedPattern": app.WebhookPathKeyPattern, "Default": assertions.Match_Absent(),
		})
	})
	keyRE := regexp.MustCompile(app.WebhookPathKeyPattern)
	for key, ok := range map[string]bool{
		"3f9c2a7e1b0d4c8a9e6f5b2d1c0a7e93":   true, // openssl rand -hex 16
		"Zk3_q-8vT0bYcWm2LrNs4HjXa9PeUdGf":   true,
		"":                                   false,
		"chatwork":                           false,
		"3f9c2a7e1b0d4c8a9e6f5b2d1c0a7e9":    false, // 31 characters: under 128 bits as hex
		"3f9c2a7e1b0d4c8a/9e6f5b2d1c0a7e93":  false,
		"3f9c2a7e1b0d4c8a9e6f5b2d1c0a7e93\n": false,
		"3f9c2a7e1b0d4c8a%2F9e6f5b2d1c0a7e9": false,
	} {
		if keyRE.MatchString(key) != ok {
			t.Errorf("path key %q: allowed %v, want %v", key, !ok, ok)
		}
	}
	check(t, "webhook URL output carries the key", func() {
		tpl.HasOutput(jsii.String("WebhookUrl"), map[string]interface{}{
			"Value": map[string]interface{}{"Fn::Join": []interface{}{"", assertions.Match_ArrayWith(&[]interface{}{"/chatwork/", map[string]interface{}{"Ref": WebhookPathKeyParameter}})}},
		})
	})
	check(t, "integration", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Integration"), map[string]interface{}{
			"IntegrationType":      "AWS_PROXY",
			"PayloadFormatVersion": "2.0",
			"IntegrationUri":       map[string]interface{}{"Fn::GetAtt": []interface{}{webhookID, "Arn"}},
		})
	})
	check(t, "stage", func() {
		tpl.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Stage"), jsii.Number(1))
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]interface{}{
			"StageName":  "$default",
			"AutoDeploy": true,
			"DefaultRouteSettings": map[string]interface{}{
				"ThrottlingRateLimit":  Defaults.APIRateLimit,
				"ThrottlingBurstLimit": Defaults.APIBurstLimit,
			},
			"AccessLogSettings": map[string]interface{}{
				"DestinationArn": map[string]interface{}{"Fn::GetAtt": []interface{}{assertions.Match_StringLikeRegexp(jsii.String("^ApiAccessLogs")), "Arn"}},
				"Format":         assertions.Match_StringLikeRegexp(jsii.String(`"requestId":"\$context.requestId"`)),
			},
		})
	})
	check(t, "invoke permission", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), map[string]interface{}{
			"Action":       "lambda:InvokeFunction",
			"Principal":    "apigateway.amazonaws.com",
			"FunctionName": map[string]interface{}{"Fn::GetAtt": []interface{}{webhookID, "Arn"}},
		})
	})
	check(t, "webhook url output", func() {
		tpl.HasOutput(jsii.String("WebhookUrl"), map[string]interface{}{})
	})
}

func TestBuckets(t *testing.T) {
	s := defaultStack(t)
	tpl := s.template
	buckets := s.resources("AWS::S3::Bucket")
	if len(buckets) != 2 {
		t.Fatalf("%d buckets, want the data bucket and its access-log bucket", len(buckets))
	}
	for id, r := range buckets {
		p := props(r)
		if compact(p["PublicAccessBlockConfiguration"]) != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` {
			t.Errorf("%s: public access block %s", id, compact(p["PublicAccessBlockConfiguration"]))
		}
		if !strings.Contains(compact(p["BucketEncryption"]), `"SSEAlgorithm":"AES256"`) {
			t.Errorf("%s: encryption %s", id, compact(p["BucketEncryption"]))
		}
		if r["DeletionPolicy"] != "Retain" {
			t.Errorf("%s: deletion policy %v", id, r["DeletionPolicy"])
		}
	}
	dataID := idOf(s.stack.Stack, cfn(s.stack.Bucket))
	data := props(buckets[dataID])
	if !strings.Contains(compact(data["LoggingConfiguration"]), `"DestinationBucketName":{"Ref":"AccessLogBucket`) {
		t.Errorf("data bucket logging %s", compact(data["LoggingConfiguration"]))
	}
	rules := compact(data["LifecycleConfiguration"])
	for _, want := range []string{
		`{"ExpirationInDays":7,"Id":"expire-command-output","Prefix":"command-output/","Status":"Enabled"}`,
		`{"ExpirationInDays":30,"Id":"expire-reply-marks","Prefix":"replies/","Status":"Enabled"}`,
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("data bucket lifecycle %s lacks %s", rules, want)
		}
	}
	if strings.Contains(rules, "banlists/") {
		t.Errorf("ban lists must not expire: %s", rules)
	}
	// enforceSSL and minimum TLS on both buckets.
	check(t, "ssl policies", func() {
		tpl.ResourcePropertiesCountIs(jsii.String("AWS::S3::BucketPolicy"), map[string]interface{}{
			"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
				assertions.Match_ObjectLike(&map[string]interface{}{
					"Effect":    "Deny",
					"Condition": map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}},
				}),
				assertions.Match_ObjectLike(&map[string]interface{}{
					"Effect":    "Deny",
					"Condition": map[string]interface{}{"NumericLessThan": map[string]interface{}{"s3:TlsVersion": 1.2}},
				}),
			})},
		}, jsii.Number(2))
	})
}

// One secret per token under a customer managed key: the webhook reads the
// webhook token only, notify the API token only, each through its own
// GetSecretValue grant and its own key policy statement.
func TestSecrets(t *testing.T) {
	s := defaultStack(t)
	secrets := s.resources("AWS::SecretsManager::Secret")
	if len(secrets) != 3 {
		t.Fatalf("%d secrets, want 3 (webhook token, API token, page link key)", len(secrets))
	}
	keyID := ""
	for id, r := range s.resources("AWS::KMS::Key") {
		if strings.HasPrefix(id, "ChatworkTokensKey") {
			keyID = id
			if props(r)["EnableKeyRotation"] != true {
				t.Errorf("tokens key without rotation")
			}
		}
	}
	if keyID == "" {
		t.Fatal("no ChatworkTokensKey")
	}
	secretOf := map[string]string{} // token key → logical id
	for id, r := range secrets {
		p := props(r)
		if compact(p["KmsKeyId"]) != `{"Fn::GetAtt":["`+keyID+`","Arn"]}` && compact(p["KmsKeyId"]) != `{"Ref":"`+keyID+`"}` {
			t.Errorf("%s: key %s, want the tokens key", id, compact(p["KmsKeyId"]))
		}
		// Named after the stack's unique id (no clash with a secret in its
		// recovery window), with the token in the name.
		if name := compact(p["Name"]); !strings.Contains(name, `"Ref":"AWS::StackId"`) {
			t.Errorf("%s: name %s does not contain the stack id", id, name)
		}
		switch {
		case strings.HasPrefix(id, "ChatworkWebhookSecret"):
			secretOf["webhook_token"] = id
			want := `{"ExcludePunctuation":true,"GenerateStringKey":"webhook_token","PasswordLength":32,"SecretStringTemplate":"{}"}`
			if compact(p["GenerateSecretString"]) != want || p["SecretString"] != nil {
				t.Errorf("webhook secret: %s", compact(p))
			}
		case strings.HasPrefix(id, "ChatworkApiSecret"):
			secretOf["api_token"] = id
			// A placeholder, never a token.
			if p["SecretString"] != `{"api_token":""}` || p["GenerateSecretString"] != nil {
				t.Errorf("api secret: %s", compact(p))
			}
		case strings.HasPrefix(id, "PageLinkSecret"):
			secretOf["page_link_key"] = id
			// The whole string is the HMAC key: random, made by CloudFormation.
			if want := `{"ExcludePunctuation":true,"PasswordLength":64}`; compact(p["GenerateSecretString"]) != want || p["SecretString"] != nil {
				t.Errorf("page secret: %s", compact(p))
			}
		default:
			t.Errorf("unexpected secret %s", id)
		}
	}
	roleOf := s.handlerOfRole()
	ref := func(ids ...string) string {
		out := ""
		for _, id := range ids {
			out += `[{"Ref":"` + id + `"}]`
		}
		return out
	}
	want := map[string]string{
		functions.Webhook: ref(secretOf["webhook_token"]),
		functions.Notify:  ref(secretOf["api_token"], secretOf["page_link_key"]),
		functions.Policy:  ref(secretOf["api_token"]),
		functions.Page:    ref(secretOf["page_link_key"]),
	}
	readers := map[string]string{}
	for role, sts := range s.rolePolicies() {
		for _, st := range sts {
			if hasAction(st, "secretsmanager:GetSecretValue") {
				readers[roleOf[role]] += compact(st.Resources)
			}
			for _, a := range st.Actions {
				if strings.HasPrefix(a, "kms:") {
					t.Errorf("%s: identity policy grants %s (the key policy alone decides)", roleOf[role], a)
				}
			}
		}
	}
	for h, secrets := range want {
		if readers[h] != secrets {
			t.Errorf("%s reads %s, want only %s", h, readers[h], secrets)
		}
		delete(readers, h)
	}
	for h, r := range readers {
		t.Errorf("%s reads secret %s", h, r)
	}
	// Key policy: each reader may decrypt only via Secrets Manager, only its
	// own secret's encryption context.
	key := props(s.json["Resources"].(map[string]interface{})[keyID].(map[string]interface{}))
	decrypters := map[string][]string{}
	for _, st := range asList(key["KeyPolicy"].(map[string]interface{})["Statement"]) {
		st := st.(map[string]interface{})
		p, _ := st["Principal"].(map[string]interface{})
		arn, _ := p["AWS"].(map[string]interface{})
		getAtt, ok := arn["Fn::GetAtt"].([]interface{})
		if !ok {
			continue
		}
		h := roleOf[getAtt[0].(string)]
		c := compact(st["Condition"])
		if st["Action"] != "kms:Decrypt" || !strings.Contains(c, `"kms:ViaService":{"Fn::Join":["",["secretsmanager.",{"Ref":"AWS::Region"},".amazonaws.com"]]}`) ||
			!strings.Contains(c, `"kms:EncryptionContext:SecretARN"`) {
			t.Errorf("%s: key statement %s", h, compact(st))
		}
		decrypters[h] = append(decrypters[h], regexp.MustCompile(`/[a-z_]+-\?{6}`).FindString(c))
	}
	for h, secrets := range decrypters {
		slices.Sort(secrets)
		decrypters[h] = secrets
	}
	if want := map[string][]string{
		functions.Webhook: {"/webhook_token-??????"},
		functions.Notify:  {"/api_token-??????", "/page_link_key-??????"},
		functions.Policy:  {"/api_token-??????"},
		functions.Page:    {"/page_link_key-??????"},
	}; !reflect.DeepEqual(decrypters, want) {
		t.Errorf("key policy decrypters %v, want %v", decrypters, want)
	}

	// With webhookSecretName and apiSecretName the stack references the
	// existing token secrets by name; only the page key is created.
	s2 := synth(t, map[string]interface{}{"webhookSecretName": "prod/sshguard-unban/webhook", "apiSecretName": "prod/sshguard-unban/api"})
	check(t, "imported secrets", func() {
		s2.template.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(1))
		for h, v := range map[string][2]string{
			"webhook": {"CHATWORK_WEBHOOK_SECRET_ID", "prod/sshguard-unban/webhook"},
			"notify":  {"CHATWORK_API_SECRET_ID", "prod/sshguard-unban/api"},
		} {
			s2.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]interface{}{
				"Handler":     h,
				"Environment": map[string]interface{}{"Variables": assertions.Match_ObjectLike(&map[string]interface{}{v[0]: v[1]})},
			})
		}
	})
	for _, st := range s2.statements() {
		if hasAction(st, "secretsmanager:GetSecretValue") && !strings.Contains(compact(st.Resources), ":secret:prod/sshguard-unban/webhook-??????") &&
			!strings.Contains(compact(st.Resources), ":secret:prod/sshguard-unban/api-??????") && !strings.Contains(compact(st.Resources), `"Ref":"PageLinkSecret`) {
			t.Errorf("imported secret read on %s", compact(st.Resources))
		}
	}
}

func TestDocuments(t *testing.T) {
	s := defaultStack(t)
	docs := s.resources("AWS::SSM::Document")
	if len(docs) != 2 {
		t.Fatalf("%d documents", len(docs))
	}
	check(t, "unban document", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SSM::Document"), map[string]interface{}{
			"DocumentType":   "Command",
			"DocumentFormat": "JSON",
			"Content": assertions.Match_ObjectLike(&map[string]interface{}{
				"schemaVersion": "2.2",
				"parameters": map[string]interface{}{
					"addresses": assertions.Match_ObjectLike(&map[string]interface{}{
						"type":           "StringList",
						"allowedPattern": AddressItemPattern,
						"maxItems":       5,
						"minItems":       1,
					}),
				},
				"mainSteps": []interface{}{assertions.Match_ObjectLike(&map[string]interface{}{
					"action": "aws:runShellScript",
					"name":   "sshguardUnban",
				})},
			}),
		})
	})
	check(t, "report document", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SSM::Document"), map[string]interface{}{
			"DocumentType": "Command",
			"Content": assertions.Match_ObjectLike(&map[string]interface{}{
				"schemaVersion": "2.2",
				"parameters":    assertions.Match_Absent(),
				"mainSteps": []interface{}{assertions.Match_ObjectLike(&map[string]interface{}{
					"action": "aws:runShellScript",
					"name":   "sshguardReport",
				})},
			}),
		})
	})
	// Each document embeds its script verbatim.
	for id, script := range map[string]string{"UnbanDocument": sources.UnbanScript, "ReportDocument": sources.ReportScript} {
		content := props(docs[id])["Content"].(map[string]interface{})
		step := asList(content["mainSteps"])[0].(map[string]interface{})
		var lines []string
		for _, l := range asList(step["inputs"].(map[string]interface{})["runCommand"]) {
			lines = append(lines, l.(string))
		}
		if !strings.Contains(strings.Join(lines, "\n")+"\n", "\n"+script) {
			t.Errorf("%s does not embed its script verbatim", id)
		}
	}
}

func TestAlarms(t *testing.T) {
	s := defaultStack(t)
	topics := s.resources("AWS::SNS::Topic")
	if len(topics) != 1 {
		t.Fatalf("%d topics", len(topics))
	}
	var topicID string
	for id, r := range topics {
		topicID = id
		if !strings.Contains(compact(props(r)["KmsMasterKeyId"]), "AlarmTopicKey") {
			t.Errorf("topic not encrypted with the stack's key: %s", compact(props(r)))
		}
	}
	check(t, "topic ssl", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]interface{}{
			"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
				assertions.Match_ObjectLike(&map[string]interface{}{
					"Effect":    "Deny",
					"Condition": map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}},
				}),
			})},
		})
	})
	// A topic policy replaces SNS's default one: without this Allow no
	// alarm is ever delivered. Scoped to this account's alarms (confused
	// deputy).
	check(t, "topic lets this account's alarms publish", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]interface{}{
			"Topics": []interface{}{map[string]interface{}{"Ref": topicID}},
			"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
				map[string]interface{}{
					"Sid":       "AllowCloudWatchAlarms",
					"Effect":    "Allow",
					"Principal": map[string]interface{}{"Service": "cloudwatch.amazonaws.com"},
					"Action":    "sns:Publish",
					"Resource":  map[string]interface{}{"Ref": topicID},
					"Condition": map[string]interface{}{
						"StringEquals": map[string]interface{}{"aws:SourceAccount": map[string]interface{}{"Ref": "AWS::AccountId"}},
						"ArnLike": map[string]interface{}{"aws:SourceArn": map[string]interface{}{"Fn::Join": []interface{}{"", []interface{}{
							"arn:", map[string]interface{}{"Ref": "AWS::Partition"}, ":cloudwatch:", map[string]interface{}{"Ref": "AWS::Region"},
							":", map[string]interface{}{"Ref": "AWS::AccountId"}, ":alarm:*",
						}}}},
					},
				},
			})},
		})
	})
	check(t, "key lets CloudWatch publish", func() {
		s.template.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]interface{}{
			"EnableKeyRotation": true,
			"KeyPolicy": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
				assertions.Match_ObjectLike(&map[string]interface{}{
					"Principal": map[string]interface{}{"Service": "cloudwatch.amazonaws.com"},
				}),
			})},
		})
	})
	want := map[string]bool{}
	// Refresh (Express: no status-change events, never aborted) has
	// alarms; unban executions are announced one by one (below).
	refreshID := idOf(s.stack.Stack, cfn(s.stack.Refresh))
	for _, m := range []string{"ExecutionsFailed", "ExecutionsTimedOut"} {
		want[refreshID+"/"+m] = true
	}
	for id, r := range s.resources("AWS::CloudWatch::Alarm") {
		p := props(r)
		if compact(p["AlarmActions"]) != `[{"Ref":"`+topicID+`"}]` {
			t.Errorf("%s: actions %s", id, compact(p["AlarmActions"]))
		}
		if p["Namespace"] != "AWS/States" || p["MetricName"] == "ExecutionsStarted" {
			continue
		}
		sm := asList(p["Dimensions"])[0].(map[string]interface{})["Value"].(map[string]interface{})["Ref"].(string)
		key := sm + "/" + p["MetricName"].(string)
		if !want[key] {
			t.Errorf("unexpected alarm %s", key)
		}
		if p["Threshold"] != 1.0 || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || p["TreatMissingData"] != "notBreaching" {
			t.Errorf("%s: %s", key, compact(p))
		}
		delete(want, key)
	}
	for k := range want {
		t.Errorf("no alarm on %s", k)
	}
	unbanID := idOf(s.stack.Stack, cfn(s.stack.Unban))
	check(t, "each failed unban execution, by name", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]interface{}{
			"State": "ENABLED",
			"EventPattern": map[string]interface{}{
				"source":      []interface{}{"aws.states"},
				"detail-type": []interface{}{"Step Functions Execution Status Change"},
				"detail": map[string]interface{}{
					"stateMachineArn": []interface{}{map[string]interface{}{"Ref": unbanID}},
					"status":          []interface{}{"FAILED", "TIMED_OUT", "ABORTED"},
				},
			},
			"Targets": []interface{}{map[string]interface{}{
				"Id":      "AlarmTopic",
				"Arn":     map[string]interface{}{"Ref": topicID},
				"RoleArn": map[string]interface{}{"Fn::GetAtt": []interface{}{assertions.Match_StringLikeRegexp(jsii.String("^UnbanEndedBadlyRole")), "Arn"}},
				"InputTransformer": map[string]interface{}{
					"InputPathsMap": map[string]interface{}{"name": "$.detail.name", "status": "$.detail.status", "arn": "$.detail.executionArn"},
					"InputTemplate": UnbanEndedBadlyMessage,
				},
			}},
		})
	})
	check(t, "an undelivered failure notice alarms", func() {
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]interface{}{
			"Namespace": "AWS/Events", "MetricName": "FailedInvocations",
			"Dimensions":   []interface{}{map[string]interface{}{"Name": "RuleName", "Value": map[string]interface{}{"Ref": assertions.Match_StringLikeRegexp(jsii.String("^UnbanEndedBadlyRule"))}}},
			"AlarmActions": []interface{}{map[string]interface{}{"Ref": topicID}},
		})
	})
	check(t, "EventBridge's role, for this account only", func() {
		s.template.HasResourceProperties(jsii.String("AWS::IAM::Role"), map[string]interface{}{
			"AssumeRolePolicyDocument": map[string]interface{}{"Statement": []interface{}{map[string]interface{}{
				"Action": "sts:AssumeRole", "Effect": "Allow",
				"Principal": map[string]interface{}{"Service": "events.amazonaws.com"},
				"Condition": map[string]interface{}{"StringEquals": map[string]interface{}{"aws:SourceAccount": map[string]interface{}{"Ref": "AWS::AccountId"}}},
			}}},
		})
	})
	// The template is a JSON string whose placeholders are the paths'.
	var msg string
	if err := json.Unmarshal([]byte(UnbanEndedBadlyMessage), &msg); err != nil || !strings.Contains(msg, "<name>") || !strings.Contains(msg, "<arn>") || !strings.Contains(msg, "<status>") {
		t.Errorf("input template %s: %v", UnbanEndedBadlyMessage, err)
	}
	// Refresh heartbeat: no execution started for three periods (min 15 min).
	check(t, "refresh not running", func() {
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]interface{}{
			"Namespace":          "AWS/States",
			"MetricName":         "ExecutionsStarted",
			"ComparisonOperator": "LessThanThreshold",
			"Threshold":          1,
			"EvaluationPeriods":  3,
			"Period":             300,
			"TreatMissingData":   "breaching",
		})
	})
	for expr, want := range map[string]float64{"rate(1 minute)": 60, "rate(5 minutes)": 300, "rate(2 hours)": 7200, "cron(0 * * * ? *)": 0} {
		if got, _ := ratePeriodSeconds(expr); got != want {
			t.Errorf("ratePeriodSeconds(%q) = %v, want %v", expr, got, want)
		}
	}
	// Optional e-mail subscription.
	if n := len(s.resources("AWS::SNS::Subscription")); n != 0 {
		t.Errorf("%d subscriptions without alarmEmail", n)
	}
	s2 := synth(t, map[string]interface{}{"alarmEmail": "sre@example.com"})
	check(t, "email subscription", func() {
		s2.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]interface{}{
			"Protocol": "email", "Endpoint": "sre@example.com",
		})
	})
}

// The README's test-alarm step names an alarm by the name CloudFormation
// generates (STACK-LOGICALID-SUFFIX): that prefix must match an alarm.
func TestREADMETestAlarmExists(t *testing.T) {
	root, _ := testSources(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--alarm-name-prefix (\S+)`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README: no --alarm-name-prefix in the deploy steps")
	}
	prefix, ok := strings.CutPrefix(string(m[1]), StackName+"-")
	if !ok {
		t.Fatalf("README alarm prefix %q does not start with the stack name %s-", m[1], StackName)
	}
	for id := range defaultStack(t).resources("AWS::CloudWatch::Alarm") {
		if strings.HasPrefix(id, prefix) {
			return
		}
	}
	t.Errorf("README fires alarm %s*, but no alarm's logical id starts with %q", m[1], prefix)
}

func TestHostPolicy(t *testing.T) {
	s := defaultStack(t)
	id := idOf(s.stack.Stack, cfn(s.stack.HostPolicy))
	var sts []statement
	for _, st := range s.statements() {
		if st.Policy == id {
			sts = append(sts, st)
		}
	}
	bucket := idOf(s.stack.Stack, cfn(s.stack.Bucket))
	want := []string{
		`UploadCommandOutput ["s3:PutObject","s3:PutObjectAcl"] [{"Fn::Join":["",[{"Fn::GetAtt":["` + bucket + `","Arn"]},"/command-output/*"]]}]`,
		`CheckBucketEncryption ["s3:GetEncryptionConfiguration"] [{"Fn::GetAtt":["` + bucket + `","Arn"]}]`,
	}
	var got []string
	for _, st := range sts {
		got = append(got, st.Sid+" "+compact(st.Actions)+" "+compact(st.Resources))
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("host policy\n got %v\nwant %v", got, want)
	}
	check(t, "host policy output", func() {
		s.template.HasOutput(jsii.String("HostPolicyArn"), map[string]interface{}{
			"Value":  map[string]interface{}{"Ref": id},
			"Export": map[string]interface{}{"Name": StackName + "-HostPolicyArn"},
		})
	})
}

// IAM: no service wildcards, Resource "*" only where AWS offers nothing
// narrower, SendCommand only on the right document and tagged instances.
func TestIAMScoping(t *testing.T) {
	s := defaultStack(t)
	// Actions that support no resource-level permission, by who may hold them.
	starOK := map[string]bool{
		"xray:PutTraceSegments": true, "xray:PutTelemetryRecords": true,
		"xray:GetSamplingRules": true, "xray:GetSamplingTargets": true,
		"logs:CreateLogDelivery": true, "logs:GetLogDelivery": true, "logs:UpdateLogDelivery": true,
		"logs:DeleteLogDelivery": true, "logs:ListLogDeliveries": true, "logs:PutResourcePolicy": true,
		"logs:DescribeResourcePolicies": true, "logs:DescribeLogGroups": true,
		"ssm:ListCommandInvocations": true, "ssm:GetCommandInvocation": true, "ssm:DescribeInstanceInformation": true,
		"states:SendTaskSuccess": true, "states:SendTaskFailure": true, // the task token names the execution
	}
	for _, st := range s.statements() {
		if st.Effect != "Allow" {
			continue
		}
		for _, a := range st.Actions {
			if strings.Contains(a, "*") {
				t.Errorf("%s: wildcard action %s", st.Policy, a)
			}
		}
		for _, r := range st.Resources {
			if r == "*" {
				for _, a := range st.Actions {
					if !starOK[a] {
						t.Errorf("%s: %s on Resource \"*\"", st.Policy, a)
					}
				}
			}
		}
	}

	// SendCommand: unban and refresh-list only, each on its own document and
	// on instances with the target tag.
	roleOf := s.handlerOfRole()
	wantDoc := map[string]string{functions.Unban: "UnbanDocument", functions.RefreshList: "ReportDocument"}
	seen := map[string]int{}
	for role, sts := range s.rolePolicies() {
		for _, st := range sts {
			if !hasAction(st, "ssm:SendCommand") {
				continue
			}
			h := roleOf[role]
			doc, ok := wantDoc[h]
			if !ok {
				t.Errorf("role %s (%q) may send commands", role, h)
				continue
			}
			if len(st.Actions) != 1 || len(st.Resources) != 1 {
				t.Errorf("%s: SendCommand statement %s", h, compact(st))
				continue
			}
			res := compact(st.Resources[0])
			switch {
			case strings.Contains(res, ":document/"):
				if !strings.Contains(res, `{"Ref":"`+doc+`"}`) || st.Condition != nil {
					t.Errorf("%s: SendCommand document resource %s", h, res)
				}
				seen[h+"/doc"]++
			case strings.HasSuffix(res, `":instance/*"]]}`):
				want := `{"StringEquals":{"ssm:resourceTag/sshguard-unban":"enabled"}}`
				if compact(st.Condition) != want {
					t.Errorf("%s: SendCommand on instances with condition %s, want %s", h, compact(st.Condition), want)
				}
				seen[h+"/instances"]++
			default:
				t.Errorf("%s: SendCommand on %s", h, res)
			}
		}
	}
	for _, k := range []string{"unban/doc", "unban/instances", "refresh-list/doc", "refresh-list/instances"} {
		if seen[k] != 1 {
			t.Errorf("%s: %d SendCommand statements, want 1", k, seen[k])
		}
	}

	// S3 per function: exactly these object grants.
	wantS3 := map[string][]string{
		functions.Lookup:         {"s3:GetObject banlists/*", "s3:ListBucket"},
		functions.Unban:          {"s3:GetObject commands/coalesce/*", "s3:ListBucket", "s3:PutObject commands/coalesce/*"},
		functions.WaitForCommand: {"s3:GetObject command-output/*", "s3:GetObject commands/*", "s3:ListBucket", "s3:PutObject commands/*"},
		functions.RefreshList:    {"s3:GetObject banlists/*", "s3:GetObject command-output/*", "s3:ListBucket", "s3:PutObject banlists/*"},
		functions.Notify: {"s3:DeleteObject outbox/*", "s3:GetObject outbox/*", "s3:GetObject replies/*", "s3:ListBucket",
			"s3:PutObject outbox/*", "s3:PutObject replies/*"},
		functions.Page: {"s3:GetObject banlists/*", "s3:ListBucket"},
	}
	for role, sts := range s.rolePolicies() {
		h, ok := roleOf[role]
		if !ok {
			continue
		}
		var got []string
		for _, st := range sts {
			for _, a := range st.Actions {
				if !strings.HasPrefix(a, "s3:") {
					continue
				}
				for _, r := range st.Resources {
					rs := compact(r)
					if i := strings.Index(rs, `"/`); i >= 0 {
						got = append(got, a+" "+strings.SplitN(rs[i+2:], `"`, 2)[0])
					} else {
						got = append(got, a)
					}
				}
			}
		}
		sort.Strings(got)
		if want := wantS3[h]; !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: S3 grants %v, want %v", h, got, want)
		}
	}

	// Starting executions: the webhook (unban machine) only.
	unbanID := idOf(s.stack.Stack, cfn(s.stack.Unban))
	for role, sts := range s.rolePolicies() {
		for _, st := range sts {
			if hasAction(st, "states:StartExecution") {
				if h, ok := roleOf[role]; ok && (h != functions.Webhook || compact(st.Resources) != `[{"Ref":"`+unbanID+`"}]`) {
					t.Errorf("%s may start %s", h, compact(st.Resources))
				}
			}
		}
	}
}

func TestOutputs(t *testing.T) {
	s := defaultStack(t)
	for _, o := range []string{"WebhookUrl", "HostPolicyArn", "ChatworkWebhookSecretId", "ChatworkApiSecretId", "DataBucketName",
		"UnbanStateMachineArn", "RefreshStateMachineArn", "UnbanDocumentName", "ReportDocumentName", "AlarmTopicArn", "TargetTag"} {
		check(t, "output "+o, func() { s.template.HasOutput(jsii.String(o), map[string]interface{}{}) })
	}
}

// The repository's cdk.json: the app line and no account-specific values.
func TestCDKJSON(t *testing.T) {
	root, _ := testSources(t)
	f := readCDKJSON(t, root)
	b := f.raw
	if f.App != "go run ./cdk" {
		t.Errorf("app = %q", f.App)
	}
	// Only CDK feature flags: defaults live in config.go (Defaults), and
	// account-specific values stay out of the repository.
	for k, v := range f.Context {
		if !strings.HasPrefix(k, "@") {
			t.Errorf("cdk.json sets %s = %v: defaults belong in cdk/config.go, account values on the command line", k, v)
		}
	}
	if strings.Contains(string(b), "arn:aws") || strings.Contains(string(b), "account") && strings.Contains(string(b), "\"account\"") {
		t.Errorf("cdk.json holds an ARN or account")
	}
}
