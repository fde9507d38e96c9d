package refreshlist_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/lambdas/lookup"
	"sshguard-unban/lambdas/refreshlist"
	"sshguard-unban/local/fakeenv"
	"sshguard-unban/local/ssmfake"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmcmd"
	"sshguard-unban/shared/workflow"
)

func id(n int) string { return fmt.Sprintf("i-%017x", n) }

// fleet is a set of fake hosts whose report script prints whatever entries
// the test sets, stamped with the test clock.
type fleet struct {
	mu      sync.Mutex
	now     time.Time
	entries map[string][]string
	broken  map[string]string        // instance → raw stdout instead of a report
	skew    map[string]time.Duration // instance → how far its clock is off
	// noDigest: the host prints no SHA-256 of its stdout (no sha256sum).
	noDigest map[string]bool
}

func (f *fleet) set(id string, entries ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries[id] = entries
}

func (f *fleet) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fleet) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fleet) runner(instance string) ssmfake.Runner {
	return ssmfake.RunnerFunc(func(ctx context.Context, doc string, params map[string][]string) ([]byte, []byte, int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if doc != fakeenv.ReportDocument || len(params) != 0 {
			return nil, []byte("unexpected document or parameters"), 1, nil
		}
		if raw, ok := f.broken[instance]; ok {
			return []byte(raw), nil, 0, nil
		}
		r := hostreport.Report{Host: "web-" + instance[len(instance)-2:], Time: f.now.Add(f.skew[instance]).Format(time.RFC3339), Backend: "nft-sets", Entries: []hostreport.Entry{}}
		for _, e := range f.entries[instance] {
			r.Entries = append(r.Entries, hostreport.Entry{Entry: e, Family: 4})
		}
		b, _ := json.Marshal(r)
		if f.noDigest[instance] {
			return b, nil, 0, nil
		}
		return b, []byte(ssmcmd.DigestLine(b)), 0, nil
	})
}

type world struct {
	e     *fakeenv.Env
	f     *fleet
	h     *refreshlist.Handler
	ids   []string
	cfg   refreshlist.Config
	store *banlist.Store
}

func newWorld(t *testing.T, hosts int) *world {
	e := fakeenv.Start(t)
	f := &fleet{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), entries: map[string][]string{}, broken: map[string]string{}, skew: map[string]time.Duration{}, noDigest: map[string]bool{}}
	w := &world{e: e, f: f}
	for n := 1; n <= hosts; n++ {
		w.ids = append(w.ids, id(n))
		e.SSM.AddInstance(ssmfake.Instance{ID: id(n), Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue}, Runner: f.runner(id(n))})
	}
	w.cfg = refreshlist.Config{
		ReportDocument: fakeenv.ReportDocument, StepName: fakeenv.ReportStep,
		Delivery: ssmcmd.Delivery{
			TagKey: fakeenv.TagKey, TagValue: fakeenv.TagValue,
			CommandTimeout: time.Minute,
			OutputBucket:   fakeenv.OutputBucket, OutputPrefix: fakeenv.OutputPrefix,
		},
		Bucket: fakeenv.ListBucket, Prefix: "lists",
		Now: func() time.Time { return f.clock().Add(2 * time.Second) },
	}
	w.h = refreshlist.New(e.SSMClient, e.S3Client, w.cfg, nil)
	return w
}

// round runs request → (commands finish) → store.
func (w *world) round(t *testing.T, req workflow.CommandRequest) (workflow.RefreshResult, workflow.CommandRef) {
	t.Helper()
	ctx := context.Background()
	sent, err := w.h.Handle(ctx, workflow.RefreshInput{Action: refreshlist.ActionRequest, CommandRequest: req})
	if err != nil {
		t.Fatal(err)
	}
	w.e.WaitAll(t, sent.CommandIDs...)
	res, err := w.h.Handle(ctx, workflow.RefreshInput{Action: refreshlist.ActionStore, CommandRef: sent.CommandRef})
	if err != nil {
		t.Fatal(err)
	}
	return res, sent.CommandRef
}

