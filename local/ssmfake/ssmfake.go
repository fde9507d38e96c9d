// Package ssmfake is an SSM Run Command endpoint for tests and the local
// mode. It speaks the real AWS JSON 1.1 protocol (POST /, X-Amz-Target:
// AmazonSSM.<Operation>, Content-Type application/x-amz-json-1.1, PascalCase
// members, errors as {"__type": …, "message": …}), so an unchanged
// aws-sdk-go-v2 ssm client with BaseEndpoint set to it works. The request
// and response shapes follow the SDK's request/response snapshots for
// service/ssm v1.82.1.
//
// Served operations: SendCommand, ListCommandInvocations,
// GetCommandInvocation and DescribeInstanceInformation. Anything else
// answers UnknownOperationException.
//
// It does not verify SigV4 signatures; it only requires an Authorization
// header, so an unsigned request fails the way it would in AWS.
//
// Behaviour copied from Run Command and the SSM agent:
//   - Instances are registered with tags; Targets [{Key: "tag:K", Values}]
//     and [{Key: "InstanceIds", Values}] resolve against them. An unknown
//     instance id in InstanceIds fails the whole call with InvalidInstanceId.
//   - At most 50 InstanceIds and 5 Targets per call; MaxConcurrency and
//     MaxErrors are validated and honoured (invocations not started once the
//     error count exceeds MaxErrors end as Terminated).
//   - Documents must be registered (InvalidDocument otherwise) and declare
//     their parameters; values must match the parameter's allowed pattern
//     (InvalidParameters otherwise).
//   - Each invocation runs asynchronously: Pending → InProgress → Success /
//     Failed / TimedOut, or Failed with StatusDetails Undeliverable for an
//     offline agent (ResponseCode -1), as the real service reports it.
//   - CommandPlugins[].Output is the agent's combined stdout/stderr capped at
//     2,400 characters ("\n---Output truncated---", "\n----------ERROR-------\n");
//     GetCommandInvocation's StandardOutputContent is stdout capped at 24,000
//     characters ending in "--output truncated--", StandardErrorContent is
//     capped at 8,000.
//   - With OutputS3BucketName, the full stdout and stderr are written to S3 at
//     KEYPREFIX/COMMANDID/INSTANCEID/awsrunShellScript/STEPNAME/stdout (and
//     …/stderr), the layout the agent uses for aws:runShellScript steps of a
//     schema 2.2 document, and the *Url fields point there.
package ssmfake

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"sshguard-unban/local/latency"
)

