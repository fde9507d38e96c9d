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

// newStateMachines defines the unban and refresh state machines from the
// ASL files, and the schedule that runs refresh.
func newStateMachines(stack awscdk.Stack, cfg Config, src Sources, fns *lambdaFunctions) (unban, refresh awsstepfunctions.StateMachine) {
	retention := cfg.Retention()
	unban = newStateMachine(stack, "UnbanStateMachine", src.UnbanASL, fns.byHandler, retention)
	refresh = newStateMachine(stack, "RefreshStateMachine", src.RefreshASL, fns.byHandler, retention)
	newRefreshSchedule(stack, cfg, refresh)
	return unban, refresh
}

func newStateMachine(stack awscdk.Stack, id, asl string, fns map[string]awslambda.Function, retention awslogs.RetentionDays) awsstepfunctions.StateMachine {
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
	// ALL events with execution data: a failed unban is debugged from these
	// logs (which state, which input). The data is what the execution
	// history already shows for 90 days (addresses, host ids, the chat
	// message), never a token; retention follows logRetentionDays.
	logGroup := awslogs.NewLogGroup(stack, jsii.String(id+"Logs"), &awslogs.LogGroupProps{Retention: retention})
	sm := awsstepfunctions.NewStateMachine(stack, jsii.String(id), &awsstepfunctions.StateMachineProps{
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(asl)),
		DefinitionSubstitutions: &subs,
		Logs: &awsstepfunctions.LogOptions{
			Destination:          logGroup,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(true),
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