func bans(r workflow.RefreshResult) string {
	var s []string
	for _, b := range r.NewBans {
		s = append(s, b.InstanceID[len(b.InstanceID)-2:]+":"+b.Entry)
	}
	return strings.Join(s, " ")
}

func TestRequestBatchesAndTags(t *testing.T) {
	w := newWorld(t, 0)
	var ids []string
	for n := range 101 {
		ids = append(ids, id(n))
	}
	w.e.AddHosts(ssmfake.Canned{}, ids...)
	res, err := w.h.Handle(context.Background(), workflow.RefreshInput{Action: refreshlist.ActionRequest,
		CommandRequest: workflow.CommandRequest{InstanceIDs: ids}})
	if err != nil {
		t.Fatal(err)
	}
	sent := w.e.SSM.Sent()
	if len(res.CommandIDs) != 3 || len(sent) != 3 || len(sent[2].InstanceIDs) != 1 {
		t.Fatalf("%d commands", len(sent))
	}
	if sent[0].DocumentName != fakeenv.ReportDocument || len(sent[0].Parameters) != 0 || sent[0].OutputS3BucketName != fakeenv.OutputBucket {
		t.Fatalf("%+v", sent[0])
	}
	res, err = w.h.Handle(context.Background(), workflow.RefreshInput{Action: refreshlist.ActionRequest,
		CommandRequest: workflow.CommandRequest{AllHosts: true}})
	if err != nil || len(res.CommandIDs) != 1 {
		t.Fatal(err)
	}
	if s := w.e.SSM.Sent()[3]; s.Targets["tag:"+fakeenv.TagKey][0] != fakeenv.TagValue || len(s.Resolved) != 101 {
		t.Fatalf("%+v", s)
	}
	if _, err := w.h.Handle(context.Background(), workflow.RefreshInput{Action: "delete"}); err == nil {
		t.Fatal("unknown action accepted")
	}
}

func TestStoreRounds(t *testing.T) {
	w := newWorld(t, 3)
	a, b, c := w.ids[0], w.ids[1], w.ids[2]
	w.f.set(a, "192.0.2.1", "198.51.100.0/24")
	w.f.set(b, "192.0.2.2")
	w.f.set(c)

	// Round 1: first reports ever, nothing announced.
	res, _ := w.round(t, workflow.CommandRequest{AllHosts: true})
	if len(res.Stored) != 3 || len(res.Failed) != 0 || len(res.NewBans) != 0 {
		t.Fatalf("round 1: %+v", res)
	}

	// Round 2: new entries on a and c; b unchanged; an entry written in
	// another form (masked differently) is not new.
	w.f.advance(time.Minute)
	w.f.set(a, "192.0.2.1", "198.51.100.9/24", "203.0.113.5")
	w.f.set(c, "2001:db8::7")
	res, ref := w.round(t, workflow.CommandRequest{AllHosts: true})
	if got := bans(res); got != "01:203.0.113.5 03:2001:db8::7" {
		t.Fatalf("round 2 new bans %q", got)
	}
	// Dated by SSM's clock (the command's time), not the host's, which in
	// this fleet runs in 2025.
	if nb := res.NewBans[0]; nb.Host != "web-01" || !near(nb.Time, time.Now()) {
		t.Fatalf("new ban %+v", nb)
	}

	// Idempotent re-store of the same command: same answer, nothing rewritten.
	before, _, _ := banlist.ReadHost(context.Background(), w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}, a)
	again, err := w.h.Handle(context.Background(), workflow.RefreshInput{Action: refreshlist.ActionStore, CommandRef: ref})
	if err != nil {
		t.Fatal(err)
	}
	if bans(again) != bans(res) || !slices.Equal(again.Stored, res.Stored) {
		t.Fatalf("re-store: %q %v", bans(again), again.Stored)
	}
	after, _, _ := banlist.ReadHost(context.Background(), w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}, a)
	if before.StoredAt != after.StoredAt || before.CommandID != after.CommandID {
		t.Fatalf("host list rewritten by a re-store")
	}

	// Round 3: b's command fails and c reports garbage: both failed, their
	// previous lists kept; a stored.
	w.f.advance(time.Minute)
	w.e.SSM.SetFault(b, ssmfake.Fault{Fail: true})
	w.f.mu.Lock()
	w.f.broken[c] = "not json"
	w.f.mu.Unlock()
	res, _ = w.round(t, workflow.CommandRequest{InstanceIDs: []string{a, b, c}})
	if !slices.Equal(res.Stored, []string{a}) || !slices.Equal(res.Failed, []string{b, c}) || len(res.NewBans) != 0 {
		t.Fatalf("round 3: %+v", res)
	}
	loc := banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}
	kept, _, err := banlist.ReadHost(context.Background(), w.e.S3Client, loc, b)
	if err != nil || len(kept.Report.Entries) != 1 || kept.Report.Entries[0].Entry != "192.0.2.2" {
		t.Fatalf("b's previous list: %+v %v", kept, err)
	}

	// The lookup now sees b and c as stale after the freshness bound passes
	// (their lists are from round 2), and a's as fresh.
	lk := lookup.New(w.e.S3Client, lookup.Config{Bucket: fakeenv.ListBucket, Prefix: "lists", Freshness: 90 * time.Second,
		Now: func() time.Time { return w.f.clock().Add(40 * time.Second) }}, nil)
	lr, err := lk.Handle(context.Background(), workflow.LookupInput{Addresses: []string{"203.0.113.5", "192.0.2.2"}})
	if err != nil {
		t.Fatal(err)
	}
	if lr.StaleHosts != 2 || lr.Hosts != 3 || lr.ListedHosts != 2 || lr.Listed[0].InstanceID != a {
		t.Fatalf("lookup after round 3: %+v", lr)
	}
}