// Runner executes a document's step on one instance. The local mode plugs in
// runners that execute the real host scripts; tests use Canned.
type Runner interface {
	Run(ctx context.Context, document string, params map[string][]string) (stdout, stderr []byte, exitCode int, err error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, document string, params map[string][]string) ([]byte, []byte, int, error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, document string, params map[string][]string) ([]byte, []byte, int, error) {
	return f(ctx, document, params)
}

// Canned is a Runner that returns fixed output, optionally per document.
type Canned struct {
	Stdout, Stderr string
	ExitCode       int
	// Delay makes the run take this long (the context still cancels it).
	Delay time.Duration
	// ByDocument overrides the fields above for a document name.
	ByDocument map[string]Canned
}

// Run returns the canned output.
func (c Canned) Run(ctx context.Context, document string, _ map[string][]string) ([]byte, []byte, int, error) {
	if d, ok := c.ByDocument[document]; ok {
		c = d
	}
	if c.Delay > 0 {
		t := time.NewTimer(c.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, nil, -1, ctx.Err()
		case <-t.C:
		}
	}
	return []byte(c.Stdout), []byte(c.Stderr), c.ExitCode, nil
}

// Fault injects a failure mode into an instance.
type Fault struct {
	// Offline: the agent is unreachable; invocations end Failed with
	// StatusDetails "Undeliverable" and ResponseCode -1, the runner never runs.
	Offline bool
	// SlowPolls keeps the invocation InProgress for this many status reads
	// (ListCommandInvocations or GetCommandInvocation seeing it) …
	SlowPolls int
	// … and SlowFor for at least this long after it started.
	SlowFor time.Duration
	// TimeOut: the execution times out (TimedOut / "Execution Timed Out").
	TimeOut bool
	// Fail forces exit code 1 (Failed), keeping the runner's output.
	Fail bool
	// Disconnected: the agent lost its connection (a stopped host, a
	// network fault). DescribeInstanceInformation says ConnectionLost, and
	// invocations stay Pending until the agent is back (SetFault clears
	// it: it then runs them, as a reconnecting agent does) or the command's
	// delivery timeout ends them TimedOut / "Delivery Timed Out". Unlike the
	// other faults, it is read live, not when the command is sent.
	Disconnected bool
}

// Instance is a managed node.
type Instance struct {
	ID     string
	Tags   map[string]string
	Runner Runner
	Fault  Fault
	// Name is reported as InstanceName (the node's host name); optional.
	Name string
}

// Document is a Command document the fake accepts.
type Document struct {
	Name string
	// StepName is the document's mainSteps[0].name: the plugin name in
	// ListCommandInvocations, GetCommandInvocation's PluginName and a path
	// element of the S3 output key.
	StepName string
	// Parameters declares the accepted parameter names with the pattern each
	// value must match (nil accepts any value), like allowedPattern.
	Parameters map[string]*regexp.Regexp
	// MaxItems bounds the number of values of a parameter (like a
	// StringList's maxItems); absent or 0 means no bound.
	MaxItems map[string]int
}

// SentCommand records one accepted SendCommand call.
type SentCommand struct {
	CommandID          string
	DocumentName       string
	DocumentVersion    string
	Parameters         map[string][]string
	InstanceIDs        []string // as requested
	Targets            map[string][]string
	Resolved           []string // instances the command went to
	Comment            string
	MaxConcurrency     string
	MaxErrors          string
	TimeoutSeconds     int32
	OutputS3BucketName string
	OutputS3KeyPrefix  string
}

// ObjectPutter is the S3 call the fake uses to store command output.
type ObjectPutter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Output limits of the agent and the API.
const (
	PluginOutputLimit  = 2400  // CommandPlugins[].Output, stdout+stderr combined
	StdoutContentLimit = 24000 // GetCommandInvocation StandardOutputContent
	StderrContentLimit = 8000  // GetCommandInvocation StandardErrorContent
	StdoutTruncated    = "--output truncated--"
	pluginOutTrunc     = "\n---Output truncated---"
	pluginErrTrunc     = "\n---Error truncated----"
	pluginErrTitle     = "\n----------ERROR-------\n"
)

// Server is the fake SSM endpoint; it is an http.Handler.
type Server struct {
	// Region appears in the S3 output URLs (default us-east-1).
	Region string
	// S3 receives command output when SendCommand names an output bucket.
	S3 ObjectPutter
	// ExecTimeout bounds each run (0: none). A run that exceeds it ends
	// TimedOut / "Execution Timed Out", like the document's executionTimeout.
	ExecTimeout time.Duration
	// HiddenPolls makes a new command's invocations invisible for this many
	// ListCommandInvocations / GetCommandInvocation calls per command, as
	// the real service is eventually consistent right after SendCommand.
	HiddenPolls int
	// Latency, if set, applies a production latency model (local/latency):
	// API call times, invocations invisible for a while after SendCommand,
	// delivery to the agent, the agent's start-up, the output upload and
	// the status propagation.
	Latency *latency.Profile
	// Sampler draws the latencies (default: seeded with 1).
	Sampler *latency.Sampler
	// Log receives one line per request and per finished invocation
	// (default: discard).
	Log *slog.Logger

	samplerOnce sync.Once
	mu          sync.Mutex
	instances   map[string]*Instance
	docs        map[string]Document
	commands    map[string]*command
	sent        []SentCommand
	inject      map[string][]injected
	calls       map[string]int // requests per operation
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

type injected struct {
	code   string
	status int
}

type command struct {
	id         string
	doc        Document
	params     map[string][]string
	comment    string
	requested  time.Time
	bucket     string
	prefix     string
	timeout    time.Duration
	sem        chan struct{}
	maxErrors  int
	errors     int
	reads      int // ListCommandInvocations/GetCommandInvocation calls (HiddenPolls)
	visibleAt  time.Time
	order      []string
	inv        map[string]*invocation
	instanceID []string
	targets    []target
}

type invocation struct {
	instance   string
	name       string
	fault      Fault
	status     string // internal final or current state
	details    string
	code       int32
	stdout     string
	stderr     string
	start, end time.Time
	reads      int
	done       chan struct{}
}

// New returns an empty fake. Register instances and documents, then serve it
// (httptest.NewServer(s) or s.Start).
func New() *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		Region:    "us-east-1",
		instances: map[string]*Instance{},
		docs:      map[string]Document{},
		commands:  map[string]*command{},
		inject:    map[string][]injected{},
		calls:     map[string]int{},
		ctx:       ctx,
		cancel:    cancel,
	}
}

// AddInstance registers (or replaces) a managed node.
func (s *Server) AddInstance(in Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := in
	cp.Tags = cloneTags(in.Tags)
	s.instances[in.ID] = &cp
}

// SetFault changes an instance's fault for commands sent from now on.
func (s *Server) SetFault(id string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.instances[id]; in != nil {
		in.Fault = f
	}
}

// AddDocument registers a Command document.
func (s *Server) AddDocument(d Document) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[d.Name] = d
}

// InjectError makes the next `times` calls of operation op (e.g.
// "SendCommand") fail with the given error code and HTTP status.
func (s *Server) InjectError(op, code string, status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range times {
		s.inject[op] = append(s.inject[op], injected{code: code, status: status})
	}
}

// Calls counts the requests for an operation ("ListCommandInvocations"):
// how hard the callers poll.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Sent returns every accepted SendCommand, in order.
func (s *Server) Sent() []SentCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// Wait blocks until every invocation of the command has finished running
// (the visible status may still lag behind through SlowPolls).
func (s *Server) Wait(ctx context.Context, commandID string) error {
	s.mu.Lock()
	c := s.commands[commandID]
	var dones []chan struct{}
	if c != nil {
		for _, id := range c.order {
			dones = append(dones, c.inv[id].done)
		}
	}
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("ssmfake: no command %s", commandID)
	}
	for _, d := range dones {
		select {
		case <-d:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops running invocations and waits for their goroutines.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// NewClient builds an aws-sdk-go-v2 SSM client for the fake at endpoint
// (static dummy credentials, plain HTTP client, given retry attempts; 0
// keeps the SDK default of 3).
func NewClient(endpoint string, maxAttempts int) *ssm.Client {
	return ssm.New(ssm.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		HTTPClient:       &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second},
		RetryMaxAttempts: maxAttempts,
	})
}

// ---- HTTP / protocol ----

