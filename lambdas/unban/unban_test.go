package unban_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sshguard-unban/lambdas/unban"
	"sshguard-unban/local/fakeenv"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/shared/coalesce"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

func id(n int) string { return fmt.Sprintf("i-%017x", n) }

func newHandler(e *fakeenv.Env) *unban.Handler {
	return unban.New(e.SSMClient, &coalesce.Store{S3: e.S3Client, Bucket: fakeenv.ListBucket, Prefix: "commands/coalesce/", Poll: 5 * time.Millisecond},
		unban.Config{
			UnbanDocument: fakeenv.UnbanDocument,
			Delivery: ssmcmd.Delivery{
				TagKey:         fakeenv.TagKey,
				TagValue:       fakeenv.TagValue,
				CommandTimeout: 2 * time.Minute,
				OutputBucket:   fakeenv.OutputBucket,
				OutputPrefix:   fakeenv.OutputPrefix,
			},
		}, nil)
}

func input(execution string, started time.Time, addrs ...string) workflow.UnbanInput {
	return workflow.UnbanInput{Addresses: addrs, Started: started.UTC().Format(time.RFC3339Nano), Execution: execution}
}

// The employee was blocked seconds ago, on a host the stored lists do not
// show yet: every tagged host is asked, in one SendCommand whatever the
// fleet's size (the tag target has no 50-instance limit), and no untagged
// host is.
func TestEveryTaggedHostInOneCommand(t *testing.T) {
	e := fakeenv.Start(t)
	var ids []string
	for n := range 120 {
		ids = append(ids, id(n))
	}
	e.AddHosts(ssmfake.Canned{Stdout: `{}`}, ids...)
	e.SSM.AddInstance(ssmfake.Instance{ID: id(999), Tags: map[string]string{"other": "x"}, Runner: ssmfake.Canned{}})
	h := newHandler(e)
	h.Cfg.DocumentVersion = "$LATEST"
	started := time.Now()
	ref, err := h.Handle(context.Background(), input("exec-1", started, "192.0.2.12", "2001:db8::1", "192.0.2.12"))
	if err != nil {
		t.Fatal(err)
	}
	sent := e.SSM.Sent()
	if len(sent) != 1 || sent[0].CommandID != ref.CommandID || ref.Shared {
		t.Fatalf("sent %d commands, returned %+v", len(sent), ref)
	}
	s := sent[0]
	if len(s.InstanceIDs) != 0 || strings.Join(s.Targets["tag:"+fakeenv.TagKey], ",") != fakeenv.TagValue || len(s.Resolved) != 120 {
		t.Errorf("targets %v ids %v resolved %d", s.Targets, s.InstanceIDs, len(s.Resolved))
	}
	if s.DocumentName != fakeenv.UnbanDocument || s.DocumentVersion != "$LATEST" || strings.Join(s.Parameters["addresses"], ",") != "192.0.2.12,2001:db8::1" {
		t.Errorf("document %s params %v", s.DocumentName, s.Parameters)
	}
	if s.MaxConcurrency != "100%" || s.MaxErrors != "100%" || s.TimeoutSeconds != 120 ||
		s.OutputS3BucketName != fakeenv.OutputBucket || s.OutputS3KeyPrefix != fakeenv.OutputPrefix ||
		!strings.Contains(s.Comment, "192.0.2.12") {
		t.Errorf("command settings %+v", s)
	}
	sentAt, err := time.Parse(time.RFC3339Nano, ref.SentAt)
	if err != nil || sentAt.Before(started) {
		t.Errorf("sent_at %q before the execution started (%v)", ref.SentAt, started)
	}
	if _, err := time.Parse(time.RFC3339, ref.Deadline); err != nil || ref.Key == "" {
		t.Errorf("deadline %q key %q", ref.Deadline, ref.Key)
	}
}

