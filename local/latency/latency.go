// Package latency is the model of production latency the local endpoints
// apply when asked (`unbanbot local --latency aws`, `make latency`): how
// long each hop of a request takes in AWS Tokyo, as a distribution per
// component, so that a local run answers "how long does an employee wait?"
// with the production Wait and poll settings instead of the test ones.
//
// AWS publishes no latency figures for Run Command, Step Functions
// transitions or Chatwork. Every figure below says where it comes from:
// [SRC] a public source, [CODE] read from public code (the SSM agent at
// aws/amazon-ssm-agent 1c217c89), [REASON] an estimate with its reasoning.
// The research notes behind them are summarised in the README ("Latency
// model"); replace a guess by a measurement when one exists (the README says
// how to take them from SSM's and Step Functions' own timestamps).
package latency

import (
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"sshguard-unban/local/sfnrunner"
)

// Dist is a latency distribution given by its median and 95th percentile,
// sampled as a log-normal (right-skewed, never negative, like service times).
// The zero Dist is always 0.
type Dist struct {
	P50, P95 time.Duration
}

// Profile is one latency per hop. The zero Profile adds nothing.
type Profile struct {
	Name string

	// APIGateway is what API Gateway's HTTP API adds in front of the
	// webhook Lambda. [REASON] no AWS figure; jarv.org measured HTTP APIs
	// about 100 ms faster than REST APIs at p50, which leaves a small
	// overhead: 10 / 30 ms.
	APIGateway Dist

	// LambdaInvoke is one warm Invoke round trip in the region, beyond the
	// function's own run. [REASON] on [SRC] codetalkio's X-Ray traces (warm
	// service time 6–9 ms): 15 / 40 ms.
	LambdaInvoke Dist
	// LambdaColdStart is added to the first invocation of each function
	// instance. [SRC] maxday/lambda-perf: Init Duration of Go on
	// provided.al2023 arm64 ≈ 42–44 ms; plus the platform's sandbox start
	// and the SDK's first TLS handshake [REASON]: 200 / 450 ms.
	LambdaColdStart Dist

	// SFNStartExecution is the StartExecution API call of a Standard
	// machine. [REASON] one persisted write: 50 / 150 ms.
	SFNStartExecution Dist
	// SFNTransition is charged for every state entered (Standard persists
	// each one in the history). [REASON] no public figure: 30 / 150 ms.
	SFNTransition Dist
	// SFNTaskOverhead is a Task state's own cost of invoking Lambda, beyond
	// the Invoke round trip. [REASON] 40 / 150 ms.
	SFNTaskOverhead Dist
	// SFNWaitOvershoot is how late a Wait state ends (its Seconds are whole
	// seconds only, [SRC] re:Post). [REASON] 100 / 1000 ms.
	SFNWaitOvershoot Dist

	// SSMSendCommand is the SendCommand API call. [REASON] 100 / 300 ms.
	SSMSendCommand Dist
	// SSMInvocationVisible is how long after SendCommand returns the
	// command's invocations stay invisible (GetCommandInvocation answers
	// InvocationDoesNotExist, ListCommandInvocations an empty list). [SRC]
	// boto3 #2701 "0.5-1 second", aws-cli #3546: 500 / 1000 ms.
	SSMInvocationVisible Dist
	// SSMDelivery is SendCommand returning → the agent has the command,
	// over the ssmmessages (MGS) channel agents ≥ 3.1.821.0 use when
	// connected. [CODE] the agent acks at once, so this is the service's
	// push time; [REASON] 300 / 1500 ms.
	SSMDelivery Dist
	// AgentPreExec is the agent's work before the script starts (a new
	// ssm-document-worker process per command). [CODE]+[REASON] 150 / 500 ms.
	AgentPreExec Dist
	// S3Upload is the output upload to OutputS3BucketName, which [CODE]
	// finishes before the agent reports Success (HeadBucket, encryption
	// check, PutObject with a fresh session). [REASON] 100 / 300 ms.
	S3Upload Dist
	// SSMStatusPropagation is the agent's reply → the API shows the final
	// status. [CODE] one send, 1 s ack wait; [REASON] 300 / 1000 ms.
	SSMStatusPropagation Dist
	// SSMReadCall is one ListCommandInvocations, GetCommandInvocation or
	// DescribeInstanceInformation call. [REASON] 40 / 120 ms.
	SSMReadCall Dist

	// S3Call is one S3 GET or PUT from a Lambda in the region (small
	// objects). [REASON] S3's first-byte latency for small objects is tens
	// of milliseconds: 15 / 50 ms.
	S3Call Dist

	// ChatworkPost is one Chatwork API request from Tokyo. [SRC] Chatwork
	// runs on AWS (EKS, AWS case study); the region is not published.
	// [REASON] Tokyo assumed, server time dominates: 200 / 600 ms.
	ChatworkPost Dist
}

