package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/shared/functions"
)

// The synthesized template evaluated as AWS would evaluate it, with
// concrete ARNs in a fixed account and region.
const (
	simAccount   = "111122223333"
	otherAccount = "444455556666"
	simRegion    = "ap-northeast-1"
	simStackID   = "arn:aws:cloudformation:" + simRegion + ":" + simAccount + ":stack/" + StackName + "/0f6c2a70-1c2d-11f0-8e4a-0a1b2c3d4e5f"
	// A tagged host's instance role session (the role is the operator's;
	// HostPolicy is attached to it).
	simHostSession = "arn:aws:sts::" + simAccount + ":assumed-role/WebServerRole/i-0aaaaaaaaaaaaaaa1"
)

// simTemplate resolves the CloudFormation intrinsics the template uses
// (Ref, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split, Fn::Sub and the
// pseudo parameters) to the names and ARNs CloudFormation would give the
// resources in simAccount/simRegion.
type simTemplate struct {
	resources map[string]map[string]interface{}
}

func (s simTemplate) typ(id string) string {
	r, ok := s.resources[id]
	if !ok {
		panic("template: no resource " + id)
	}
	return r["Type"].(string)
}

// simARN is a regional ARN in the simulated account.
func simARN(service, rest string) string {
	return "arn:aws:" + service + ":" + simRegion + ":" + simAccount + ":" + rest
}

func (s simTemplate) ref(id string) string {
	switch id {
	case "AWS::AccountId":
		return simAccount
	case "AWS::Region":
		return simRegion
	case "AWS::Partition":
		return "aws"
	case "AWS::URLSuffix":
		return "amazonaws.com"
	case "AWS::StackName":
		return StackName
	case "AWS::StackId":
		return simStackID
	}
	switch s.typ(id) {
	case "AWS::S3::Bucket":
		return strings.ToLower(id)
	case "AWS::SecretsManager::Secret":
		name := id
		if n, ok := props(s.resources[id])["Name"]; ok {
			name = s.resolve(n).(string)
		}
		return simARN("secretsmanager", "secret:"+name+"-AbCdEf") // Secrets Manager's random suffix
	case "AWS::SNS::Topic":
		return simARN("sns", id)
	case "AWS::StepFunctions::StateMachine":
		return simARN("states", "stateMachine:"+id)
	case "AWS::IAM::ManagedPolicy":
		return "arn:aws:iam::" + simAccount + ":policy/" + id
	case "AWS::KMS::Key":
		return strings.ToLower(id)
	}
	return id // roles, functions, documents, log groups: their name
}

