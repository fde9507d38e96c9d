package secretsfake_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"sshguard-unban/local/secretsfake"
	"sshguard-unban/shared/secrets"
)

// The production secrets.Source, through the real SDK client.
func TestProductionSourceReadsIt(t *testing.T) {
	fake := secretsfake.New(map[string]string{"chatwork-webhook": `{"webhook_token":"d2g="}`})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client := secretsmanager.New(secretsmanager.Options{
		Region: "ap-northeast-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	src := secrets.New(client, "chatwork-webhook", secrets.WebhookTokenKey)
	for range 3 {
		c, err := src.Chatwork(context.Background())
		if err != nil || c.WebhookToken != "d2g=" {
			t.Fatalf("%v", err)
		}
	}
	if fake.Reads() != 1 {
		t.Fatalf("%d reads, want 1 (cached)", fake.Reads())
	}
	_, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v", err)
	}
}