type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func (s *Server) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// ServeHTTP implements the AWS JSON 1.1 protocol for the served operations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := strings.TrimPrefix(target, "AmazonSSM.")
	if s.Latency != nil {
		d := s.Latency.SSMReadCall
		if op == "SendCommand" {
			d = s.Latency.SSMSendCommand
		}
		s.sampler().Sleep(d)
	}
	resp, aerr := s.serve(r, target, op)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	if aerr != nil {
		s.logger().Debug("ssmfake request", "op", op, "error", aerr.code, "message", aerr.message)
		w.WriteHeader(aerr.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": aerr.code, "message": aerr.message})
		return
	}
	s.logger().Debug("ssmfake request", "op", op)
	body, err := json.Marshal(resp)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"__type":"InternalServerError","message":"encode"}`))
		return
	}
	_, _ = w.Write(body)
}

func (s *Server) serve(r *http.Request, target, op string) (any, *apiError) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, errf(http.StatusNotFound, "UnknownOperationException", "%s %s", r.Method, r.URL.Path)
	}
	if !strings.HasPrefix(target, "AmazonSSM.") {
		return nil, errf(http.StatusBadRequest, "UnknownOperationException", "bad X-Amz-Target %q", target)
	}
	if r.Header.Get("Authorization") == "" {
		return nil, errf(http.StatusBadRequest, "MissingAuthenticationTokenException", "Request is missing Authentication Token")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		return nil, errf(http.StatusBadRequest, "SerializationException", "unexpected Content-Type %q", ct)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, errf(http.StatusBadRequest, "SerializationException", "read body: %v", err)
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	if e := s.popInjected(op); e != nil {
		return nil, e
	}
	decode := func(v any) *apiError {
		if len(bytes.TrimSpace(body)) == 0 {
			body = []byte("{}")
		}
		if err := json.Unmarshal(body, v); err != nil {
			return errf(http.StatusBadRequest, "SerializationException", "%v", err)
		}
		return nil
	}
	switch op {
	case "SendCommand":
		var in sendCommandInput
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.sendCommand(&in)
	case "ListCommandInvocations":
		var in listInvocationsInput
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.listInvocations(&in)
	case "GetCommandInvocation":
		var in getInvocationInput
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.getInvocation(&in)
	case "DescribeInstanceInformation":
		var in describeInstancesInput
		if e := decode(&in); e != nil {
			return nil, e
		}
		return s.describeInstances(&in)
	default:
		return nil, errf(http.StatusBadRequest, "UnknownOperationException", "operation %s is not served by ssmfake", op)
	}
}

func (s *Server) popInjected(op string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.inject[op]
	if len(q) == 0 {
		return nil
	}
	s.inject[op] = q[1:]
	return errf(q[0].status, q[0].code, "injected by ssmfake")
}

// ---- wire shapes (member names as in the SDK) ----

type target struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

type sendCommandInput struct {
	DocumentName       string              `json:"DocumentName"`
	DocumentVersion    string              `json:"DocumentVersion"`
	InstanceIds        []string            `json:"InstanceIds"`
	Targets            []target            `json:"Targets"`
	Parameters         map[string][]string `json:"Parameters"`
	TimeoutSeconds     *int32              `json:"TimeoutSeconds"`
	Comment            string              `json:"Comment"`
	MaxConcurrency     string              `json:"MaxConcurrency"`
	MaxErrors          string              `json:"MaxErrors"`
	OutputS3BucketName string              `json:"OutputS3BucketName"`
	OutputS3KeyPrefix  string              `json:"OutputS3KeyPrefix"`
	OutputS3Region     string              `json:"OutputS3Region"`
}

type commandOut struct {
	CommandId             string              `json:"CommandId"`
	DocumentName          string              `json:"DocumentName"`
	DocumentVersion       string              `json:"DocumentVersion,omitempty"`
	Comment               string              `json:"Comment,omitempty"`
	ExpiresAfter          float64             `json:"ExpiresAfter"`
	Parameters            map[string][]string `json:"Parameters,omitempty"`
	InstanceIds           []string            `json:"InstanceIds"`
	Targets               []target            `json:"Targets"`
	RequestedDateTime     float64             `json:"RequestedDateTime"`
	Status                string              `json:"Status"`
	StatusDetails         string              `json:"StatusDetails"`
	OutputS3Region        string              `json:"OutputS3Region,omitempty"`
	OutputS3BucketName    string              `json:"OutputS3BucketName,omitempty"`
	OutputS3KeyPrefix     string              `json:"OutputS3KeyPrefix,omitempty"`
	MaxConcurrency        string              `json:"MaxConcurrency,omitempty"`
	MaxErrors             string              `json:"MaxErrors,omitempty"`
	TargetCount           int32               `json:"TargetCount"`
	CompletedCount        int32               `json:"CompletedCount"`
	ErrorCount            int32               `json:"ErrorCount"`
	DeliveryTimedOutCount int32               `json:"DeliveryTimedOutCount"`
	TimeoutSeconds        int32               `json:"TimeoutSeconds,omitempty"`
}

type listInvocationsInput struct {
	CommandId  string `json:"CommandId"`
	InstanceId string `json:"InstanceId"`
	Details    bool   `json:"Details"`
	MaxResults *int32 `json:"MaxResults"`
	NextToken  string `json:"NextToken"`
}

type pluginOut struct {
	Name                   string   `json:"Name"`
	Status                 string   `json:"Status"`
	StatusDetails          string   `json:"StatusDetails"`
	ResponseCode           int32    `json:"ResponseCode"`
	ResponseStartDateTime  *float64 `json:"ResponseStartDateTime,omitempty"`
	ResponseFinishDateTime *float64 `json:"ResponseFinishDateTime,omitempty"`
	Output                 string   `json:"Output"`
	StandardOutputUrl      string   `json:"StandardOutputUrl"`
	StandardErrorUrl       string   `json:"StandardErrorUrl"`
	OutputS3Region         string   `json:"OutputS3Region,omitempty"`
	OutputS3BucketName     string   `json:"OutputS3BucketName,omitempty"`
	OutputS3KeyPrefix      string   `json:"OutputS3KeyPrefix,omitempty"`
}

type invocationOut struct {
	CommandId         string      `json:"CommandId"`
	InstanceId        string      `json:"InstanceId"`
	InstanceName      string      `json:"InstanceName"`
	Comment           string      `json:"Comment,omitempty"`
	DocumentName      string      `json:"DocumentName"`
	DocumentVersion   string      `json:"DocumentVersion,omitempty"`
	RequestedDateTime float64     `json:"RequestedDateTime"`
	Status            string      `json:"Status"`
	StatusDetails     string      `json:"StatusDetails"`
	TraceOutput       string      `json:"TraceOutput"`
	StandardOutputUrl string      `json:"StandardOutputUrl"`
	StandardErrorUrl  string      `json:"StandardErrorUrl"`
	CommandPlugins    []pluginOut `json:"CommandPlugins"`
}

type listInvocationsOutput struct {
	CommandInvocations []invocationOut `json:"CommandInvocations"`
	NextToken          string          `json:"NextToken,omitempty"`
}

type getInvocationInput struct {
	CommandId  string `json:"CommandId"`
	InstanceId string `json:"InstanceId"`
	PluginName string `json:"PluginName"`
}

type getInvocationOutput struct {
	CommandId              string `json:"CommandId"`
	InstanceId             string `json:"InstanceId"`
	Comment                string `json:"Comment,omitempty"`
	DocumentName           string `json:"DocumentName"`
	DocumentVersion        string `json:"DocumentVersion,omitempty"`
	PluginName             string `json:"PluginName"`
	ResponseCode           int32  `json:"ResponseCode"`
	ExecutionStartDateTime string `json:"ExecutionStartDateTime"`
	ExecutionElapsedTime   string `json:"ExecutionElapsedTime"`
	ExecutionEndDateTime   string `json:"ExecutionEndDateTime"`
	Status                 string `json:"Status"`
	StatusDetails          string `json:"StatusDetails"`
	StandardOutputContent  string `json:"StandardOutputContent"`
	StandardOutputUrl      string `json:"StandardOutputUrl"`
	StandardErrorContent   string `json:"StandardErrorContent"`
	StandardErrorUrl       string `json:"StandardErrorUrl"`
}

// ---- SendCommand ----

var (
	maxConcurrencyRE = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`)
	maxErrorsRE      = regexp.MustCompile(`^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`)
	instanceIDRE     = regexp.MustCompile(`^(i|mi)-[0-9a-f]{8,17}$`)
)

