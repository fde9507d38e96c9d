package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"

	"sshguard-unban/shared/policystore"
)

// newPolicyTable defines the policy's state store (shared/policystore):
// quotas, approvals and the cache of room members, one table, one string
// partition key and TTL, the schema taken from policystore's constants so
// that the local table (local/dynalite.CreateTable) is the same.
//
// On-demand: a few writes per request and none in between, so provisioned
// capacity would be paid for idle. Encryption uses the AWS managed key
// (aws/dynamodb) rather than the default AWS owned key, so every use of it
// shows in CloudTrail; not a customer managed key, because the items are
// account ids, addresses and task tokens (useless without
// states:SendTaskSuccess), and the functions' IAM grants on the table are
// the boundary, with no key policy to keep in step with them.
//
// RETAIN: the approvals are the record of who approved what, and nothing
// else holds it; the table name is generated, so a re-created stack gets a
// new table instead of clashing with the kept one.
//
// A Table (AWS::DynamoDB::Table), not a TableV2 (a single-region
// AWS::DynamoDB::GlobalTable): one region is all it needs, and cdk-nag's
// AwsSolutions-DDB3 (point-in-time recovery) checks only Table resources.
func newPolicyTable(stack awscdk.Stack, _ Config) awsdynamodb.Table {
	return awsdynamodb.NewTable(stack, jsii.String("PolicyTable"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{
			Name: jsii.String(policystore.KeyAttribute),
			// policystore.KeyAttributeType ("S"); jsii names the enum
			// member STRING, and TestPolicyTable holds the two together.
			Type: awsdynamodb.AttributeType_STRING,
		},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(policystore.TTLAttribute),
		// cdk-nag AwsSolutions-DDB3: a bad write (a bug granting or
		// consuming quotas wrongly) can be undone to the second.
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:    awsdynamodb.TableEncryption_AWS_MANAGED,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
}