// A host whose clock is a day ahead, then corrected (NTP came back), and one
// a day behind: each keeps getting its list stored and its new bans
// announced, dated by SSM's clock. (Ordered by the host's clock, the
// corrected host's reports were all "superseded" by the one from tomorrow.)
func TestHostClockOff(t *testing.T) {
	w := newWorld(t, 2)
	ahead, behind := w.ids[0], w.ids[1]
	w.f.mu.Lock()
	w.f.skew[ahead], w.f.skew[behind] = 24*time.Hour, -24*time.Hour
	w.f.mu.Unlock()
	w.f.set(ahead, "192.0.2.1")
	w.f.set(behind, "192.0.2.2")
	if res, _ := w.round(t, workflow.CommandRequest{AllHosts: true}); res.StoredCount != 2 {
		t.Fatalf("round 1: %+v", res)
	}

	w.f.mu.Lock()
	w.f.skew[ahead] = 0
	w.f.mu.Unlock()
	w.f.advance(time.Minute)
	w.f.set(ahead, "192.0.2.1", "203.0.113.7")
	w.f.set(behind, "192.0.2.2", "203.0.113.8")
	res, _ := w.round(t, workflow.CommandRequest{AllHosts: true})
	if got := bans(res); got != "01:203.0.113.7 02:203.0.113.8" {
		t.Fatalf("round 2 new bans %q (stored %d)", got, res.StoredCount)
	}
	for _, nb := range res.NewBans {
		if !near(nb.Time, time.Now()) {
			t.Errorf("%s dated %s, not by SSM's clock", nb.Entry, nb.Time)
		}
	}
	for _, id := range []string{ahead, behind} {
		l, _, err := banlist.ReadHost(context.Background(), w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}, id)
		if err != nil || len(l.Report.Entries) != 2 {
			t.Errorf("%s: stored list %+v %v", id, l, err)
		}
	}
}

