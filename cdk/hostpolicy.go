package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// newHostPolicy is the managed policy to attach to the instance role of every
// host tagged for the bot, together with the AWS managed policy
// AmazonSSMManagedInstanceCore (which the SSM agent needs for Run Command at
// all, and which AWS keeps current as the agent changes). This policy adds
// only the command-output upload.
//
// It cannot limit a host to its own keys (PREFIX/COMMAND/INSTANCE/…): IAM
// has no policy variable that is just the instance id (the session's
// aws:userid is ROLEID:i-…, ec2:SourceInstanceARN a whole ARN). The readers
// trust only what SSM captured and check the S3 copy against it
// (shared/ssmcmd OutputSource.Stdout), so a host cannot speak for another.
func newHostPolicy(stack awscdk.Stack, bucket awss3.Bucket) awsiam.ManagedPolicy {
	p := awsiam.NewManagedPolicy(stack, jsii.String("HostPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("sshguard-unban hosts: upload SSM command output. Attach with AmazonSSMManagedInstanceCore."),
		Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid: jsii.String("UploadCommandOutput"),
				// The agent sends the bucket-owner-full-control ACL with each
				// upload; with ACLs disabled on the bucket it changes nothing.
				Actions:   jsii.Strings("s3:PutObject", "s3:PutObjectAcl"),
				Resources: &[]*string{bucket.ArnForObjects(jsii.String(CommandOutputPrefix + "*"))},
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid: jsii.String("CheckBucketEncryption"),
				// The agent checks the bucket's encryption before uploading.
				Actions:   jsii.Strings("s3:GetEncryptionConfiguration"),
				Resources: &[]*string{bucket.BucketArn()},
			}),
		},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(p, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Hosts may only upload under command-output/ of this service's bucket; the keys below it are named by SSM (command id/instance id/step), so they cannot be listed in advance."),
		AppliesTo: objectWildcards(CommandOutputPrefix),
	}}, jsii.Bool(false))
	return p
}
