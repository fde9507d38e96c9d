package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"

	"sshguard-unban/lambdas/webhook"
	"sshguard-unban/shared/functions"
)

// newAlarms defines the alarm topic and what publishes to it: each unban
// execution that failed, timed out or was aborted (by name), failed and
// timed-out refresh runs, a refresh that stopped running, and webhook
// errors and 500s.
func newAlarms(stack awscdk.Stack, cfg Config, unban, refresh awsstepfunctions.StateMachine, fns map[string]awslambda.Function) awssns.Topic {
	topic, topicKey := newAlarmTopic(stack, cfg)
	a := alarms{stack: stack, action: awscloudwatchactions.NewSnsAction(topic)}
	rule := unbanEndedBadly(stack, unban, topic, topicKey)
	// EventBridge drops an event it could not deliver after a day of
	// retries (a broken role or key policy): then this alarm speaks.
	a.add("UnbanEndedBadlyUndeliveredAlarm", "sshguard-unban: EventBridge could not deliver a failed unban execution to the alarm topic (see the rule UnbanEndedBadlyRule)",
		awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String("AWS/Events"), MetricName: jsii.String("FailedInvocations"),
			DimensionsMap: &map[string]*string{"RuleName": rule.RuleName()},
			Period:        awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum"),
		}), awscloudwatch.TreatMissingData_NOT_BREACHING, 1,
		awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)
	// Express workflows send no status-change events, so refresh has
	// alarms; and it cannot be aborted (StopExecution does not apply to
	// Express), so there is no Aborted alarm to pay for.
	a.executions("Refresh", refresh, "Failed", "TimedOut")
	// A broken schedule (or scheduler role) fails silently: the lists go
	// stale and every unban falls back to all hosts. Alarm when no refresh
	// started for three schedule periods (at least 15 minutes). Only for
	// rate() schedules: a cron() may leave long gaps on purpose.
	if period, ok := ratePeriodSeconds(cfg.RefreshSchedule); ok {
		periods := math.Max(3, math.Ceil(3*period/300))
		if periods <= 288 { // CloudWatch evaluates at most one day
			a.add("RefreshNotRunningAlarm", "sshguard-unban: the refresh state machine has not started for "+fmt.Sprint(periods*5)+" minutes",
				refresh.MetricStarted(fiveMinSum), awscloudwatch.TreatMissingData_BREACHING, 1,
				awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, periods)
		}
	}
	// Webhook errors never reach a state machine, so the alarms above would
	// not see them.
	a.add("WebhookErrorsAlarm", "sshguard-unban: the webhook function failed",
		fns[functions.Webhook].MetricErrors(fiveMinSum), awscloudwatch.TreatMissingData_NOT_BREACHING, 1,
		awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)
	// Nor do its 500s (a failed StartExecution, an unreadable secret):
	// answered as responses, they are no Lambda errors, and Chatwork never
	// resends the request. Each is one ERROR line in the webhook's log.
	failed := awslogs.NewMetricFilter(stack, jsii.String("WebhookFailedRequestsFilter"), &awslogs.MetricFilterProps{
		LogGroup:        fns[functions.Webhook].LogGroup(),
		FilterPattern:   awslogs.FilterPattern_Literal(jsii.String(webhook.FailureLogPattern)),
		MetricNamespace: jsii.String("sshguard-unban"),
		MetricName:      jsii.String("WebhookFailedRequests"),
		MetricValue:     jsii.String("1"),
	})
	a.add("WebhookFailedRequestsAlarm", "sshguard-unban: the webhook answered 500, so a Chatwork request was lost (StartExecution or the secret failed; see the webhook's ERROR log lines)",
		failed.Metric(fiveMinSum), awscloudwatch.TreatMissingData_NOT_BREACHING, 1,
		awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)
	return topic
}

// newAlarmTopic is the encrypted SNS topic alarms publish to. CloudWatch can
// publish to an encrypted topic only with a customer managed key whose
// policy lets cloudwatch.amazonaws.com use it.
func newAlarmTopic(stack awscdk.Stack, cfg Config) (awssns.Topic, awskms.Key) {
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
	// EnforceSSL gives the topic a policy, and a topic policy replaces SNS's
	// default one: without this Allow CloudWatch cannot publish and every
	// alarm stays silent. CloudWatch sends both keys for alarm actions; they
	// keep another account's alarms from publishing here (confused deputy).
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarms"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{topic.TopicArn()},
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()},
			"ArnLike": map[string]interface{}{"aws:SourceArn": stack.FormatArn(&awscdk.ArnComponents{
				Service: jsii.String("cloudwatch"), Resource: jsii.String("alarm"), ResourceName: jsii.String("*"),
				ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
			})},
		},
	}))
	if cfg.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	return topic, topicKey
}