func (s simTemplate) getAtt(id, attr string) string {
	if attr != "Arn" {
		return id + "." + attr
	}
	switch s.typ(id) {
	case "AWS::S3::Bucket":
		return "arn:aws:s3:::" + s.ref(id)
	case "AWS::IAM::Role":
		return "arn:aws:iam::" + simAccount + ":role/" + id
	case "AWS::KMS::Key":
		return simARN("kms", "key/"+s.ref(id))
	case "AWS::Lambda::Function":
		return simARN("lambda", "function:"+id)
	case "AWS::Logs::LogGroup":
		return simARN("logs", "log-group:"+id+":*")
	case "AWS::DynamoDB::Table":
		return simARN("dynamodb", "table/"+id)
	case "AWS::SecretsManager::Secret", "AWS::SNS::Topic", "AWS::StepFunctions::StateMachine":
		return s.ref(id)
	}
	return simARN("unknown", id)
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (s simTemplate) resolve(v interface{}) interface{} {
	switch t := v.(type) {
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, e := range t {
			out[i] = s.resolve(e)
		}
		return out
	case map[string]interface{}:
		if len(t) == 1 {
			for k, arg := range t {
				switch k {
				case "Ref":
					return s.ref(arg.(string))
				case "Fn::GetAtt":
					a := arg.([]interface{})
					return s.getAtt(a[0].(string), a[1].(string))
				case "Fn::Join":
					a := arg.([]interface{})
					var parts []string
					for _, p := range s.resolve(a[1]).([]interface{}) {
						parts = append(parts, p.(string))
					}
					return strings.Join(parts, a[0].(string))
				case "Fn::Select":
					a := s.resolve(arg).([]interface{})
					return a[1].([]interface{})[int(a[0].(float64))]
				case "Fn::Split":
					a := s.resolve(arg).([]interface{})
					var out []interface{}
					for _, p := range strings.Split(a[1].(string), a[0].(string)) {
						out = append(out, p)
					}
					return out
				case "Fn::Sub":
					str, _ := arg.(string)
					return subVar.ReplaceAllStringFunc(str, func(m string) string {
						name := m[2 : len(m)-1]
						if id, attr, ok := strings.Cut(name, "."); ok {
							return s.getAtt(id, attr)
						}
						return s.ref(name)
					})
				}
			}
		}
		out := map[string]interface{}{}
		for k, e := range t {
			out[k] = s.resolve(e)
		}
		return out
	}
	return v
}

// simRequest is one request for cdk/testdata/iam-simulate.mjs.
type simRequest struct {
	Name             string            `json:"name"`
	Principal        string            `json:"principal"`
	Action           string            `json:"action"`
	Resource         string            `json:"resource"`
	ResourceAccount  string            `json:"resourceAccount"`
	Context          map[string]string `json:"context"`
	IdentityPolicies []interface{}     `json:"identityPolicies"`
	ResourcePolicy   interface{}       `json:"resourcePolicy,omitempty"`
}

// identityPolicies are the resolved policy documents attached to a role
// (AWS::IAM::Policy resources naming it).
func (s simTemplate) identityPolicies(roleID string) []interface{} {
	var out []interface{}
	for _, r := range s.resources {
		if r["Type"] != "AWS::IAM::Policy" {
			continue
		}
		for _, role := range asList(props(r)["Roles"]) {
			if compact(role) == `{"Ref":"`+roleID+`"}` {
				out = append(out, s.resolve(props(r)["PolicyDocument"]))
			}
		}
	}
	return out
}

// resourcePolicy is the policy of the bucket, topic or key a request's
// resource belongs to (nil if it has none).
func (s simTemplate) resourcePolicy(resource string) interface{} {
	for _, r := range s.resources {
		p := props(r)
		switch r["Type"] {
		case "AWS::S3::BucketPolicy":
			b := "arn:aws:s3:::" + s.resolve(p["Bucket"]).(string)
			if resource == b || strings.HasPrefix(resource, b+"/") {
				return s.resolve(p["PolicyDocument"])
			}
		case "AWS::SNS::TopicPolicy":
			for _, t := range s.resolve(p["Topics"]).([]interface{}) {
				if t == resource {
					return s.resolve(p["PolicyDocument"])
				}
			}
		}
	}
	for id, r := range s.resources {
		if r["Type"] == "AWS::KMS::Key" && s.getAtt(id, "Arn") == resource {
			return s.resolve(props(r)["KeyPolicy"])
		}
	}
	return nil
}

// simulate runs the requests through the independent evaluator.
func simulate(t *testing.T, root string, reqs []simRequest) map[string]string {
	t.Helper()
	node := filepath.Join(root, "node_modules", ".bin", "node")
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@cloud-copilot", "iam-simulate")); err != nil {
		t.Skip("node_modules/@cloud-copilot/iam-simulate missing: run npm ci (make test does)")
	}
	in, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(root, "cdk", "testdata", "iam-simulate.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("iam-simulate: %v\n%s", err, stderr.String())
	}
	var res []struct {
		Name   string          `json:"name"`
		Result string          `json:"result"`
		Errors json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iam-simulate output: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range res {
		if r.Result == "" {
			t.Errorf("%s: the simulator refused the request: %s", r.Name, r.Errors)
		}
		got[r.Name] = r.Result
	}
	return got
}

// The roles' identity policies and the resource policies (bucket, topic,
// keys) of the synthesized template, evaluated by an IAM simulator that is
// independent of AWS and of this code (@cloud-copilot/iam-simulate): each
// role can make the calls its code makes, and the dangerous neighbours of
// those calls are denied.
func TestIAMEvaluated(t *testing.T) {
	root, _ := testSources(t)
	syn := defaultStack(t)
	tpl := simTemplate{resources: map[string]map[string]interface{}{}}
	for id, r := range syn.json["Resources"].(map[string]interface{}) {
		tpl.resources[id] = r.(map[string]interface{})
	}
	// Logical ids by prefix (CDK appends a hash).
	idOfPrefix := func(prefix string) string {
		var found []string
		for id := range tpl.resources {
			if strings.HasPrefix(id, prefix) && len(id) == len(prefix)+8 {
				found = append(found, id)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d resources named %s…", len(found), prefix)
		}
		return found[0]
	}
	roleOf := func(handler string) string { return idOfPrefix(constructID(handler) + "Role") }
	arn := func(id string) string { return tpl.getAtt(id, "Arn") }
	bucket := arn(idOfPrefix("DataBucket"))
	obj := func(key string) string { return bucket + "/" + key }
	unbanDoc := "arn:aws:ssm:" + simRegion + ":" + simAccount + ":document/" + tpl.ref("UnbanDocument")
	reportDoc := "arn:aws:ssm:" + simRegion + ":" + simAccount + ":document/" + tpl.ref("ReportDocument")
	// AWS-owned documents have no account in their ARN, which the simulator
	// refuses; the same name in this account stands in for it.
	runShell := "arn:aws:ssm:" + simRegion + ":" + simAccount + ":document/AWS-RunShellScript"
	instance := "arn:aws:ec2:" + simRegion + ":" + simAccount + ":instance/i-0aaaaaaaaaaaaaaa1"
	tagged := map[string]string{"ssm:resourceTag/" + Defaults.TargetTagKey: Defaults.TargetTagValue}
	otherTag := map[string]string{"ssm:resourceTag/" + Defaults.TargetTagKey: "disabled"}
	webhookSecret := tpl.ref(idOfPrefix("ChatworkWebhookSecret"))
	apiSecret := tpl.ref(idOfPrefix("ChatworkApiSecret"))
	pageSecret := tpl.ref(idOfPrefix("PageLinkSecret"))
	tokensKey := arn(idOfPrefix("ChatworkTokensKey"))
	viaSM := func(secret string) map[string]string {
		return map[string]string{"kms:ViaService": "secretsmanager." + simRegion + ".amazonaws.com", "kms:EncryptionContext:SecretARN": secret}
	}
	topic := tpl.ref(idOfPrefix("AlarmTopic"))
	topicKey := arn(idOfPrefix("AlarmTopicKey"))
	alarmFrom := func(account string) map[string]string {
		return map[string]string{"aws:SourceAccount": account, "aws:SourceArn": "arn:aws:cloudwatch:" + simRegion + ":" + account + ":alarm:SshguardUnban-WebhookErrorsAlarm-X"}
	}
	unbanSM, refreshSM := tpl.ref(idOfPrefix("UnbanStateMachine")), tpl.ref(idOfPrefix("RefreshStateMachine"))
	const cmdOut = CommandOutputPrefix + "0b1c2d3e-aaaa-bbbb-cccc-000000000001/i-0aaaaaaaaaaaaaaa1/awsrunShellScript/sshguardReport/stdout"

	type row struct {
		who      string // a handler, "host", or a service principal
		action   string
		resource string
		ctx      map[string]string
		allow    bool
	}
	W, P, L, U, C, R, N := functions.Webhook, functions.Parse, functions.Lookup, functions.Unban, functions.WaitForCommand, functions.RefreshList, functions.Notify
	Po, Pg := functions.Policy, functions.Page
	table := arn(idOfPrefix("PolicyTable"))
	leading := func(key string) map[string]string { return map[string]string{"dynamodb:LeadingKeys": key} }
	rows := []row{
		// policy: the table, the API token (room members), and resuming
		// the unban machine's waiting executions.
		{Po, "dynamodb:UpdateItem", table, leading("quota#account#3000001#hour#x"), true},
		{Po, "dynamodb:GetItem", table, leading("members#567890123"), true},
		{Po, "dynamodb:UpdateItem", table, leading("approval#K7QX2M"), true},
		{Po, "dynamodb:Scan", table, nil, false},
		{Po, "dynamodb:DeleteTable", table, nil, false},
		// (SendTask* take no resource: the task token names the execution.)
		{Po, "states:SendTaskSuccess", "*", nil, true},
		{Po, "states:SendTaskFailure", "*", nil, true},
		{Po, "states:StartExecution", unbanSM, nil, false},
		{Po, "states:DeleteStateMachine", unbanSM, nil, false},
		{Po, "secretsmanager:GetSecretValue", apiSecret, nil, true},
		{Po, "kms:Decrypt", tokensKey, viaSM(apiSecret), true},
		{Po, "secretsmanager:GetSecretValue", webhookSecret, nil, false},
		{Po, "ssm:SendCommand", unbanDoc, nil, false},
		{Po, "s3:PutObject", obj(ReplyMarkPrefix + "x"), nil, false},
		// notify records approval requests: approval items only.
		{N, "dynamodb:PutItem", table, leading("approval#K7QX2M"), true},
		{N, "dynamodb:UpdateItem", table, leading("approval#K7QX2M"), true},
		{N, "dynamodb:UpdateItem", table, leading("quota#account#3000001#hour#x"), false},
		{N, "dynamodb:PutItem", table, leading("members#567890123"), false},
		{N, "dynamodb:PutItem", table, nil, false},
		{N, "states:SendTaskSuccess", "*", nil, false},
		{W, "states:SendTaskSuccess", "*", nil, false},
		// notify appends to the request history, and never replaces or
		// reads it.
		{N, "dynamodb:UpdateItem", table, leading("history#2026-12-01T23"), true},
		{N, "dynamodb:PutItem", table, leading("history#2026-12-01T23"), false},
		{N, "dynamodb:GetItem", table, leading("history#2026-12-01T23"), false},
		{N, "secretsmanager:GetSecretValue", pageSecret, nil, true},
		{N, "kms:Decrypt", tokensKey, viaSM(pageSecret), true},
		// page: the ban lists, the request history and its link key; nothing
		// else (#13).
		{Pg, "s3:GetObject", obj(BanlistPrefix + "index.json"), nil, true},
		{Pg, "s3:GetObject", obj(BanlistPrefix + "i-0aaaaaaaaaaaaaaa1.json"), nil, true},
		{Pg, "s3:ListBucket", bucket, nil, true},
		{Pg, "s3:PutObject", obj(BanlistPrefix + "index.json"), nil, false},
		{Pg, "s3:GetObject", obj(cmdOut), nil, false},
		{Pg, "s3:GetObject", obj(app.OutboxPrefix + "567890126/audit/x.json"), nil, false},
		{Pg, "s3:GetObject", obj(ReplyMarkPrefix + "chatwork-1-2"), nil, false},
		{Pg, "dynamodb:BatchGetItem", table, leading("history#2026-12-01T23"), true},
		{Pg, "dynamodb:BatchGetItem", table, leading("approval#K7QX2M"), false},
		{Pg, "dynamodb:BatchGetItem", table, leading("members#567890123"), false},
		{Pg, "dynamodb:BatchGetItem", table, nil, false},
		{Pg, "dynamodb:GetItem", table, leading("history#2026-12-01T23"), false},
		{Pg, "dynamodb:UpdateItem", table, leading("history#2026-12-01T23"), false},
		{Pg, "dynamodb:Scan", table, nil, false},
		{Pg, "secretsmanager:GetSecretValue", pageSecret, nil, true},
		{Pg, "kms:Decrypt", tokensKey, viaSM(pageSecret), true},
		{Pg, "secretsmanager:GetSecretValue", apiSecret, nil, false},
		{Pg, "secretsmanager:GetSecretValue", webhookSecret, nil, false},
		{Pg, "kms:Decrypt", tokensKey, viaSM(apiSecret), false},
		{Pg, "states:StartExecution", unbanSM, nil, false},
		{Pg, "states:ListExecutions", unbanSM, nil, false},
		{Pg, "ssm:SendCommand", unbanDoc, nil, false},
		// Only notify and page read the page key.
		{W, "secretsmanager:GetSecretValue", pageSecret, nil, false},
		{W, "kms:Decrypt", tokensKey, viaSM(pageSecret), false},
		{Po, "secretsmanager:GetSecretValue", pageSecret, nil, false},
		{"host", "secretsmanager:GetSecretValue", pageSecret, nil, false},
		// Nobody else touches the table.
		{W, "dynamodb:GetItem", table, leading("approval#K7QX2M"), false},
		{U, "dynamodb:UpdateItem", table, leading("quota#x"), false},
		{"host", "dynamodb:GetItem", table, leading("approval#K7QX2M"), false},
		// webhook: starts the unban machine and reads its own token.
		{W, "states:StartExecution", unbanSM, nil, true},
		{W, "states:StartExecution", refreshSM, nil, false},
		{W, "secretsmanager:GetSecretValue", webhookSecret, nil, true},
		{W, "kms:Decrypt", tokensKey, viaSM(webhookSecret), true},
		{W, "secretsmanager:GetSecretValue", apiSecret, nil, false},
		{W, "kms:Decrypt", tokensKey, viaSM(apiSecret), false},
		{W, "kms:Decrypt", tokensKey, nil, false}, // not through Secrets Manager
		{W, "s3:GetObject", obj(BanlistPrefix + "i-0aaaaaaaaaaaaaaa1.json"), nil, false},
		{W, "ssm:SendCommand", unbanDoc, nil, false},
		// parse: nothing at all.
		{P, "s3:GetObject", obj(BanlistPrefix + "index.json"), nil, false},
		{P, "secretsmanager:GetSecretValue", apiSecret, nil, false},
		// lookup: reads ban lists.
		{L, "s3:GetObject", obj(BanlistPrefix + "index.json"), nil, true},
		{L, "s3:ListBucket", bucket, nil, true},
		{L, "s3:PutObject", obj(BanlistPrefix + "index.json"), nil, false},
		{L, "s3:GetObject", obj(cmdOut), nil, false},
		// unban: its own document, tagged instances only.
		{U, "ssm:SendCommand", unbanDoc, nil, true},
		{U, "ssm:SendCommand", instance, tagged, true},
		{U, "ssm:SendCommand", instance, nil, false},      // untagged
		{U, "ssm:SendCommand", instance, otherTag, false}, // tag with another value
		{U, "ssm:SendCommand", runShell, nil, false},
		{U, "ssm:SendCommand", reportDoc, nil, false},
		{U, "s3:PutObject", obj(app.CommandsPrefix + "coalesce/203.0.113.5.json"), nil, true},
		{U, "s3:PutObject", obj(BanlistPrefix + "index.json"), nil, false},
		{U, "secretsmanager:GetSecretValue", apiSecret, nil, false},
		{U, "secretsmanager:GetSecretValue", webhookSecret, nil, false},
		// wait-for-command: reads invocations and output, writes outcomes.
		{C, "ssm:GetCommandInvocation", "*", nil, true},
		{C, "ssm:ListCommandInvocations", "*", nil, true},
		{C, "s3:GetObject", obj(cmdOut), nil, true},
		{C, "s3:PutObject", obj(app.CommandsPrefix + "outcome/x.json"), nil, true},
		{C, "s3:PutObject", obj(cmdOut), nil, false},
		{C, "s3:PutObject", obj(BanlistPrefix + "index.json"), nil, false},
		{C, "ssm:SendCommand", unbanDoc, nil, false},
		// refresh-list: the report document, ban lists.
		{R, "ssm:SendCommand", reportDoc, nil, true},
		{R, "ssm:SendCommand", instance, tagged, true},
		{R, "ssm:SendCommand", instance, nil, false},
		{R, "ssm:SendCommand", unbanDoc, nil, false},
		{R, "ssm:SendCommand", runShell, nil, false},
		{R, "s3:PutObject", obj(BanlistPrefix + "i-0aaaaaaaaaaaaaaa1.json"), nil, true},
		{R, "s3:GetObject", obj(cmdOut), nil, true},
		{R, "s3:DeleteObject", obj(BanlistPrefix + "index.json"), nil, false},
		{R, "s3:PutObject", obj(ReplyMarkPrefix + "x"), nil, false},
		// notify: the API token, reply marks and the outbox.
		{N, "secretsmanager:GetSecretValue", apiSecret, nil, true},
		{N, "kms:Decrypt", tokensKey, viaSM(apiSecret), true},
		{N, "secretsmanager:GetSecretValue", webhookSecret, nil, false},
		{N, "kms:Decrypt", tokensKey, viaSM(webhookSecret), false},
		{N, "s3:PutObject", obj(ReplyMarkPrefix + "chatwork-1-2"), nil, true},
		{N, "s3:DeleteObject", obj(app.OutboxPrefix + "room-1/x.json"), nil, true},
		{N, "s3:PutObject", obj(BanlistPrefix + "index.json"), nil, false},
		{N, "s3:DeleteObject", obj(ReplyMarkPrefix + "chatwork-1-2"), nil, false},
		{N, "ssm:SendCommand", unbanDoc, nil, false},
		// A tagged host uploads command output and nothing else. Which
		// host's key it writes is not enforceable in IAM: the readers check
		// the copy against SSM's own capture (TestForgedReportFromAnotherHost
		// in lambdas/refreshlist).
		{"host", "s3:PutObject", obj(cmdOut), nil, true},
		{"host", "s3:GetObject", obj(cmdOut), nil, false},
		{"host", "s3:PutObject", obj(BanlistPrefix + "i-0aaaaaaaaaaaaaaa1.json"), nil, false},
		{"host", "s3:PutObject", obj(app.CommandsPrefix + "outcome/x.json"), nil, false},
		{"host", "s3:PutObject", obj(ReplyMarkPrefix + "x"), nil, false},
		{"host", "secretsmanager:GetSecretValue", apiSecret, nil, false},
		// The alarm topic: this account's alarms publish (and use its key);
		// another account's cannot.
		{"cloudwatch.amazonaws.com", "sns:Publish", topic, alarmFrom(simAccount), true},
		{"cloudwatch.amazonaws.com", "kms:GenerateDataKey", topicKey, nil, true},
		{"cloudwatch.amazonaws.com", "sns:Publish", topic, alarmFrom(otherAccount), false},
		{"cloudwatch.amazonaws.com", "sns:Publish", topic, nil, false},
		{"cloudwatch.amazonaws.com", "kms:Decrypt", tokensKey, nil, false},
		{"events.amazonaws.com", "sns:Publish", topic, alarmFrom(simAccount), false},
		{N, "sns:Publish", topic, nil, false},
		// EventBridge's role for failed unban executions: publishes to the
		// topic, uses its key only through SNS, and nothing else.
		{"unban-ended-badly", "sns:Publish", topic, nil, true},
		{"unban-ended-badly", "kms:GenerateDataKey", topicKey, map[string]string{"kms:ViaService": "sns." + simRegion + ".amazonaws.com"}, true},
		{"unban-ended-badly", "kms:GenerateDataKey", topicKey, nil, false},
		{"unban-ended-badly", "kms:Decrypt", tokensKey, viaSM(apiSecret), false},
		{"unban-ended-badly", "secretsmanager:GetSecretValue", apiSecret, nil, false},
		{"unban-ended-badly", "states:StartExecution", unbanSM, nil, false},
	}
	// Plain HTTP is refused by the bucket and topic policies, whatever the
	// identity allows.
	plain := map[string]string{"aws:SecureTransport": "false"}
	rows = append(rows,
		row{L, "s3:GetObject", obj(BanlistPrefix + "index.json"), plain, false},
		row{"host", "s3:PutObject", obj(cmdOut), plain, false},
		row{"cloudwatch.amazonaws.com", "sns:Publish", topic, merge(alarmFrom(simAccount), plain), false},
	)

	hostPolicy := tpl.resolve(props(tpl.resources[idOfPrefix("HostPolicy")])["PolicyDocument"])
	var reqs []simRequest
	names := map[string]row{}
	for _, r := range rows {
		req := simRequest{Action: r.action, Resource: r.resource, ResourceAccount: simAccount,
			Context: merge(map[string]string{"aws:SecureTransport": "true"}, r.ctx)}
		switch {
		case r.who == "host":
			req.Principal, req.IdentityPolicies = simHostSession, []interface{}{hostPolicy}
		case strings.HasSuffix(r.who, ".amazonaws.com"):
			req.Principal = r.who
		default:
			role := ""
			if r.who == "unban-ended-badly" { // EventBridge's role
				role = idOfPrefix("UnbanEndedBadlyRole")
			} else {
				role = roleOf(r.who)
			}
			req.Principal = "arn:aws:sts::" + simAccount + ":assumed-role/" + tpl.ref(role) + "/" + r.who
			req.IdentityPolicies = tpl.identityPolicies(role)
		}
		if r.resource != "*" {
			req.ResourcePolicy = tpl.resourcePolicy(r.resource)
		}
		req.Name = fmt.Sprintf("%s %s %s %s", r.who, r.action, r.resource, compact(r.ctx))
		if _, dup := names[req.Name]; dup {
			t.Fatalf("duplicate row %s", req.Name)
		}
		names[req.Name] = r
		reqs = append(reqs, req)
	}
	got := simulate(t, root, reqs)
	var failed []string
	for _, req := range reqs {
		r, res := names[req.Name], got[req.Name]
		if res == "" {
			continue // reported by simulate
		}
		if (res == "Allowed") != r.allow {
			want := "denied"
			if r.allow {
				want = "allowed"
			}
			failed = append(failed, fmt.Sprintf("%s: %s, want %s", req.Name, res, want))
		}
	}
	sort.Strings(failed)
	for _, f := range failed {
		t.Error(f)
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