func (s *Server) sendCommand(in *sendCommandInput) (any, *apiError) {
	bad := func(format string, args ...any) (any, *apiError) {
		return nil, errf(http.StatusBadRequest, "ValidationException", format, args...)
	}
	if in.DocumentName == "" {
		return bad("1 validation error detected: Value null at 'documentName' failed to satisfy constraint: Member must not be null")
	}
	if len(in.InstanceIds) > 50 {
		return bad("1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	if len(in.Targets) > 5 {
		return bad("1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to 5")
	}
	if (len(in.InstanceIds) == 0) == (len(in.Targets) == 0) {
		return nil, errf(http.StatusBadRequest, "InvalidParameters", "exactly one of InstanceIds and Targets must be given")
	}
	if len(in.Comment) > 100 {
		return bad("Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100")
	}
	if len(in.OutputS3KeyPrefix) > 500 {
		return bad("Value at 'outputS3KeyPrefix' failed to satisfy constraint: Member must have length less than or equal to 500")
	}
	timeout := int32(3600)
	if in.TimeoutSeconds != nil {
		timeout = *in.TimeoutSeconds
		if timeout < 30 || timeout > 2592000 {
			return bad("Value '%d' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000", timeout)
		}
	}
	maxConc := in.MaxConcurrency
	if maxConc == "" {
		maxConc = "50"
	}
	if !maxConcurrencyRE.MatchString(maxConc) {
		return bad("Value '%s' at 'maxConcurrency' failed to satisfy constraint", maxConc)
	}
	maxErr := in.MaxErrors
	if maxErr == "" {
		maxErr = "0"
	}
	if !maxErrorsRE.MatchString(maxErr) {
		return bad("Value '%s' at 'maxErrors' failed to satisfy constraint", maxErr)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.docs[in.DocumentName]
	if !ok {
		return nil, errf(http.StatusBadRequest, "InvalidDocument", "Document %s does not exist", in.DocumentName)
	}
	if e := checkParameters(doc, in.Parameters); e != nil {
		return nil, e
	}
	var resolved []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			resolved = append(resolved, id)
		}
	}
	for _, id := range in.InstanceIds {
		if !instanceIDRE.MatchString(id) || s.instances[id] == nil {
			return nil, errf(http.StatusBadRequest, "InvalidInstanceId", "Instances [[%s]] not in a valid state for account", id)
		}
		add(id)
	}
	for _, t := range in.Targets {
		switch {
		case t.Key == "InstanceIds":
			for _, id := range t.Values {
				if s.instances[id] != nil {
					add(id)
				}
			}
		case strings.HasPrefix(t.Key, "tag:") && len(t.Key) > 4:
			key := strings.TrimPrefix(t.Key, "tag:")
			for _, id := range s.sortedInstanceIDs() {
				if v, ok := s.instances[id].Tags[key]; ok && slices.Contains(t.Values, v) {
					add(id)
				}
			}
		case t.Key == "tag-key":
			for _, id := range s.sortedInstanceIDs() {
				for _, k := range t.Values {
					if _, ok := s.instances[id].Tags[k]; ok {
						add(id)
					}
				}
			}
		default:
			return nil, errf(http.StatusBadRequest, "InvalidTarget", "unsupported target key %q", t.Key)
		}
	}

	now := time.Now()
	c := &command{
		id:         newUUID(),
		doc:        doc,
		params:     cloneParams(in.Parameters),
		comment:    in.Comment,
		requested:  now,
		bucket:     in.OutputS3BucketName,
		prefix:     in.OutputS3KeyPrefix,
		timeout:    time.Duration(timeout) * time.Second,
		inv:        map[string]*invocation{},
		instanceID: slices.Clone(in.InstanceIds),
		targets:    slices.Clone(in.Targets),
	}
	c.sem = make(chan struct{}, concurrency(maxConc, len(resolved)))
	c.maxErrors = errorBudget(maxErr, len(resolved))
	for _, id := range resolved {
		inst := s.instances[id]
		inv := &invocation{
			instance: id,
			name:     inst.Name,
			fault:    inst.Fault,
			status:   "Pending",
			details:  "Pending",
			code:     -1,
			done:     make(chan struct{}),
		}
		c.inv[id] = inv
		c.order = append(c.order, id)
		s.wg.Add(1)
		go s.run(c, inv, inst.Runner)
	}
	if s.Latency != nil {
		c.visibleAt = now.Add(s.sampler().Sample(s.Latency.SSMInvocationVisible))
	}
	s.commands[c.id] = c
	tg := map[string][]string{}
	for _, t := range in.Targets {
		tg[t.Key] = slices.Clone(t.Values)
	}
	s.sent = append(s.sent, SentCommand{
		CommandID:          c.id,
		DocumentName:       in.DocumentName,
		DocumentVersion:    in.DocumentVersion,
		Parameters:         cloneParams(in.Parameters),
		InstanceIDs:        slices.Clone(in.InstanceIds),
		Targets:            tg,
		Resolved:           slices.Clone(resolved),
		Comment:            in.Comment,
		MaxConcurrency:     in.MaxConcurrency,
		MaxErrors:          in.MaxErrors,
		TimeoutSeconds:     timeout,
		OutputS3BucketName: in.OutputS3BucketName,
		OutputS3KeyPrefix:  in.OutputS3KeyPrefix,
	})
	out := commandOut{
		CommandId:          c.id,
		DocumentName:       doc.Name,
		DocumentVersion:    in.DocumentVersion,
		Comment:            c.comment,
		ExpiresAfter:       epoch(now.Add(c.timeout)),
		Parameters:         c.params,
		InstanceIds:        nonNil(c.instanceID),
		Targets:            nonNilTargets(c.targets),
		RequestedDateTime:  epoch(now),
		Status:             "Pending",
		StatusDetails:      "Pending",
		OutputS3BucketName: c.bucket,
		OutputS3KeyPrefix:  c.prefix,
		MaxConcurrency:     maxConc,
		MaxErrors:          maxErr,
		TargetCount:        int32(len(resolved)),
		TimeoutSeconds:     timeout,
	}
	if c.bucket != "" {
		out.OutputS3Region = s.Region
	}
	return map[string]any{"Command": out}, nil
}

