package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sshguard-unban/local/dynalite/dynalitetest"
)

func newStore(t *testing.T, now *time.Time) *Store {
	t.Helper()
	return &Store{DB: dynalitetest.Table(t, "policy"), Table: "policy", Now: func() time.Time { return *now }}
}

// What the page shows: the last day's requests, newest first, one per
// execution, older ones gone; concurrent answers all kept.
func TestAppendAndRecent(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 23, 30, 0, 0, time.UTC)
	s := newStore(t, &now)
	recs := []Record{
		{Time: now.Add(-25 * time.Hour), AccountID: "1", Addresses: []string{"192.0.2.1"}, Result: ResultUnblocked, Execution: "too-old"},
		{Time: now.Add(-23 * time.Hour), AccountID: "2", RoomID: "9", Addresses: []string{"192.0.2.2"}, Result: ResultNotBlocked, Execution: "e2"},
		{Time: now.Add(-2 * time.Hour), AccountID: "3", Addresses: []string{"192.0.2.3"}, Result: ResultUnblocked, Hosts: []string{"web-1"}, Execution: "e3"},
		// A retried answer: the same execution again, later.
		{Time: now.Add(-time.Hour), AccountID: "3", Addresses: []string{"192.0.2.3"}, Result: ResultFailed, Execution: "e3"},
		{Time: now.Add(-time.Minute), AccountID: "4", Addresses: []string{"2001:db8::1"}, Result: ResultRefused, Execution: "e4"},
	}
	for _, r := range recs {
		if err := s.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Recent(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Execution+"/"+r.Result)
	}
	if fmt.Sprint(names) != "[e4/refused e3/unblocked e2/not_blocked]" {
		t.Fatalf("Recent = %v", names)
	}
	if got[1].Hosts[0] != "web-1" || got[2].RoomID != "9" {
		t.Fatalf("fields lost: %+v", got)
	}
	if got, _ := s.Recent(ctx, 2); len(got) != 2 || got[0].Execution != "e4" {
		t.Fatalf("Recent(2) = %+v", got)
	}

	// Twenty notify runs answering in the same hour at once.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := s.Append(ctx, Record{AccountID: "5", Result: ResultUnblocked, Execution: fmt.Sprintf("burst-%d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _ := s.Recent(ctx, 0); len(got) != 23 {
		t.Fatalf("after the burst: %d records, want 23", len(got))
	}
}

func TestHourFull(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := newStore(t, &now)
	// The largest records there can be: five long IPv6 addresses, the
	// longest ids and execution name, and the most host names. DynamoDB
	// (and dynalite) refuse an item over 400 KB as invalid, which the
	// condition would not catch: a full hour must stay under it.
	big := func(i int) Record {
		r := Record{AccountID: "12345678901234567890", RoomID: "12345678901234567890", Result: ResultNotBlocked,
			Execution: fmt.Sprintf("%080d", i)}
		for range 5 {
			r.Addresses = append(r.Addresses, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
		}
		for h := range 30 {
			r.Hosts = append(r.Hosts, fmt.Sprintf("build-runner-%02d.example.internal", h))
		}
		return r
	}
	for i := range MaxPerHour {
		if err := s.Append(ctx, big(i)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	got, err := s.Recent(ctx, 1)
	if err != nil || len(got) != 1 || len(got[0].Hosts)+got[0].MoreHosts != 30 || got[0].MoreHosts == 0 {
		t.Fatalf("a long record: %+v %v; want some hosts kept and the rest counted", got, err)
	}
	if err := s.Append(ctx, Record{Execution: "one more"}); !errors.Is(err, ErrHourFull) {
		t.Fatalf("append to a full hour: %v", err)
	}
	now = now.Add(time.Hour)
	if err := s.Append(ctx, Record{Execution: "next hour"}); err != nil {
		t.Fatalf("the next hour: %v", err)
	}
}
