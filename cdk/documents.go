package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/jsii-runtime-go"
)

// documents are the two SSM Command documents run on the hosts.
type documents struct {
	unban, report awsssm.CfnDocument
	stack         awscdk.Stack
	cfg           Config
}

// newDocuments defines the unban and report documents from the host
// scripts (their content is built in sources.go). Names are generated: a
// content change replaces the document under a new name and the functions'
// environment follows.
func newDocuments(stack awscdk.Stack, cfg Config, src Sources) documents {
	unbanContent, err := UnbanDocumentContent(src.UnbanScript, cfg.CommandTimeoutSeconds)
	if err != nil {
		panic(err)
	}
	reportContent, err := ReportDocumentContent(src.ReportScript, cfg.CommandTimeoutSeconds)
	if err != nil {
		panic(err)
	}
	doc := func(id string, content map[string]interface{}) awsssm.CfnDocument {
		return awsssm.NewCfnDocument(stack, jsii.String(id), &awsssm.CfnDocumentProps{
			DocumentType:   jsii.String("Command"),
			DocumentFormat: jsii.String("JSON"),
			Content:        content,
		})
	}
	return documents{unban: doc("UnbanDocument", unbanContent), report: doc("ReportDocument", reportContent), stack: stack, cfg: cfg}
}

// sendCommand is the permission to run doc: SendCommand is allowed on
// instances carrying the target tag only, and with that one document only,
// so a function cannot run AWS-RunShellScript or anything else, nor reach
// untagged hosts.
func (d documents) sendCommand(doc awsssm.CfnDocument) []awsiam.PolicyStatement {
	documentArn := d.stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("document"), ResourceName: doc.Ref()})
	instanceArn := d.stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ec2"), Resource: jsii.String("instance"), ResourceName: jsii.String("*")})
	return []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("SendCommandDocument"),
			Actions:   jsii.Strings("ssm:SendCommand"),
			Resources: &[]*string{documentArn},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("SendCommandTaggedInstances"),
			Actions:   jsii.Strings("ssm:SendCommand"),
			Resources: &[]*string{instanceArn},
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{
					"ssm:resourceTag/" + d.cfg.TargetTagKey: d.cfg.TargetTagValue,
				},
			},
		}),
	}
}