func checkParameters(doc Document, params map[string][]string) *apiError {
	for name, values := range params {
		re, declared := doc.Parameters[name]
		if !declared {
			return errf(http.StatusBadRequest, "InvalidParameters", "Parameter %q is not declared by document %s", name, doc.Name)
		}
		if n := doc.MaxItems[name]; n > 0 && len(values) > n {
			return errf(http.StatusBadRequest, "InvalidParameters", "Parameter %q has %d values, at most %d allowed", name, len(values), n)
		}
		for _, v := range values {
			if re != nil && !re.MatchString(v) {
				return errf(http.StatusBadRequest, "InvalidParameters", "Parameter %q value %q does not match the allowed pattern", name, v)
			}
		}
	}
	return nil
}

func (s *Server) sortedInstanceIDs() []string {
	ids := make([]string, 0, len(s.instances))
	for id := range s.instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// concurrency turns MaxConcurrency into a number of parallel runs (≥ 1).
func concurrency(v string, targets int) int {
	return max(errorBudget(v, targets), 1)
}

// errorBudget turns MaxErrors (or MaxConcurrency) into a count: "N" or a
// percentage of the targets, rounded down; once more invocations than that
// have failed, the rest are not started.
func errorBudget(v string, targets int) int {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, _ := strconv.Atoi(p)
		return targets * n / 100
	}
	n, _ := strconv.Atoi(v)
	return n
}

// ---- running invocations ----

