package system

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/local/latency"
	"sshguard-unban/shared/chatwork"
	"sshguard-unban/shared/ssmdoc"
)

// BenchmarkRequestLatency is `make latency`: the time an employee waits,
// from posting the message to the bot's final answer (and, beside it, to
// the progress message that answer is edited from), with every local
// endpoint taking the time the production model (local/latency.AWS) gives
// it and the state machines using their own Wait and Retry settings. The
// employee was blocked a moment ago (the scenario the product is for): each
// request attacks one host with real sshguard, then asks at once. Requests
// arrive one per LATENCY_SPACING (default 2 s), so a few overlap, as they do
// in an office.
//
// The floor is measured in the same run under the same model, with no
// orchestration at all: one SSM round trip plus one Chatwork post. A reply
// must carry every tagged host's live answer, so the round trip is one
// SendCommand of the unban document to the tag, ListCommandInvocations every
// 100 ms until every host has finished: the slowest of the hosts' deliveries,
// which no design can beat. The same to one host only is printed beside it,
// to show what the fleet's slowest agent costs. The last line is for scripts:
//
//	LATENCY p50_s=… p95_s=… floor_p50_s=… ratio=…
func BenchmarkRequestLatency(b *testing.B) {
	n := envInt("LATENCY_REQUESTS", 50)
	spacing := time.Duration(envInt("LATENCY_SPACING_MS", 2000)) * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	real, _ := realHosts()
	s := start(b, ctx, Options{Latency: &latency.AWS, Simulate: !real})
	refresh(b, ctx, s)

	for b.Loop() {
		e2e, progress := requestLatencies(b, ctx, s, n, spacing)
		floor := floorLatencies(b, ctx, s, min(n, 20), true)
		one := floorLatencies(b, ctx, s, min(n, 20), false)
		p50, p95, f50 := pct(e2e, 50), pct(e2e, 95), pct(floor, 50)
		ratio := float64(p50) / float64(f50)
		b.ReportMetric(p50.Seconds(), "p50_s")
		b.ReportMetric(p95.Seconds(), "p95_s")
		b.ReportMetric(f50.Seconds(), "floor_p50_s")
		b.ReportMetric(ratio, "ratio")
		fmt.Printf("floor to one host: p50=%v p95=%v\n", pct(one, 50).Round(time.Millisecond), pct(one, 95).Round(time.Millisecond))
		fmt.Printf("hosts=%s requests=%d spacing=%v message→reply p50=%v p95=%v max=%v; floor (every tagged host) p50=%v p95=%v\n",
			hostKind(s), n, spacing, p50.Round(time.Millisecond), p95.Round(time.Millisecond), slices.Max(e2e).Round(time.Millisecond),
			f50.Round(time.Millisecond), pct(floor, 95).Round(time.Millisecond))
		if len(progress) > 0 {
			fmt.Printf("message→progress message (%d of %d requests had one) p50=%v p95=%v\n", len(progress), n,
				pct(progress, 50).Round(time.Millisecond), pct(progress, 95).Round(time.Millisecond))
			b.ReportMetric(pct(progress, 50).Seconds(), "progress_p50_s")
		}
		printBreakdown(s)
		fmt.Printf("LATENCY p50_s=%.2f p95_s=%.2f floor_p50_s=%.2f ratio=%.2f\n", p50.Seconds(), p95.Seconds(), f50.Seconds(), ratio)
	}
}

