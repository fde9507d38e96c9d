// Package fakeenv starts the fakes the task Lambdas are tested against: an
// in-memory S3 (s3local) and the SSM fake (ssmfake) behind one local AWS
// endpoint (awsapi), with real aws-sdk-go-v2 clients pointed at it and the
// two documents registered. It is a test helper (like net/http/httptest).
package fakeenv

import (
	"context"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"sshguard-unban/local/awsapi"
	"sshguard-unban/local/s3local"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/shared/ssmdoc"
)

// Names used by the environment.
const (
	ListBucket     = "banlists"
	OutputBucket   = "ssm-output"
	OutputPrefix   = "runcommand"
	UnbanDocument  = "sshguard-unban"
	UnbanStep      = ssmdoc.UnbanStep
	ReportDocument = "sshguard-report"
	ReportStep     = ssmdoc.ReportStep
	TagKey         = "sshguard-unban"
	TagValue       = "enabled"
)

// AddressPattern is the unban document's allowedPattern.
var AddressPattern = regexp.MustCompile(ssmdoc.AddressItemPattern)

// MaxAddresses is the document's maxItems for addresses.
const MaxAddresses = ssmdoc.MaxAddresses

// Env is a running set of fakes, served by httptest behind one endpoint
// (local/awsapi), with the real SDK clients pointed at it.
type Env struct {
	S3        *s3local.Server
	S3Client  *s3.Client
	SSM       *ssmfake.Server
	Server    *httptest.Server // the one AWS endpoint
	SSMClient *ssm.Client
}

// Start starts the fakes and registers cleanup with t. The SSM client makes
// a single attempt per call (so injected errors surface at once).
func Start(t testing.TB) *Env {
	t.Helper()
	t.Setenv("AWS_CA_BUNDLE", "")
	s3fake := s3local.New(ListBucket, OutputBucket)
	fake := ssmfake.New()
	fake.AddDocument(ssmfake.Document{
		Name: UnbanDocument, StepName: UnbanStep,
		Parameters: map[string]*regexp.Regexp{"addresses": AddressPattern},
		MaxItems:   map[string]int{"addresses": MaxAddresses},
	})
	fake.AddDocument(ssmfake.Document{Name: ReportDocument, StepName: ReportStep})
	hs := httptest.NewServer(awsapi.Router{SSM: fake, S3: s3fake})
	fake.S3 = s3local.NewClient(hs.URL)
	e := &Env{
		S3:        s3fake,
		S3Client:  s3local.NewClient(hs.URL),
		SSM:       fake,
		Server:    hs,
		SSMClient: ssmfake.NewClient(hs.URL, 1),
	}
	t.Cleanup(func() {
		hs.Close()
		fake.Close()
	})
	return e
}

// AddHosts registers instances carrying the target tag, all with runner r.
func (e *Env) AddHosts(r ssmfake.Runner, ids ...string) {
	for _, id := range ids {
		e.SSM.AddInstance(ssmfake.Instance{ID: id, Name: "host-" + id, Tags: map[string]string{TagKey: TagValue}, Runner: r})
	}
}

// WaitAll waits until every invocation of the commands finished running.
func (e *Env) WaitAll(t testing.TB, ids ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := e.SSM.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
