package dynalite_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"sshguard-unban/local/dynalite"
	"sshguard-unban/local/dynalite/dynalitetest"
	"sshguard-unban/shared/policystore"
)

// The table is the one the store expects: the key and billing mode from
// policystore's constants, ACTIVE when CreateTable returns, and items
// round-trip through the real SDK client.
func TestCreateTable(t *testing.T) {
	c := dynalitetest.Table(t, "policy")
	ctx := context.Background()
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("policy")})
	if err != nil {
		t.Fatal(err)
	}
	tb := out.Table
	if tb.TableStatus != types.TableStatusActive {
		t.Errorf("status %s, want ACTIVE", tb.TableStatus)
	}
	if len(tb.KeySchema) != 1 || aws.ToString(tb.KeySchema[0].AttributeName) != policystore.KeyAttribute || tb.KeySchema[0].KeyType != types.KeyTypeHash {
		t.Errorf("key schema %+v, want %s HASH only", tb.KeySchema, policystore.KeyAttribute)
	}
	if len(tb.AttributeDefinitions) != 1 || string(tb.AttributeDefinitions[0].AttributeType) != policystore.KeyAttributeType {
		t.Errorf("attributes %+v, want %s %s", tb.AttributeDefinitions, policystore.KeyAttribute, policystore.KeyAttributeType)
	}
	if tb.BillingModeSummary == nil || tb.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing %+v, want PAY_PER_REQUEST", tb.BillingModeSummary)
	}
	key := map[string]types.AttributeValue{policystore.KeyAttribute: &types.AttributeValueMemberS{Value: "x"}}
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("policy"), Item: key}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("policy"), Key: key})
	if err != nil || got.Item == nil {
		t.Fatalf("get: %v %v", got, err)
	}
	// A second table of the same name is refused, as by DynamoDB.
	if err := dynalite.CreateTable(ctx, c, "policy"); err == nil {
		t.Error("creating the table twice succeeded")
	}
}

// Each server is its own empty store, and Close ends the process.
func TestServersAreSeparateAndClose(t *testing.T) {
	a, b := dynalitetest.Start(t), dynalitetest.Start(t)
	if a.Endpoint() == b.Endpoint() || !strings.HasPrefix(a.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("endpoints %s and %s", a.Endpoint(), b.Endpoint())
	}
	ctx := context.Background()
	if err := dynalite.CreateTable(ctx, a.Client(), "tbl"); err != nil {
		t.Fatal(err)
	}
	out, err := b.Client().ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil || len(out.TableNames) != 0 {
		t.Fatalf("second server tables %v, %v; want none", out, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close() // twice is fine
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := a.Client().ListTables(cctx, &dynamodb.ListTablesInput{}); err == nil {
		t.Error("the server still answers after Close")
	}
}

func TestNotInstalled(t *testing.T) {
	_, err := dynalite.Start(context.Background(), t.TempDir())
	if !errors.Is(err, dynalite.ErrNotInstalled) {
		t.Fatalf("Start in an empty directory: %v, want ErrNotInstalled", err)
	}
}