// requestLatencies sends n requests, each for an address blocked just
// before on one host, and returns message→reply for each.
func requestLatencies(b *testing.B, ctx context.Context, s *System, n int, spacing time.Duration) (out, progress []time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	// Employees, in the room long before they ask (the bot's member list
	// knows them: the policy reads it once).
	for i := range n {
		s.Join(AskRoomID, strconv.Itoa(3900000+i))
	}
	tick := time.NewTicker(spacing)
	defer tick.Stop()
	for i := range n {
		addr := fmt.Sprintf("198.51.100.%d", 10+i%200)
		h := s.Hosts[i%len(s.Hosts)]
		if err := h.Attack(ctx, addr); err != nil {
			b.Fatal(err)
		}
		account := strconv.Itoa(3900000 + i)
		sent := time.Now()
		status, id, err := s.Say(ctx, account, addr+" がブロックされました。解除をお願いします")
		if err != nil || status != http.StatusOK {
			b.Fatalf("webhook: %d %v", status, err)
		}
		wg.Go(func() {
			reply, err := s.ReplyTo(ctx, id)
			if err != nil {
				b.Error(err)
				return
			}
			if !strings.Contains(reply.Body, addr) {
				b.Errorf("reply to %s does not name %s: %q", account, addr, reply.Body)
			}
			if bl, err := h.Blocked(ctx); err != nil || blocking(bl, addr) {
				b.Errorf("after the reply %s still blocks %s (%v)", h.Name, addr, err)
			}
			mu.Lock()
			out = append(out, reply.Shown().Sub(sent))
			if reply.Updated {
				progress = append(progress, reply.Time.Sub(sent))
			}
			mu.Unlock()
		})
		<-tick.C
	}
	wg.Wait()
	if len(out) != n {
		b.Fatalf("%d of %d requests answered", len(out), n)
	}
	return out, progress
}

// floorLatencies measures, k times, what no design can beat: one SSM round
// trip (to every tagged host, or to one) and one Chatwork post, through the
// same local endpoints under the same model.
func floorLatencies(b *testing.B, ctx context.Context, s *System, k int, everyHost bool) []time.Duration {
	client := ssm.NewFromConfig(s.awsCfg)
	chat := &chatwork.Client{BaseURL: s.ChatURL, Token: func(context.Context) (string, error) { return s.apiToken, nil }}
	var out []time.Duration
	for i := range k {
		in := &ssm.SendCommandInput{
			DocumentName:       aws.String(UnbanDocument),
			Parameters:         map[string][]string{ssmdoc.AddressesParam: {fmt.Sprintf("203.0.113.%d", 100+i)}},
			OutputS3BucketName: aws.String(Bucket), OutputS3KeyPrefix: aws.String("floor"),
			MaxConcurrency: aws.String("100%"),
		}
		want := len(s.Hosts)
		if everyHost {
			in.Targets = []types.Target{{Key: aws.String("tag:" + TagKey), Values: []string{TagValue}}}
		} else {
			in.InstanceIds, want = []string{s.Hosts[i%len(s.Hosts)].InstanceID}, 1
		}
		start := time.Now()
		sent, err := client.SendCommand(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		for {
			list, err := client.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{CommandId: sent.Command.CommandId})
			done := 0
			if err == nil {
				for _, inv := range list.CommandInvocations {
					switch inv.Status {
					case types.CommandInvocationStatusSuccess:
						done++
					case types.CommandInvocationStatusFailed, types.CommandInvocationStatusTimedOut:
						b.Fatalf("floor command on %s: %s", aws.ToString(inv.InstanceId), inv.Status)
					}
				}
			}
			if done == want {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := chat.PostMessage(ctx, AskRoomID, "floor"); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// printBreakdown says where the time went, as medians over the unban
// executions: from the execution's start to each state of the path.
func printBreakdown(s *System) {
	marks := []string{"ReadTheMessage", "RemoveBlockOnHosts", "LookUpBanLists", "CheckPolicy", "WhatDoesThePolicySay", "SayWeAreOnIt", "IsItAnUnbanRequest", "CheckUnbanCommand", "ReplyToUser", "AnySilentHosts"}
	at := map[string][]time.Duration{}
	for _, e := range s.SFN.Executions() {
		if e.Machine != "unban" || len(e.Run.EnteredMillis) != len(e.Run.States) {
			continue
		}
		start := e.Run.Start()
		seen := map[string]bool{}
		for i, st := range e.Run.States {
			if slices.Contains(marks, st) && !seen[st] {
				seen[st] = true
				at[st] = append(at[st], time.UnixMilli(e.Run.EnteredMillis[i]).Sub(start))
			}
		}
	}
	var parts []string
	for _, m := range marks {
		parts = append(parts, fmt.Sprintf("%s@%v", m, pct(at[m], 50)))
	}
	fmt.Printf("breakdown (median time after the execution started): %s\n", strings.Join(parts, " "))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