var fiveMinSum = &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}

// alarms adds alarms that notify one SNS action.
type alarms struct {
	stack  awscdk.Stack
	action awscloudwatchactions.SnsAction
}

func (a alarms) add(id, desc string, metric awscloudwatch.Metric, missing awscloudwatch.TreatMissingData,
	threshold float64, op awscloudwatch.ComparisonOperator, periods float64) {
	alarm := awscloudwatch.NewAlarm(a.stack, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String(desc),
		Metric:             metric,
		Threshold:          jsii.Number(threshold),
		ComparisonOperator: op,
		EvaluationPeriods:  jsii.Number(periods),
		TreatMissingData:   missing,
	})
	alarm.AddAlarmAction(a.action)
}

// executions alarms on executions of sm that ended as kinds say.
func (a alarms) executions(name string, sm awsstepfunctions.StateMachine, kinds ...string) {
	metric := map[string]awscloudwatch.Metric{
		"Failed":   sm.MetricFailed(fiveMinSum),
		"TimedOut": sm.MetricTimedOut(fiveMinSum),
		"Aborted":  sm.MetricAborted(fiveMinSum),
	}
	for _, k := range kinds {
		a.add(name+"Executions"+k+"Alarm",
			fmt.Sprintf("sshguard-unban: an execution of the %s state machine %s", strings.ToLower(name), strings.ToLower(k)),
			metric[k], awscloudwatch.TreatMissingData_NOT_BREACHING, 1,
			awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)
	}
}

// UnbanEndedBadlyStatuses are the unban executions SREs hear of one by one.
var UnbanEndedBadlyStatuses = []string{"FAILED", "TIMED_OUT", "ABORTED"}

// unbanEndedBadly sends the topic one message per unban execution that
// failed, timed out or was aborted, naming it: Step Functions emits a
// status-change event for every Standard execution, free, so the SRE
// learns which request to look at (and can redrive it) instead of "an
// execution failed", and three alarms ($0.30 a month) are not needed.
//
// EventBridge publishes with a role of its own (the L1 target: the L2
// would grant kms:GenerateDataKey* in the role's policy), so the topic's
// policy still admits only this account's CloudWatch alarms, and the key
// policy names the role, for SNS's use only.
func unbanEndedBadly(stack awscdk.Stack, unban awsstepfunctions.StateMachine, topic awssns.Topic, topicKey awskms.Key) awsevents.Rule {
	// Assumed by EventBridge for this account's rules only (confused deputy).
	role := awsiam.NewRole(stack, jsii.String("UnbanEndedBadlyRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()}},
		}),
		Description: jsii.String("sshguard-unban: EventBridge publishes failed unban executions to the alarm topic"),
	})
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PublishAlarms"),
		Actions:   jsii.Strings("sns:Publish"),
		Resources: &[]*string{topic.TopicArn()},
	}))
	topicKey.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowUnbanEndedBadlyThroughSNS"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(role.RoleArn())},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey"),
		Resources:  jsii.Strings("*"), // in a key policy "*" means this key
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"kms:ViaService": awscdk.Fn_Join(jsii.String(""), &[]*string{
				jsii.String("sns."), stack.Region(), jsii.String(".amazonaws.com")})},
		},
	}), nil)
	rule := awsevents.NewRule(stack, jsii.String("UnbanEndedBadlyRule"), &awsevents.RuleProps{
		Description: jsii.String("sshguard-unban: an unban execution failed, timed out or was aborted"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.states"),
			DetailType: jsii.Strings("Step Functions Execution Status Change"),
			Detail: &map[string]interface{}{
				"stateMachineArn": []*string{unban.StateMachineArn()},
				"status":          UnbanEndedBadlyStatuses,
			},
		},
	})
	rule.Node().DefaultChild().(awsevents.CfnRule).SetTargets(&[]interface{}{&awsevents.CfnRule_TargetProperty{
		Id:      jsii.String("AlarmTopic"),
		Arn:     topic.TopicArn(),
		RoleArn: role.RoleArn(),
		InputTransformer: &awsevents.CfnRule_InputTransformerProperty{
			InputPathsMap: &map[string]*string{
				"name": jsii.String("$.detail.name"), "status": jsii.String("$.detail.status"), "arn": jsii.String("$.detail.executionArn"),
			},
			// A JSON string: SNS gets it as the message text.
			InputTemplate: jsii.String(UnbanEndedBadlyMessage),
		},
	}})
	return rule
}

// UnbanEndedBadlyMessage is the input template of that notification.
const UnbanEndedBadlyMessage = `"sshguard-unban: the unban execution <name> ended <status>. Open <arn> in the Step Functions console to see why, and redrive it there once fixed. ` +
	`The bot answers the asker of a failed request itself; after a timeout or an abort nobody has answered them yet."`

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
