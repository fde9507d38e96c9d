package app

import (
	"context"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"sshguard-unban/shared/functions"
)

// testDeployment is a deployment with every value set.
var testDeployment = Deployment{
	StateMachineARN: "arn:aws:states:ap-northeast-1:123456789012:stateMachine:unban",
	WebhookSecretID: "chatwork-webhook", APISecretID: "chatwork-api", BotAccountID: "1234567", AllowedRooms: []string{"1", "2"},
	NotifyRoomID: "3", SRERoomID: "4", Locale: "ja", Bucket: "bucket",
	UnbanDocument: "unban-doc", ReportDocument: "report-doc", TagKey: "sshguard-unban", TagValue: "enabled",
	Freshness: 180 * time.Second, CommandTimeout: 120 * time.Second,
	PolicyTable: "policy", Policy: DefaultPolicy,
	PublicURL: "https://api.example/", PageSecretID: "page-key",
}

func getenv(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestEveryHandlerBuilds(t *testing.T) {
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("ap-northeast-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names {
		env := Environment(name, testDeployment)
		if env == nil {
			t.Errorf("%s: no environment", name)
		}
		read := map[string]bool{}
		get := func(k string) string { read[k] = true; return env[k] }
		if _, err := NewHandler(context.Background(), name, get, cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for k := range env {
			if !read[k] {
				t.Errorf("%s: Environment sets %s, which the handler never reads", name, k)
			}
		}
	}
}

func TestMisconfigurationNamesTheVariables(t *testing.T) {
	cfg, _ := config.LoadDefaultConfig(context.Background(), config.WithRegion("ap-northeast-1"))
	tests := []struct {
		name string
		drop string
		set  map[string]string
		want string
	}{
		{name: "webhook", drop: "STATE_MACHINE_ARN", want: "STATE_MACHINE_ARN"},
		{name: "lookup", drop: "BANLIST_BUCKET", want: "BANLIST_BUCKET"},
		{name: "unban", drop: "UNBAN_DOCUMENT", want: "UNBAN_DOCUMENT"},
		{name: "unban", set: map[string]string{"COMMAND_TIMEOUT_SECONDS": "soon"}, want: "COMMAND_TIMEOUT_SECONDS"},
		{name: "refresh-list", drop: "TARGET_TAG_KEY", want: "TARGET_TAG_KEY"},
		{name: "webhook", drop: "CHATWORK_WEBHOOK_SECRET_ID", want: "CHATWORK_WEBHOOK_SECRET_ID"},
		{name: "notify", drop: "CHATWORK_API_SECRET_ID", want: "CHATWORK_API_SECRET_ID"},
		{name: "page", drop: "PAGE_SECRET_ID", want: "PAGE_SECRET_ID"},
		{name: "page", drop: "BANLIST_BUCKET", want: "BANLIST_BUCKET"},
		{name: "notify", set: map[string]string{"PUBLIC_URL": "api.example/"}, want: "PUBLIC_URL"},
		{name: "nonesuch", want: "no handler named"},
	}
	for _, tt := range tests {
		env := Environment(tt.name, testDeployment)
		if env == nil {
			env = map[string]string{}
		}
		delete(env, tt.drop)
		for k, v := range tt.set {
			env[k] = v
		}
		_, err := NewHandler(context.Background(), tt.name, getenv(env), cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s without %s: err = %v", tt.name, tt.drop, err)
		}
	}
}

// BenchmarkColdStart is the init work a new Lambda instance does before its
// first event: load the AWS configuration and build the handler.
func BenchmarkColdStart(b *testing.B) {
	b.Setenv("AWS_REGION", "ap-northeast-1")
	for b.Loop() {
		cfg, err := config.LoadDefaultConfig(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := NewHandler(context.Background(), "refresh-list", getenv(Environment("refresh-list", testDeployment)), cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// Each handler's package is where shared/functions says it is, and its
// package doc names every ASL state it serves, so a reader of the package
// knows which states call it.
func TestPackageDocsNameTheirStates(t *testing.T) {
	for _, f := range functions.All {
		dir := filepath.Join("..", "..", strings.TrimPrefix(f.Package, "sshguard-unban/"))
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Errorf("%s: %v", f.Handler, err)
			continue
		}
		var doc string
		for _, p := range pkgs {
			for _, file := range p.Files {
				if file.Doc != nil {
					doc += file.Doc.Text()
				}
			}
		}
		if doc == "" {
			t.Errorf("%s (%s): no package doc", f.Handler, f.Package)
		}
		for machine, states := range f.States {
			for _, st := range states {
				if !strings.Contains(doc, st) {
					t.Errorf("%s: the package doc of %s does not name the %s state %s", f.Handler, f.Package, machine, st)
				}
			}
		}
	}
}