func TestLargeReportsThroughS3(t *testing.T) {
	w := newWorld(t, 2)
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf("10.%d.%d.%d", i/65536, (i/256)%256, i%256))
	}
	w.f.set(w.ids[0], many...)
	w.f.set(w.ids[1], "192.0.2.1")
	res, _ := w.round(t, workflow.CommandRequest{AllHosts: true})
	if len(res.Stored) != 2 {
		t.Fatalf("%+v", res)
	}
	ix, _, err := banlist.ReadIndex(context.Background(), w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"})
	if err != nil || ix.Host(w.ids[0]).Entries != 1000 {
		t.Fatalf("index: %v", err)
	}

	// Without the S3 output location the same report is truncated: failed,
	// never stored half.
	w2 := newWorld(t, 1)
	w2.f.set(w2.ids[0], many...)
	cfg := w2.cfg
	cfg.OutputBucket = ""
	w2.h = refreshlist.New(w2.e.SSMClient, w2.e.S3Client, cfg, nil)
	res, _ = w2.round(t, workflow.CommandRequest{AllHosts: true})
	if len(res.Stored) != 0 || len(res.Failed) != 1 {
		t.Fatalf("no S3: %+v", res)
	}
}

// A compromised tagged host may write any key under the output prefix (the
// host policy cannot bind a key to the instance that writes it). It
// overwrites its neighbour's report with one that hides a ban. The reader
// trusts only what SSM itself captured (GetCommandInvocation): a forged copy
// is never stored, whether the report fits SSM's 24,000 characters (the S3
// copy is not needed) or not (the S3 copy must begin with SSM's, and have
// the SHA-256 the host printed on stderr, which SSM captured too).
func TestForgedReportFromAnotherHost(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries int
		// hideLast: the hidden address is the report's last entry, past
		// SSM's 24,000 characters, and the forger copies everything else
		// exactly (the beginning SSM kept matches).
		hideLast bool
	}{
		{"report under 24,000 characters", 200, false},
		{"report over 24,000 characters", 1000, false},
		{"only the tail past 24,000 characters forged", 1000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 2)
			victim, attacker := w.ids[0], w.ids[1]
			var genuine []string
			for i := range c.entries {
				genuine = append(genuine, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
			}
			// The hidden address comes first: past SSM's 24,000 characters
			// only the S3 copy exists (see ssmcmd.OutputSource.Stdout).
			if c.hideLast {
				w.f.set(victim, append(slices.Clone(genuine), "203.0.113.66")...)
			} else {
				w.f.set(victim, append([]string{"203.0.113.66"}, genuine...)...)
			}
			w.f.set(attacker)
			ctx := context.Background()
			sent, err := w.h.Handle(ctx, workflow.RefreshInput{Action: refreshlist.ActionRequest,
				CommandRequest: workflow.CommandRequest{AllHosts: true}})
			if err != nil {
				t.Fatal(err)
			}
			w.e.WaitAll(t, sent.CommandIDs...)

			// The attacker's own report as a template, with the victim's
			// entries minus the address it wants hidden.
			forged := hostreport.Report{Host: "web-" + victim[len(victim)-2:], Time: w.f.clock().Format(time.RFC3339), Backend: "nft-sets"}
			for _, e := range genuine {
				forged.Entries = append(forged.Entries, hostreport.Entry{Entry: e, Family: 4})
			}
			body, _ := json.Marshal(forged)
			key := ssmcmd.OutputKey(fakeenv.OutputPrefix, sent.CommandIDs[0], victim, fakeenv.ReportStep, "stdout")
			if _, err := w.e.S3Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(fakeenv.OutputBucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				t.Fatal(err)
			}

			res, err := w.h.Handle(ctx, workflow.RefreshInput{Action: refreshlist.ActionStore, CommandRef: sent.CommandRef})
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := banlist.ReadHost(ctx, w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}, victim)
			switch {
			case slices.Contains(res.Stored, victim):
				hidden := !slices.ContainsFunc(l.Report.Entries, func(e hostreport.Entry) bool { return e.Entry == "203.0.113.66" })
				if err != nil || len(l.Report.Entries) != c.entries+1 || hidden {
					t.Fatalf("stored %d entries (err %v), want the genuine %d with 203.0.113.66", len(l.Report.Entries), err, c.entries+1)
				}
			case slices.Contains(res.Failed, victim):
				if err == nil {
					t.Fatalf("victim failed, yet a list was stored: %d entries", len(l.Report.Entries))
				}
			default:
				t.Fatalf("victim neither stored nor failed: %+v", res)
			}
			if c.entries > 700 && !slices.Contains(res.Failed, victim) {
				t.Errorf("a report SSM could not capture whole was taken from a forged copy: %+v", res)
			}
		})
	}
}