func (s *Server) run(c *command, inv *invocation, runner Runner) {
	defer s.wg.Done()
	defer close(inv.done)
	log := s.logger()

	// Wait for a concurrency slot, but no longer than the delivery timeout.
	deliver := time.NewTimer(c.timeout)
	defer deliver.Stop()
	select {
	case c.sem <- struct{}{}:
	case <-deliver.C:
		s.finish(c, inv, "TimedOut", "Delivery Timed Out", -1, "", "")
		return
	case <-s.ctx.Done():
		s.finish(c, inv, "Cancelled", "Cancelled", -1, "", "")
		return
	}
	defer func() { <-c.sem }()

	s.mu.Lock()
	if c.errors > c.maxErrors {
		s.mu.Unlock()
		s.finish(c, inv, "Failed", "Terminated", -1, "", "")
		return
	}
	if inv.fault.Offline {
		s.mu.Unlock()
		s.finish(c, inv, "Failed", "Undeliverable", -1, "", "")
		return
	}
	s.mu.Unlock()
	if !s.deliver(c, inv, deliver.C) {
		return
	}
	s.mu.Lock()
	inv.status, inv.details, inv.start = "InProgress", "In Progress", time.Now()
	s.mu.Unlock()
	if s.Latency != nil {
		s.sampler().Sleep(s.Latency.AgentPreExec)
	}

	if inv.fault.TimeOut {
		s.finish(c, inv, "TimedOut", "Execution Timed Out", -1, "", "")
		return
	}
	ctx := s.ctx
	if d := execTimeout(c.params, s.ExecTimeout); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var stdout, stderr []byte
	code := 0
	var err error
	if runner == nil {
		err = errors.New("ssmfake: instance has no runner")
	} else {
		stdout, stderr, code, err = runner.Run(ctx, c.doc.Name, cloneParams(c.params))
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		s.store(ctx, c, inv, stdout, stderr)
		s.finish(c, inv, "TimedOut", "Execution Timed Out", -1, string(stdout), string(stderr))
		return
	case s.ctx.Err() != nil:
		s.finish(c, inv, "Cancelled", "Cancelled", -1, string(stdout), string(stderr))
		return
	case err != nil:
		if len(stderr) > 0 && !bytes.HasSuffix(stderr, []byte("\n")) {
			stderr = append(stderr, '\n')
		}
		stderr = append(stderr, err.Error()...)
		if code == 0 {
			code = 1
		}
	}
	if inv.fault.Fail && code == 0 {
		code = 1
	}
	if s.Latency != nil && c.bucket != "" {
		s.sampler().Sleep(s.Latency.S3Upload)
	}
	s.store(s.ctx, c, inv, stdout, stderr)
	if s.Latency != nil {
		// The agent's reply reaches the API a moment after the script
		// ended: until then reads still see InProgress.
		s.sampler().Sleep(s.Latency.SSMStatusPropagation)
	}
	status, details := "Success", "Success"
	if code != 0 {
		status, details = "Failed", "Failed"
	}
	log.Debug("ssmfake invocation finished", "command_id", c.id, "instance_id", inv.instance, "status", status, "exit_code", code)
	s.finish(c, inv, status, details, int32(code), string(stdout), string(stderr))
}

