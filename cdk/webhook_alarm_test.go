package main

import (
	"testing"

	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/shared/functions"
)

// A failed StartExecution is answered 500 as a response, which Lambda's
// Errors metric never counts (lambdas/webhook: every 500 is one ERROR log
// line instead). The alarm that sees it reads a metric filter on the
// webhook's own log group with exactly the pattern the webhook's test
// evaluates, and notifies the alarm topic at the first one.
func TestWebhookFailedRequestsAlarm(t *testing.T) {
	s := defaultStack(t)
	fn := props(s.resources("AWS::Lambda::Function")[idOf(s.stack.Stack, cfn(s.stack.Functions[functions.Webhook]))])
	logGroup := compact(fn["LoggingConfig"].(map[string]interface{})["LogGroup"])
	var namespace, metric string
	for id, r := range s.resources("AWS::Logs::MetricFilter") {
		p := props(r)
		if compact(p["LogGroupName"]) != logGroup || p["FilterPattern"] != webhook.FailureLogPattern {
			continue
		}
		tr := asList(p["MetricTransformations"])
		if len(tr) != 1 {
			t.Fatalf("%s: %s", id, compact(p))
		}
		m := tr[0].(map[string]interface{})
		if m["MetricValue"] != "1" {
			t.Errorf("%s counts %v per line", id, m["MetricValue"])
		}
		namespace, metric = m["MetricNamespace"].(string), m["MetricName"].(string)
	}
	if metric == "" {
		t.Fatalf("no metric filter %q on the webhook's log group %s", webhook.FailureLogPattern, logGroup)
	}
	var topic string
	for id := range s.resources("AWS::SNS::Topic") {
		topic = id
	}
	found := false
	for id, r := range s.resources("AWS::CloudWatch::Alarm") {
		p := props(r)
		if p["Namespace"] != namespace || p["MetricName"] != metric {
			continue
		}
		found = true
		if p["Statistic"] != "Sum" || p["Threshold"] != 1.0 || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" ||
			p["EvaluationPeriods"] != 1.0 || p["TreatMissingData"] != "notBreaching" || compact(p["AlarmActions"]) != `[{"Ref":"`+topic+`"}]` {
			t.Errorf("%s: %s", id, compact(p))
		}
	}
	if !found {
		t.Errorf("no alarm on %s/%s", namespace, metric)
	}
}