// A genuine report too long for SSM's own copy is read from S3 and stored
// when its SHA-256 is the one the host printed; a host that printed none
// (no sha256sum) keeps its previous list, since nothing vouches for the
// copy's tail. Short reports need no digest.
func TestLongReportNeedsItsDigest(t *testing.T) {
	w := newWorld(t, 3)
	long, unvouched, short := w.ids[0], w.ids[1], w.ids[2]
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	w.f.set(long, many...)
	w.f.set(unvouched, many...)
	w.f.set(short, "192.0.2.7")
	w.f.noDigest[unvouched], w.f.noDigest[short] = true, true
	var logs bytes.Buffer
	w.h.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	res, _ := w.round(t, workflow.CommandRequest{AllHosts: true})
	if !slices.Contains(res.Stored, long) || !slices.Contains(res.Stored, short) || !slices.Contains(res.Failed, unvouched) || slices.Contains(res.Stored, unvouched) {
		t.Fatalf("stored %v, failed %v: want %s and %s stored, %s failed", res.Stored, res.Failed, long, short, unvouched)
	}
	if !strings.Contains(logs.String(), "install sha256sum") || strings.Contains(logs.String(), "forged") {
		t.Errorf("the log must say the digest is missing, not that the report was forged:\n%s", logs.String())
	}
	l, _, err := banlist.ReadHost(context.Background(), w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}, long)
	if err != nil || len(l.Report.Entries) != len(many) {
		t.Fatalf("long report: %v, want %d entries", err, len(many))
	}
}