// Colleagues behind one address: a request whose execution started before
// the command went out shares it; a retry of the sender gets its own
// command back; a request that started after it gets a newer one (once the
// first has its answers).
func TestSharing(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{Stdout: `{}`}, id(1), id(2))
	h := newHandler(e)
	early := time.Now()
	first, err := h.Handle(context.Background(), input("exec-a", early, "203.0.113.5"))
	if err != nil {
		t.Fatal(err)
	}
	retry, err := h.Handle(context.Background(), input("exec-a", early, "203.0.113.5"))
	if err != nil || retry.CommandID != first.CommandID || retry.Shared {
		t.Fatalf("retried task: %+v %v, want its own command %s", retry, err, first.CommandID)
	}
	colleague, err := h.Handle(context.Background(), input("exec-b", early.Add(-time.Second), "203.0.113.5"))
	if err != nil || colleague.CommandID != first.CommandID || !colleague.Shared {
		t.Fatalf("colleague who started before the send: %+v %v", colleague, err)
	}
	if err := h.Coalesce.Done(context.Background(), first.Key, first.CommandID); err != nil {
		t.Fatal(err)
	}
	late, err := h.Handle(context.Background(), input("exec-c", time.Now(), "203.0.113.5"))
	if err != nil || late.CommandID == first.CommandID || late.Shared {
		t.Fatalf("request that started after the send: %+v %v, want a new command", late, err)
	}
	if n := len(e.SSM.Sent()); n != 2 {
		t.Fatalf("%d commands for 4 tasks, want 2", n)
	}
}

func TestInvalidInput(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{}, id(1))
	h := newHandler(e)
	now := time.Now()
	cases := []workflow.UnbanInput{
		input("x", now),
		input("x", now, "2001:DB8::1"),       // not normalized
		input("x", now, "::ffff:192.0.2.12"), // mapped
		input("x", now, "192.0.2.12 "),
		input("x", now, "192.0.2.12,192.0.2.13"),
		input("x", now, "192.0.2.0/24"),
		input("x", now, "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"), // > maxItems
		{Addresses: []string{"192.0.2.12"}, Execution: "x"},                                           // no start time
		{Addresses: []string{"192.0.2.12"}, Started: now.Format(time.RFC3339)},                        // no execution
	}
	for _, c := range cases {
		_, err := h.Handle(context.Background(), c)
		var inv *taskerr.InvalidInputError
		if !errors.As(err, &inv) {
			t.Errorf("%+v: %v, want InvalidInputError", c, err)
		}
	}
	if n := len(e.SSM.Sent()); n != 0 {
		t.Fatalf("%d commands sent for invalid input", n)
	}
}

func TestSSMErrors(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{}, id(1), id(2))
	h := newHandler(e)

	// Throttling (after the SDK's own attempts) → TransientError, and the
	// failed send leaves no claim for the retry to wait out.
	e.SSM.InjectError("SendCommand", "ThrottlingException", 400, 1)
	if _, err := h.Handle(context.Background(), input("e1", time.Now(), "192.0.2.12")); !taskerr.IsTransient(err) || taskerr.Name(err) != "TransientError" {
		t.Fatalf("throttled: %v (%s)", err, taskerr.Name(err))
	}
	e.SSM.InjectError("SendCommand", "InternalServerError", 500, 1)
	if _, err := h.Handle(context.Background(), input("e2", time.Now(), "192.0.2.13")); !taskerr.IsTransient(err) {
		t.Fatalf("5xx: %v", err)
	}
	// A missing document is permanent.
	bad := *h
	bad.Cfg.UnbanDocument = "no-such-document"
	_, err := bad.Handle(context.Background(), input("e3", time.Now(), "192.0.2.14"))
	var ce *ssmcmd.CommandError
	if taskerr.IsTransient(err) || !errors.As(err, &ce) {
		t.Fatalf("missing document: %v", err)
	}
	if _, err := h.Handle(context.Background(), input("e1", time.Now(), "192.0.2.12")); err != nil {
		t.Fatalf("retry after throttling: %v", err)
	}
}

// The document accepts as many addresses as one message may carry.
func TestDocumentTakesWhatAMessageMayAsk(t *testing.T) {
	if ssmdoc.MaxAddresses != message.MaxAddresses {
		t.Fatalf("ssmdoc.MaxAddresses %d, message.MaxAddresses %d", ssmdoc.MaxAddresses, message.MaxAddresses)
	}
}