// deliver waits until the agent has the command: at once, after the
// modelled delivery time, or, for a disconnected agent, once it is back.
// It ends the invocation and returns false on the delivery timeout.
func (s *Server) deliver(c *command, inv *invocation, timeout <-chan time.Time) bool {
	for {
		s.mu.Lock()
		in := s.instances[inv.instance]
		down := in != nil && in.Fault.Disconnected
		s.mu.Unlock()
		if !down {
			break
		}
		select {
		case <-timeout:
			s.finish(c, inv, "TimedOut", "Delivery Timed Out", -1, "", "")
			return false
		case <-s.ctx.Done():
			s.finish(c, inv, "Cancelled", "Cancelled", -1, "", "")
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	if s.Latency != nil {
		s.sampler().Sleep(s.Latency.SSMDelivery)
	}
	return true
}

// sampler is Sampler or a default; it takes its own lock, so callers may
// hold s.mu.
func (s *Server) sampler() *latency.Sampler {
	s.samplerOnce.Do(func() {
		if s.Sampler == nil {
			s.Sampler = latency.NewSampler(1)
		}
	})
	return s.Sampler
}

func execTimeout(params map[string][]string, def time.Duration) time.Duration {
	if v := params["executionTimeout"]; len(v) == 1 {
		if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return def
}

func (s *Server) finish(c *command, inv *invocation, status, details string, code int32, stdout, stderr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv.status, inv.details, inv.code = status, details, code
	inv.stdout, inv.stderr = stdout, stderr
	inv.end = time.Now()
	if inv.start.IsZero() {
		inv.start = inv.end
	}
	if (status == "Failed" && details == "Failed") || details == "Execution Timed Out" {
		c.errors++ // what counts against MaxErrors
	}
}

// store writes the full output to S3 when the command asked for it.
func (s *Server) store(ctx context.Context, c *command, inv *invocation, stdout, stderr []byte) {
	if c.bucket == "" || s.S3 == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	put := func(name string, body []byte) {
		key := outputKey(c.prefix, c.id, inv.instance, c.doc.StepName, name)
		_, err := s.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		})
		if err != nil {
			s.logger().Warn("ssmfake: store output", "bucket", c.bucket, "key", key, "error", err)
		}
	}
	put("stdout", stdout)
	if len(stderr) > 0 {
		put("stderr", stderr)
	}
}

// outputKey is the S3 key the agent writes a step's stdout/stderr to (the
// fake's own copy of the layout, so a mistake in shared/ssmcmd shows).
func outputKey(prefix, commandID, instanceID, step, stream string) string {
	parts := []string{}
	if p := strings.Trim(prefix, "/"); p != "" {
		parts = append(parts, p)
	}
	parts = append(parts, commandID, instanceID, "awsrunShellScript", step, stream)
	return strings.Join(parts, "/")
}

// ---- reading statuses ----

func terminal(status string) bool {
	switch status {
	case "Success", "Failed", "TimedOut", "Cancelled":
		return true
	}
	return false
}

// visible returns what a status read sees now, counting the read for
// SlowPolls. Callers hold s.mu.
func (inv *invocation) visible(now time.Time) (status, details string) {
	inv.reads++
	if terminal(inv.status) && inv.details != "Undeliverable" && inv.details != "Terminated" &&
		inv.details != "Delivery Timed Out" {
		slow := inv.reads <= inv.fault.SlowPolls ||
			(inv.fault.SlowFor > 0 && now.Sub(inv.start) < inv.fault.SlowFor)
		if slow {
			return "InProgress", "In Progress"
		}
	}
	return inv.status, inv.details
}

// page reads a List/Describe call's paging: MaxResults (lo to 50, default
// 50) and NextToken (the offset this fake hands out).
func page(maxResults *int32, lo int, token string) (size, start int, err *apiError) {
	size = 50
	if maxResults != nil {
		size = int(*maxResults)
		if size < lo || size > 50 {
			return 0, 0, errf(http.StatusBadRequest, "ValidationException", "Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between %d and 50", size, lo)
		}
	}
	if token != "" {
		n, cerr := strconv.Atoi(token)
		if cerr != nil || n < 0 {
			return 0, 0, errf(http.StatusBadRequest, "InvalidNextToken", "The specified token isn't valid.")
		}
		start = n
	}
	return size, start, nil
}

func (s *Server) hidden(c *command) bool {
	c.reads++
	return c.reads <= s.HiddenPolls || time.Now().Before(c.visibleAt)
}

func (s *Server) listInvocations(in *listInvocationsInput) (any, *apiError) {
	pageSize, start, perr := page(in.MaxResults, 1, in.NextToken)
	if perr != nil {
		return nil, perr
	}
	if in.CommandId != "" && len(in.CommandId) != 36 {
		return nil, errf(http.StatusBadRequest, "InvalidCommandId", "invalid command id %q", in.CommandId)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type ref struct {
		c   *command
		inv *invocation
	}
	var all []ref
	cmds := []*command{}
	if in.CommandId != "" {
		if c := s.commands[in.CommandId]; c != nil {
			cmds = append(cmds, c)
		}
	} else {
		for _, c := range s.commands {
			cmds = append(cmds, c)
		}
		sort.Slice(cmds, func(i, j int) bool { return cmds[i].requested.Before(cmds[j].requested) })
	}
	for _, c := range cmds {
		if start == 0 && s.hidden(c) {
			continue
		}
		for _, id := range c.order {
			if in.InstanceId != "" && id != in.InstanceId {
				continue
			}
			all = append(all, ref{c, c.inv[id]})
		}
	}
	out := listInvocationsOutput{CommandInvocations: []invocationOut{}}
	if start > len(all) {
		start = len(all)
	}
	end := min(start+pageSize, len(all))
	now := time.Now()
	for _, r := range all[start:end] {
		out.CommandInvocations = append(out.CommandInvocations, s.invocationJSON(r.c, r.inv, in.Details, now))
	}
	if end < len(all) {
		out.NextToken = strconv.Itoa(end)
	}
	return out, nil
}

func (s *Server) urls(c *command, inv *invocation) (stdoutURL, stderrURL string) {
	if c.bucket == "" {
		return "", ""
	}
	base := "https://s3." + s.Region + ".amazonaws.com/" + c.bucket + "/"
	stdoutURL = base + outputKey(c.prefix, c.id, inv.instance, c.doc.StepName, "stdout")
	if inv.stderr != "" {
		stderrURL = base + outputKey(c.prefix, c.id, inv.instance, c.doc.StepName, "stderr")
	}
	return stdoutURL, stderrURL
}

func (s *Server) invocationJSON(c *command, inv *invocation, details bool, now time.Time) invocationOut {
	status, det := inv.visible(now)
	done := terminal(status)
	o := invocationOut{
		CommandId:         c.id,
		InstanceId:        inv.instance,
		InstanceName:      inv.name,
		Comment:           c.comment,
		DocumentName:      c.doc.Name,
		RequestedDateTime: epoch(c.requested),
		Status:            status,
		StatusDetails:     det,
		CommandPlugins:    []pluginOut{},
	}
	var outURL, errURL string
	if done {
		outURL, errURL = s.urls(c, inv)
		if det == "Undeliverable" || det == "Terminated" || det == "Delivery Timed Out" {
			outURL, errURL = "", ""
		}
	}
	o.StandardOutputUrl, o.StandardErrorUrl = outURL, errURL
	if details {
		p := pluginOut{
			Name:              c.doc.StepName,
			Status:            status,
			StatusDetails:     det,
			ResponseCode:      -1,
			StandardOutputUrl: outURL,
			StandardErrorUrl:  errURL,
		}
		if c.bucket != "" {
			p.OutputS3BucketName = c.bucket
			p.OutputS3KeyPrefix = strings.TrimSuffix(outputKey(c.prefix, c.id, inv.instance, "", ""), "//") // KEYPREFIX/COMMANDID/INSTANCEID/awsrunShellScript
			p.OutputS3Region = s.Region
		}
		if !inv.start.IsZero() && status != "Pending" {
			v := epoch(inv.start)
			p.ResponseStartDateTime = &v
		}
		if done {
			p.ResponseCode = inv.code
			v := epoch(inv.end)
			p.ResponseFinishDateTime = &v
			p.Output = truncateOutput(inv.stdout, inv.stderr, PluginOutputLimit)
		}
		o.CommandPlugins = append(o.CommandPlugins, p)
	}
	return o
}

func (s *Server) getInvocation(in *getInvocationInput) (any, *apiError) {
	if in.CommandId == "" || in.InstanceId == "" {
		return nil, errf(http.StatusBadRequest, "ValidationException", "CommandId and InstanceId are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.commands[in.CommandId]
	if c == nil {
		return nil, errf(http.StatusBadRequest, "InvocationDoesNotExist", "command %s not found", in.CommandId)
	}
	inv := c.inv[in.InstanceId]
	if inv == nil || s.hidden(c) {
		return nil, errf(http.StatusBadRequest, "InvocationDoesNotExist", "invocation %s/%s not found", in.CommandId, in.InstanceId)
	}
	if in.PluginName != "" && in.PluginName != c.doc.StepName {
		return nil, errf(http.StatusBadRequest, "InvalidPluginName", "plugin %q not in document", in.PluginName)
	}
	status, det := inv.visible(time.Now())
	o := getInvocationOutput{
		CommandId:     c.id,
		InstanceId:    inv.instance,
		Comment:       c.comment,
		DocumentName:  c.doc.Name,
		PluginName:    c.doc.StepName,
		ResponseCode:  -1,
		Status:        status,
		StatusDetails: det,
	}
	if !inv.start.IsZero() && status != "Pending" {
		o.ExecutionStartDateTime = inv.start.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if terminal(status) {
		o.ResponseCode = inv.code
		o.ExecutionEndDateTime = inv.end.UTC().Format("2006-01-02T15:04:05.000Z")
		o.ExecutionElapsedTime = fmt.Sprintf("PT%.3fS", inv.end.Sub(inv.start).Seconds())
		if status == "Success" || status == "Failed" {
			o.StandardOutputContent = truncateContent(inv.stdout, StdoutContentLimit)
			o.StandardErrorContent = truncateContent(inv.stderr, StderrContentLimit)
		}
		if det != "Undeliverable" && det != "Terminated" && det != "Delivery Timed Out" {
			o.StandardOutputUrl, o.StandardErrorUrl = s.urls(c, inv)
		}
	}
	return o, nil
}

// truncateContent caps GetCommandInvocation content the way the agent does.
func truncateContent(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	return s[:limit-len(StdoutTruncated)] + StdoutTruncated
}

// truncateOutput is the agent's TruncateOutput: stdout and stderr combined
// into the plugin Output within capacity.
func truncateOutput(stdout, stderr string, capacity int) string {
	title := ""
	if stderr != "" {
		title = pluginErrTitle
	}
	avail := capacity - len(title)
	if len(stdout)+len(stderr) < avail {
		return stdout + title + stderr
	}
	if len(stdout) > avail/2 && len(stderr) > avail/2 {
		n := avail - len(pluginErrTrunc) - len(pluginOutTrunc)
		return stdout[:n/2] + pluginOutTrunc + title + stderr[:n/2] + pluginErrTrunc
	}
	if len(stdout) < avail/2 {
		n := avail - len(pluginErrTrunc)
		return stdout + title + stderr[:n-len(stdout)] + pluginErrTrunc
	}
	n := avail - len(pluginOutTrunc)
	return stdout[:n-len(stderr)] + pluginOutTrunc + title + stderr
}

// ---- managed instances ----

type describeInstancesInput struct {
	Filters []struct {
		Key    string   `json:"Key"`
		Values []string `json:"Values"`
	} `json:"Filters"`
	MaxResults *int32 `json:"MaxResults"`
	NextToken  string `json:"NextToken"`
}

type instanceInfoOut struct {
	InstanceId       string  `json:"InstanceId"`
	PingStatus       string  `json:"PingStatus"`
	LastPingDateTime float64 `json:"LastPingDateTime"`
	ComputerName     string  `json:"ComputerName,omitempty"`
	PlatformType     string  `json:"PlatformType"`
	ResourceType     string  `json:"ResourceType"`
	AgentVersion     string  `json:"AgentVersion"`
}

// describeInstances is DescribeInstanceInformation: every registered
// instance with its PingStatus (Online, or ConnectionLost while its agent is
// Disconnected), filtered by "tag:KEY", "InstanceIds" or "PingStatus".
func (s *Server) describeInstances(in *describeInstancesInput) (any, *apiError) {
	pageSize, start, perr := page(in.MaxResults, 5, in.NextToken)
	if perr != nil {
		return nil, perr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var all []instanceInfoOut
	for _, id := range s.sortedInstanceIDs() {
		inst := s.instances[id]
		ping := "Online"
		if inst.Fault.Disconnected || inst.Fault.Offline {
			ping = "ConnectionLost"
		}
		keep := true
		for _, f := range in.Filters {
			switch {
			case strings.HasPrefix(f.Key, "tag:"):
				v, ok := inst.Tags[strings.TrimPrefix(f.Key, "tag:")]
				keep = keep && ok && slices.Contains(f.Values, v)
			case f.Key == "InstanceIds":
				keep = keep && slices.Contains(f.Values, id)
			case f.Key == "PingStatus":
				keep = keep && slices.Contains(f.Values, ping)
			default:
				return nil, errf(http.StatusBadRequest, "InvalidInstanceInformationFilterValue", "unsupported filter key %q", f.Key)
			}
		}
		if keep {
			all = append(all, instanceInfoOut{InstanceId: id, PingStatus: ping, LastPingDateTime: epoch(now),
				ComputerName: inst.Name, PlatformType: "Linux", ResourceType: "EC2Instance", AgentVersion: "3.3.3572.0"})
		}
	}
	start = min(start, len(all))
	end := min(start+pageSize, len(all))
	out := struct {
		InstanceInformationList []instanceInfoOut `json:"InstanceInformationList"`
		NextToken               string            `json:"NextToken,omitempty"`
	}{InstanceInformationList: append([]instanceInfoOut{}, all[start:end]...)}
	if end < len(all) {
		out.NextToken = strconv.Itoa(end)
	}
	return out, nil
}

// ---- helpers ----

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cloneTags(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneParams(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilTargets(t []target) []target {
	if t == nil {
		return []target{}
	}
	return t
}
