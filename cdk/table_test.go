package main

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/shared/policystore"
)

// policyTable is the one policy table of the default stack's template.
func policyTable(t *testing.T) map[string]interface{} {
	t.Helper()
	s := defaultStack(t)
	tables := s.resources("AWS::DynamoDB::Table")
	if n := len(s.resources("AWS::DynamoDB::GlobalTable")); n != 0 || len(tables) != 1 {
		t.Fatalf("%d Table and %d GlobalTable resources, want one policy table", len(tables), n)
	}
	id := idOf(s.stack.Stack, cfn(s.stack.PolicyTable))
	r, ok := tables[id]
	if !ok {
		t.Fatalf("the table is not UnbanStack.PolicyTable (%s)", id)
	}
	return r
}

func TestPolicyTable(t *testing.T) {
	r := policyTable(t)
	p := props(r)
	for what, c := range map[string]struct {
		got  interface{}
		want string
	}{
		"billing":     {p["BillingMode"], `"PAY_PER_REQUEST"`},
		"key schema":  {p["KeySchema"], `[{"AttributeName":"` + policystore.KeyAttribute + `","KeyType":"HASH"}]`},
		"attributes":  {p["AttributeDefinitions"], `[{"AttributeName":"` + policystore.KeyAttribute + `","AttributeType":"` + policystore.KeyAttributeType + `"}]`},
		"ttl":         {p["TimeToLiveSpecification"], `{"AttributeName":"` + policystore.TTLAttribute + `","Enabled":true}`},
		"encryption":  {p["SSESpecification"], `{"SSEEnabled":true}`}, // KMS with aws/dynamodb
		"name":        {p["TableName"], `null`},
		"deletion":    {r["DeletionPolicy"], `"Retain"`},
		"replacement": {r["UpdateReplacePolicy"], `"Retain"`},
		"no sort key": {len(asList(p["KeySchema"])), `1`},
		"no indexes":  {p["GlobalSecondaryIndexes"], `null`},
		"no streams":  {p["StreamSpecification"], `null`},
	} {
		if got := compact(c.got); got != c.want {
			t.Errorf("%s: %s, want %s", what, got, c.want)
		}
	}
	if got := compact(p["PointInTimeRecoverySpecification"]); got != `{"PointInTimeRecoveryEnabled":true}` {
		t.Errorf("point-in-time recovery: %s", got)
	}
}

// The table CreateTable makes for tests and the local mode has the
// template's key schema and billing mode (dynalite reports no TTL, which it
// does not implement; TestPolicyTable pins the template's to the constant).
func TestPolicyTableMatchesLocal(t *testing.T) {
	p := props(policyTable(t))
	c := dynalitetest.Table(t, "policy")
	out, err := c.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("policy")})
	if err != nil {
		t.Fatal(err)
	}
	var keys, attrs []interface{}
	for _, k := range out.Table.KeySchema {
		keys = append(keys, map[string]interface{}{"AttributeName": aws.ToString(k.AttributeName), "KeyType": string(k.KeyType)})
	}
	for _, a := range out.Table.AttributeDefinitions {
		attrs = append(attrs, map[string]interface{}{"AttributeName": aws.ToString(a.AttributeName), "AttributeType": string(a.AttributeType)})
	}
	if compact(keys) != compact(p["KeySchema"]) || compact(attrs) != compact(p["AttributeDefinitions"]) {
		t.Errorf("local table %s %s, template %s %s", compact(keys), compact(attrs), compact(p["KeySchema"]), compact(p["AttributeDefinitions"]))
	}
	if got := string(out.Table.BillingModeSummary.BillingMode); compact(got) != compact(p["BillingMode"]) {
		t.Errorf("local billing %s, template %s", got, compact(p["BillingMode"]))
	}
}
