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
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/ssmdoc"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func id(n int) string { return fmt.Sprintf("i-%017x", n) }

func newHandler(e *fakeenv.Env) *unban.Handler {
	return unban.New(e.SSMClient, unban.Config{
		UnbanDocument: fakeenv.UnbanDocument,
		Delivery: ssmcmd.Delivery{
			TagKey:         fakeenv.TagKey,
			TagValue:       fakeenv.TagValue,
			CommandTimeout: 2 * time.Minute,
			OutputBucket:   fakeenv.OutputBucket,
			OutputPrefix:   fakeenv.OutputPrefix,
		},
		Now: func() time.Time { return now },
	}, nil)
}

func TestBatchesOf50(t *testing.T) {
	e := fakeenv.Start(t)
	var ids []string
	for n := range 120 {
		ids = append(ids, id(n))
	}
	e.AddHosts(ssmfake.Canned{Stdout: `{}`}, ids...)
	// duplicates and unsorted input are normalized
	in := append([]string{id(119), id(0)}, ids...)
	h := newHandler(e)
	h.Cfg.DocumentVersion = "$LATEST"
	ref, err := h.Handle(context.Background(), workflow.CommandRequest{
		Addresses: []string{"192.0.2.12", "2001:db8::1", "192.0.2.12"}, InstanceIDs: in})
	if err != nil {
		t.Fatal(err)
	}
	if ref.Deadline != "2025-03-01T12:02:00Z" {
		t.Errorf("deadline %s", ref.Deadline)
	}
	sent := e.SSM.Sent()
	if len(sent) != 3 || len(ref.CommandIDs) != 3 {
		t.Fatalf("%d commands sent, %d ids returned; want 3", len(sent), len(ref.CommandIDs))
	}
	total := 0
	for i, s := range sent {
		want := []int{50, 50, 20}[i]
		if len(s.InstanceIDs) != want {
			t.Errorf("batch %d has %d instances, want %d", i, len(s.InstanceIDs), want)
		}
		total += len(s.InstanceIDs)
		if s.CommandID != ref.CommandIDs[i] {
			t.Errorf("command id order")
		}
		if s.DocumentName != fakeenv.UnbanDocument || s.DocumentVersion != "$LATEST" || strings.Join(s.Parameters["addresses"], ",") != "192.0.2.12,2001:db8::1" {
			t.Errorf("document %s params %v", s.DocumentName, s.Parameters)
		}
		if s.MaxConcurrency != "50" || s.MaxErrors != "100%" || s.TimeoutSeconds != 120 ||
			s.OutputS3BucketName != fakeenv.OutputBucket || s.OutputS3KeyPrefix != fakeenv.OutputPrefix ||
			!strings.Contains(s.Comment, "192.0.2.12") {
			t.Errorf("command settings %+v", s)
		}
	}
	if total != 120 {
		t.Fatalf("%d instances targeted, want 120", total)
	}
}

func TestAllHostsByTag(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{Stdout: `{}`}, id(1), id(2))
	e.SSM.AddInstance(ssmfake.Instance{ID: id(3), Tags: map[string]string{"other": "x"}, Runner: ssmfake.Canned{}})
	ref, err := newHandler(e).Handle(context.Background(), workflow.CommandRequest{
		Addresses: []string{"192.0.2.12"}, AllHosts: true, InstanceIDs: []string{id(3)}})
	if err != nil {
		t.Fatal(err)
	}
	sent := e.SSM.Sent()
	if len(sent) != 1 || len(ref.CommandIDs) != 1 {
		t.Fatalf("sent %+v", sent)
	}
	s := sent[0]
	if len(s.InstanceIDs) != 0 || strings.Join(s.Targets["tag:"+fakeenv.TagKey], ",") != fakeenv.TagValue {
		t.Fatalf("targets %+v ids %v", s.Targets, s.InstanceIDs)
	}
	if strings.Join(s.Resolved, ",") != id(1)+","+id(2) {
		t.Fatalf("resolved %v", s.Resolved)
	}
}

func TestInvalidInput(t *testing.T) {
	e := fakeenv.Start(t)
	e.AddHosts(ssmfake.Canned{}, id(1))
	h := newHandler(e)
	cases := []workflow.CommandRequest{
		{Addresses: nil, InstanceIDs: []string{id(1)}},
		{Addresses: []string{"192.0.2.12"}},                                      // no targets
		{Addresses: []string{"2001:DB8::1"}, InstanceIDs: []string{id(1)}},       // not normalized
		{Addresses: []string{"::ffff:192.0.2.12"}, InstanceIDs: []string{id(1)}}, // mapped
		{Addresses: []string{"192.0.2.12 "}, InstanceIDs: []string{id(1)}},
		{Addresses: []string{"192.0.2.12,192.0.2.13"}, InstanceIDs: []string{id(1)}},
		{Addresses: []string{"192.0.2.0/24"}, InstanceIDs: []string{id(1)}},
		{Addresses: []string{"192.0.2.12"}, InstanceIDs: []string{"i-1/../x"}},
		{Addresses: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"}, InstanceIDs: []string{id(1)}}, // > maxItems
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
	req := workflow.CommandRequest{Addresses: []string{"192.0.2.12"}, InstanceIDs: []string{id(1), id(2)}}

	// Throttling (after the SDK's own attempts) → TransientError.
	e.SSM.InjectError("SendCommand", "ThrottlingException", 400, 1)
	if _, err := h.Handle(context.Background(), req); !taskerr.IsTransient(err) || taskerr.Name(err) != "TransientError" {
		t.Fatalf("throttled: %v (%s)", err, taskerr.Name(err))
	}
	e.SSM.InjectError("SendCommand", "InternalServerError", 500, 1)
	if _, err := h.Handle(context.Background(), req); !taskerr.IsTransient(err) {
		t.Fatalf("5xx: %v", err)
	}
	// A missing document is permanent.
	bad := *h
	bad.Cfg.UnbanDocument = "no-such-document"
	_, err := bad.Handle(context.Background(), req)
	var ce *ssmcmd.CommandError
	if taskerr.IsTransient(err) || !errors.As(err, &ce) {
		t.Fatalf("missing document: %v", err)
	}
	// An instance SSM does not know (terminated since the lookup) is
	// skipped; the others still get the command.
	ref, err := h.Handle(context.Background(), workflow.CommandRequest{Addresses: []string{"192.0.2.12"},
		InstanceIDs: []string{id(1), id(9), id(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.CommandIDs) != 2 {
		t.Fatalf("commands %v, want one per valid instance", ref.CommandIDs)
	}
}

// The document accepts as many addresses as one message may carry.
func TestDocumentTakesWhatAMessageMayAsk(t *testing.T) {
	if ssmdoc.MaxAddresses != message.MaxAddresses {
		t.Fatalf("ssmdoc.MaxAddresses %d, message.MaxAddresses %d", ssmdoc.MaxAddresses, message.MaxAddresses)
	}
}