// AWS is the production model: ap-northeast-1, SSM agents on the
// ssmmessages channel, warm functions except each instance's first call.
var AWS = Profile{
	Name:                 "aws",
	APIGateway:           Dist{10 * ms, 30 * ms},
	LambdaInvoke:         Dist{15 * ms, 40 * ms},
	LambdaColdStart:      Dist{200 * ms, 450 * ms},
	SFNStartExecution:    Dist{50 * ms, 150 * ms},
	SFNTransition:        Dist{30 * ms, 150 * ms},
	SFNTaskOverhead:      Dist{40 * ms, 150 * ms},
	SFNWaitOvershoot:     Dist{100 * ms, 1000 * ms},
	SSMSendCommand:       Dist{100 * ms, 300 * ms},
	SSMInvocationVisible: Dist{500 * ms, 1000 * ms},
	SSMDelivery:          Dist{300 * ms, 1500 * ms},
	AgentPreExec:         Dist{150 * ms, 500 * ms},
	S3Upload:             Dist{100 * ms, 300 * ms},
	SSMStatusPropagation: Dist{300 * ms, 1000 * ms},
	SSMReadCall:          Dist{40 * ms, 120 * ms},
	S3Call:               Dist{15 * ms, 50 * ms},
	ChatworkPost:         Dist{200 * ms, 600 * ms},
}

const ms = time.Millisecond

// Profiles are the models by name (the --latency flag).
var Profiles = map[string]Profile{"aws": AWS, "none": {Name: "none"}}

// z95 is the standard normal's 95th percentile.
const z95 = 1.6448536269514722

// Sampler draws from distributions with its own seeded source, so a run is
// repeatable for the same sequence of draws. It is safe for concurrent use.
type Sampler struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// NewSampler returns a sampler seeded with seed.
func NewSampler(seed uint64) *Sampler {
	return &Sampler{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Sample draws one latency from d.
func (s *Sampler) Sample(d Dist) time.Duration {
	if d.P50 <= 0 {
		return 0
	}
	s.mu.Lock()
	z := s.rng.NormFloat64()
	s.mu.Unlock()
	return d.at(z)
}

// at is d's quantile at the standard normal value z.
func (d Dist) at(z float64) time.Duration {
	mu := math.Log(float64(d.P50))
	sigma := 0.0
	if d.P95 > d.P50 {
		sigma = (math.Log(float64(d.P95)) - mu) / z95
	}
	return time.Duration(math.Exp(mu + sigma*z))
}

// Sleep sleeps for one draw from d.
func (s *Sampler) Sleep(d Dist) {
	if t := s.Sample(d); t > 0 {
		time.Sleep(t)
	}
}

// Func returns a function drawing from d, for fakes that take one.
func (s *Sampler) Func(d Dist) func() time.Duration {
	return func() time.Duration { return s.Sample(d) }
}

// Delay wraps a local endpoint so each request takes one draw from d first,
// like a remote service's response time.
func (s *Sampler) Delay(h http.Handler, d Dist) http.Handler {
	if d.P50 <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Sleep(d)
		h.ServeHTTP(w, r)
	})
}

// StepFunctions is the part of p the state machine interpreter applies, in
// its units.
func (p Profile) StepFunctions(seed uint32) *sfnrunner.Latency {
	msOf := func(d Dist) [2]float64 {
		return [2]float64{float64(d.P50) / float64(time.Millisecond), float64(d.P95) / float64(time.Millisecond)}
	}
	return &sfnrunner.Latency{TransitionMillis: msOf(p.SFNTransition), WaitOvershootMillis: msOf(p.SFNWaitOvershoot), Seed: seed}
}