func TestConcurrentStores(t *testing.T) {
	w := newWorld(t, 20)
	for i, id := range w.ids {
		w.f.set(id, fmt.Sprintf("192.0.2.%d", i+1))
	}
	// Two refreshes over overlapping hosts, stored at the same time.
	ctx := context.Background()
	var refs []workflow.CommandRef
	for _, ids := range [][]string{w.ids[:12], w.ids[8:]} {
		sent, err := w.h.Handle(ctx, workflow.RefreshInput{Action: refreshlist.ActionRequest, CommandRequest: workflow.CommandRequest{InstanceIDs: ids}})
		if err != nil {
			t.Fatal(err)
		}
		w.e.WaitAll(t, sent.CommandIDs...)
		refs = append(refs, sent.CommandRef)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := refreshlist.New(w.e.SSMClient, w.e.S3Client, w.cfg, nil)
			_, errs[i] = h.Handle(ctx, workflow.RefreshInput{Action: refreshlist.ActionStore, CommandRef: ref})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ix, _, err := banlist.ReadIndex(ctx, w.e.S3Client, banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"})
	if err != nil || len(ix.Hosts) != 20 {
		t.Fatalf("index has %d hosts (%v), want 20", len(ix.Hosts), err)
	}
}

func TestNewBansCapped(t *testing.T) {
	w := newWorld(t, 1)
	cfg := w.cfg
	cfg.MaxNewBans = 5
	w.h = refreshlist.New(w.e.SSMClient, w.e.S3Client, cfg, nil)
	w.f.set(w.ids[0], "192.0.2.1")
	w.round(t, workflow.CommandRequest{AllHosts: true})
	var many []string
	for i := range 50 {
		many = append(many, fmt.Sprintf("198.51.100.%d", i+1))
	}
	w.f.advance(time.Minute)
	w.f.set(w.ids[0], many...)
	res, _ := w.round(t, workflow.CommandRequest{AllHosts: true})
	if len(res.NewBans) != 5 {
		t.Fatalf("%d new bans returned, want the cap of 5", len(res.NewBans))
	}
}

// After an unban, the report each host printed after its results becomes
// its stored list: no second command. A block that appeared since the
// host's previous list is a new ban; a host whose unban failed keeps its
// previous list.
func TestStoreUnbanReports(t *testing.T) {
	w := newWorld(t, 2)
	a, b := w.ids[0], w.ids[1]
	w.f.set(a, "203.0.113.5", "198.51.100.1")
	w.f.set(b, "192.0.2.9")
	w.round(t, workflow.CommandRequest{AllHosts: true}) // the baseline

	unbanOut := func(host string, entries ...string) string {
		r := hostreport.Report{Host: host, Time: w.f.clock().Add(time.Minute).Format(time.RFC3339), Backend: "nft-sets", Entries: []hostreport.Entry{}}
		for _, e := range entries {
			r.Entries = append(r.Entries, hostreport.Entry{Entry: e, Family: 4})
		}
		u := hostreport.Unban{Host: host, Backend: "nft-sets", Report: &r,
			Results: []hostreport.AddressResult{{Address: "203.0.113.5", WasBlocked: true, Removed: []string{"203.0.113.5"}}}}
		out, _ := json.Marshal(u)
		return string(out)
	}
	w.e.SSM.AddInstance(ssmfake.Instance{ID: a, Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue},
		Runner: ssmfake.Canned{Stdout: unbanOut("web-01", "198.51.100.1", "198.51.100.2")}})
	w.e.SSM.AddInstance(ssmfake.Instance{ID: b, Tags: map[string]string{fakeenv.TagKey: fakeenv.TagValue},
		Runner: ssmfake.Canned{Stdout: `{"host":"web-02","results":[],"error":"cannot read nft set ip sshguard attackers","code":"firewall_unreadable"}`, ExitCode: 3}})
	sent, err := ssmcmd.Send(context.Background(), w.e.SSMClient, ssmcmd.Spec{Document: fakeenv.UnbanDocument, AllHosts: true,
		TagKey: fakeenv.TagKey, TagValue: fakeenv.TagValue, OutputBucket: fakeenv.OutputBucket, OutputPrefix: fakeenv.OutputPrefix,
		Parameters: map[string][]string{"addresses": {"203.0.113.5"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.e.WaitAll(t, sent.CommandIDs...)
	res, err := w.h.Handle(context.Background(), workflow.RefreshInput{Action: refreshlist.ActionStoreUnban,
		CommandRef: workflow.CommandRef{CommandIDs: sent.CommandIDs, Deadline: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Stored, []string{a}) || !slices.Equal(res.Failed, []string{b}) || bans(res) != "01:198.51.100.2" {
		t.Fatalf("%+v new bans %q", res, bans(res))
	}
	loc := banlist.Location{Bucket: fakeenv.ListBucket, Prefix: "lists"}
	got, _, err := banlist.ReadHost(context.Background(), w.e.S3Client, loc, a)
	if err != nil || len(got.Report.Entries) != 2 || got.Report.Entries[0].Entry != "198.51.100.1" {
		t.Fatalf("a's list after the unban: %+v %v", got, err)
	}
	kept, _, err := banlist.ReadHost(context.Background(), w.e.S3Client, loc, b)
	if err != nil || len(kept.Report.Entries) != 1 || kept.Report.Entries[0].Entry != "192.0.2.9" {
		t.Fatalf("b's list: %+v %v", kept, err)
	}
}

// near: the RFC 3339 time is within a few seconds of want.
func near(s string, want time.Time) bool {
	t, err := time.Parse(time.RFC3339, s)
	return err == nil && t.Sub(want).Abs() < 5*time.Second
}
