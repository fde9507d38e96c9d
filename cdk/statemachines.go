package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// expressMaxSeconds is the longest an Express execution may run.
const expressMaxSeconds = 300

// maxCommandTimeoutSeconds bounds commandTimeoutSeconds so that a refresh
// (the report command's timeout, then StoreBanLists and AnnounceNewBans at
// their functions' timeouts) ends within expressMaxSeconds.
const maxCommandTimeoutSeconds = 180

// newStateMachines defines the unban and refresh state machines from the
// ASL files, and the schedule that runs refresh.
//
// Unban is Standard: its execution history, kept by Step Functions for 90
// days, is the audit of who asked what, and a failed request is redriven.
// Refresh is Express: a scheduled run needs neither (the next one replaces
// it), and Express bills $1 per million runs plus duration instead of
// $0.025 per thousand transitions — about $0.1 a month instead of $1.5 at
// the default schedule. Its definition uses plain Lambda tasks only (no
// .sync or task tokens) and ends within 5 minutes; Express may run a
// scheduled execution twice, which refresh-list and notify tolerate.
func newStateMachines(stack awscdk.Stack, cfg Config, src Sources, fns *lambdaFunctions) (unban, refresh awsstepfunctions.StateMachine) {
	retention := cfg.Retention()
	unban = newStateMachine(stack, "UnbanStateMachine", awsstepfunctions.StateMachineType_STANDARD, src.UnbanASL, fns.byHandler, retention)
	refresh = newStateMachine(stack, "RefreshStateMachine", awsstepfunctions.StateMachineType_EXPRESS, src.RefreshASL, fns.byHandler, retention)
	newRefreshSchedule(stack, cfg, refresh)
	return unban, refresh
}

func newStateMachine(stack awscdk.Stack, id string, typ awsstepfunctions.StateMachineType, asl string, fns map[string]awslambda.Function, retention awslogs.RetentionDays) awsstepfunctions.StateMachine {
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
	// ALL events without execution data: which states ran, when, and which
	// failed, with no input or output. The data (message bodies, employees'
	// addresses and account ids) stays in the unban execution history,
	// which Step Functions keeps 90 days whatever is logged; copied into
	// CloudWatch Logs it would stay another logRetentionDays. The refresh's
	// console history (Express has no other) shows its states the same way.
	logGroup := awslogs.NewLogGroup(stack, jsii.String(id+"Logs"), &awslogs.LogGroupProps{Retention: retention})
	sm := awsstepfunctions.NewStateMachine(stack, jsii.String(id), &awsstepfunctions.StateMachineProps{
		StateMachineType:        typ,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(asl)),
		DefinitionSubstitutions: &subs,
		Logs: &awsstepfunctions.LogOptions{
			Destination:          logGroup,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(false),
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

// newRefreshSchedule runs the refresh machine on cfg.RefreshSchedule.
func newRefreshSchedule(stack awscdk.Stack, cfg Config, refresh awsstepfunctions.StateMachine) {
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
		Target: awsschedulertargets.NewStepFunctionsStartExecution(refresh, &awsschedulertargets.ScheduleTargetBaseProps{
			Role:  schedulerRole,
			Input: awsscheduler.ScheduleTargetInput_FromObject(map[string]interface{}{}),
			// A missed refresh is replaced by the next one: no retries
			// piling up behind a slow run.
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Minutes(jsii.Number(1)),
		}),
	})
}
