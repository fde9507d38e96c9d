// Package ssmcmd is the SSM Run Command plumbing shared by the unban,
// wait-for-command and refresh-list Lambdas: sending a document to instances
// in batches of at most 50 or to every tagged instance, listing invocations,
// mapping their statuses to workflow host outcomes, and reading a step's
// full stdout (inline, from the S3 output location, or through
// GetCommandInvocation).
package ssmcmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/banlist"
	"sshguard-unban/shared/s3obj"
	"sshguard-unban/shared/taskerr"
	"sshguard-unban/shared/workflow"
)

// MaxBatch is SendCommand's limit on InstanceIds per call.
const MaxBatch = 50

// Sender sends commands; *ssm.Client implements it.
type Sender interface {
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
}

// Lister lists command invocations; *ssm.Client implements it.
type Lister interface {
	ListCommandInvocations(ctx context.Context, in *ssm.ListCommandInvocationsInput, optFns ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error)
}

// Getter reads one invocation's output; *ssm.Client implements it.
type Getter interface {
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// CheckTargets refuses a request that names no target or an instance id
// that is not one: the id ends up in an IAM-checked ARN, so nothing else may
// pass.
func CheckTargets(instanceIDs []string, allHosts bool) error {
	if allHosts {
		return nil
	}
	if len(instanceIDs) == 0 {
		return &taskerr.InvalidInputError{Reason: "neither instance_ids nor all_hosts"}
	}
	for _, id := range instanceIDs {
		if !banlist.ValidInstanceID(id) {
			return &taskerr.InvalidInputError{Reason: fmt.Sprintf("invalid instance id %q", id)}
		}
	}
	return nil
}

// Delivery is how a command reaches the hosts, the same for the unban and the
// report documents: which hosts the tag selects, how many run at once, how
// long it may take, and where the agent writes the full output.
type Delivery struct {
	// DocumentVersion is optional: "$LATEST", "$DEFAULT" (SSM's default
	// when empty) or a version number.
	DocumentVersion string
	TagKey          string // TARGET_TAG_KEY: hosts are targeted by this tag …
	TagValue        string // TARGET_TAG_VALUE: … having this value
	// CommandTimeout is how long wait-for-command waits (Deadline = now +
	// CommandTimeout); it is also the command's delivery timeout
	// (TimeoutSeconds, at least 30 s).
	CommandTimeout time.Duration
	MaxConcurrency string // default DefaultMaxConcurrency
	MaxErrors      string // default DefaultMaxErrors
	// OutputBucket / OutputPrefix: OutputS3BucketName / OutputS3KeyPrefix,
	// so outputs longer than the inline limits can be read in full.
	OutputBucket string
	OutputPrefix string
}

const (
	// DefaultMaxConcurrency: every targeted host runs the script at once.
	// The script touches only its own host's firewall (no shared backend
	// to protect) and runs in milliseconds, while SSM's default of 50
	// turns a fleet into waves: 5,000 hosts were 100 waves, a minute and
	// more before the last host even started, and the reply had to call
	// half the fleet silent (statemachine TestScale).
	DefaultMaxConcurrency = "100%"
	// DefaultMaxErrors: 100% so that failing hosts never stop SSM from
	// running the command on the others (with a lower value SSM stops
	// dispatching once that many invocations failed; the rest would end
	// "Terminated" and the employee would stay blocked there).
	DefaultMaxErrors = "100%"
)

// DefaultCommandTimeout bounds one command on the hosts (delivery and run),
// for the unban and the report document alike: the scripts take well under
// a second, so a minute is generous and still short enough for a chat reply
// (cdk/ uses the same default).
const DefaultCommandTimeout = 60 * time.Second

// WithDefaults fills the unset fields.
func (d Delivery) WithDefaults() Delivery {
	if d.CommandTimeout <= 0 {
		d.CommandTimeout = DefaultCommandTimeout
	}
	if d.MaxConcurrency == "" {
		d.MaxConcurrency = DefaultMaxConcurrency
	}
	if d.MaxErrors == "" {
		d.MaxErrors = DefaultMaxErrors
	}
	return d
}

// SendCommand checks the request's targets, sends document to them (in
// batches) and returns what the wait loop polls. Instances SSM refused are
// in Skipped; both lists are never nil, so the ASL can always pass them on.
func (d Delivery) SendCommand(ctx context.Context, c Sender, document string, params map[string][]string,
	req workflow.CommandRequest, comment string, now time.Time, log *slog.Logger) (workflow.CommandRef, error) {
	if err := CheckTargets(req.InstanceIDs, req.AllHosts); err != nil {
		return workflow.CommandRef{}, err
	}
	sent, err := Send(ctx, c, Spec{
		Document:        document,
		DocumentVersion: d.DocumentVersion,
		Parameters:      params,
		InstanceIDs:     req.InstanceIDs,
		AllHosts:        req.AllHosts,
		TagKey:          d.TagKey,
		TagValue:        d.TagValue,
		Comment:         comment,
		MaxConcurrency:  d.MaxConcurrency,
		MaxErrors:       d.MaxErrors,
		TimeoutSeconds:  int32(d.CommandTimeout / time.Second),
		OutputBucket:    d.OutputBucket,
		OutputPrefix:    d.OutputPrefix,
	}, log)
	if err != nil {
		return workflow.CommandRef{}, err
	}
	return workflow.CommandRef{
		CommandIDs: append([]string{}, sent.CommandIDs...),
		Skipped:    append([]string{}, sent.Skipped...),
		Deadline:   now.Add(d.CommandTimeout).UTC().Format(time.RFC3339),
	}, nil
}

// CommandError is a permanent SSM failure (bad document, parameters or
// permissions). Throttling and server errors come as taskerr.TransientError
// wrapping a CommandError instead.
type CommandError struct {
	Op  string
	Err error
}

func (e *CommandError) Error() string { return "ssm " + e.Op + ": " + e.Err.Error() }
func (e *CommandError) Unwrap() error { return e.Err }

func classify(op string, err error) error {
	return awserr.Classify(&CommandError{Op: op, Err: err})
}

// Spec describes a command to send.
type Spec struct {
	Document string
	// DocumentVersion is optional ("$LATEST", "$DEFAULT" or a number).
	DocumentVersion string
	Parameters      map[string][]string
	// InstanceIDs are targeted in batches of MaxBatch unless AllHosts is
	// set, in which case the command goes to Targets [{tag:TagKey: TagValue}].
	InstanceIDs      []string
	AllHosts         bool
	TagKey, TagValue string
	Comment          string
	MaxConcurrency   string
	MaxErrors        string
	TimeoutSeconds   int32
	OutputBucket     string
	OutputPrefix     string
}

// Sent is the result of Send.
type Sent struct {
	CommandIDs []string
	// Skipped are instance ids SSM refused as targets (InvalidInstanceId:
	// terminated, stopped or not managed); they get no invocation.
	Skipped []string
}

// Send sends spec. Instance ids are deduplicated and sorted, then sent in
// batches of MaxBatch. When SSM refuses a batch with InvalidInstanceId
// (which does not say which instance), the batch is re-sent one instance at
// a time and the refused instances are skipped, so one terminated host
// cannot block the others.
func Send(ctx context.Context, api Sender, spec Spec, log *slog.Logger) (Sent, error) {
	if log == nil {
		log = slog.Default()
	}
	if spec.Document == "" {
		return Sent{}, &CommandError{Op: "SendCommand", Err: errors.New("no document name configured")}
	}
	if spec.AllHosts {
		if spec.TagKey == "" || spec.TagValue == "" {
			return Sent{}, &CommandError{Op: "SendCommand", Err: errors.New("all_hosts needs the target tag key and value configured")}
		}
		in := spec.input()
		in.Targets = []types.Target{{Key: aws.String("tag:" + spec.TagKey), Values: []string{spec.TagValue}}}
		id, err := send(ctx, api, in)
		if err != nil {
			return Sent{}, err
		}
		log.Info("command sent", "document", spec.Document, "command_id", id, "target", "tag:"+spec.TagKey+"="+spec.TagValue)
		return Sent{CommandIDs: []string{id}}, nil
	}
	ids := slices.Clone(spec.InstanceIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		if !banlist.ValidInstanceID(id) {
			return Sent{}, &CommandError{Op: "SendCommand", Err: fmt.Errorf("invalid instance id %q", id)}
		}
	}
	var res Sent
	for batch := range slices.Chunk(ids, MaxBatch) {
		in := spec.input()
		in.InstanceIds = batch
		id, err := send(ctx, api, in)
		if err == nil {
			res.CommandIDs = append(res.CommandIDs, id)
			log.Info("command sent", "document", spec.Document, "command_id", id, "instances", len(batch))
			continue
		}
		if awserr.Code(err) != "InvalidInstanceId" {
			return res, err
		}
		log.Warn("batch refused with InvalidInstanceId; sending one by one", "document", spec.Document, "instances", len(batch))
		for _, one := range batch {
			in := spec.input()
			in.InstanceIds = []string{one}
			id, err := send(ctx, api, in)
			switch {
			case err == nil:
				res.CommandIDs = append(res.CommandIDs, id)
			case awserr.Code(err) == "InvalidInstanceId":
				res.Skipped = append(res.Skipped, one)
				log.Warn("instance refused by SSM; skipped", "instance_id", one, "error", err)
			default:
				return res, err
			}
		}
	}
	return res, nil
}

func (spec Spec) input() *ssm.SendCommandInput {
	in := &ssm.SendCommandInput{
		DocumentName: aws.String(spec.Document),
		Parameters:   spec.Parameters,
	}
	if spec.DocumentVersion != "" {
		in.DocumentVersion = aws.String(spec.DocumentVersion)
	}
	if spec.Comment != "" {
		c := spec.Comment
		if len(c) > 100 { // API limit
			c = c[:100]
		}
		in.Comment = aws.String(c)
	}
	if spec.MaxConcurrency != "" {
		in.MaxConcurrency = aws.String(spec.MaxConcurrency)
	}
	if spec.MaxErrors != "" {
		in.MaxErrors = aws.String(spec.MaxErrors)
	}
	if spec.TimeoutSeconds > 0 {
		in.TimeoutSeconds = aws.Int32(max(spec.TimeoutSeconds, 30))
	}
	if spec.OutputBucket != "" {
		in.OutputS3BucketName = aws.String(spec.OutputBucket)
		if p := strings.Trim(spec.OutputPrefix, "/"); p != "" {
			in.OutputS3KeyPrefix = aws.String(p)
		}
	}
	return in
}

func send(ctx context.Context, api Sender, in *ssm.SendCommandInput) (string, error) {
	out, err := api.SendCommand(ctx, in)
	if err != nil {
		return "", classify("SendCommand", err)
	}
	if out.Command == nil || aws.ToString(out.Command.CommandId) == "" {
		return "", &CommandError{Op: "SendCommand", Err: errors.New("response without a command id")}
	}
	return aws.ToString(out.Command.CommandId), nil
}

// ListInvocations returns every invocation of a command, with plugin
// details, following NextToken.
func ListInvocations(ctx context.Context, api Lister, commandID string) ([]types.CommandInvocation, error) {
	p := ssm.NewListCommandInvocationsPaginator(api, &ssm.ListCommandInvocationsInput{
		CommandId:  aws.String(commandID),
		Details:    true,
		MaxResults: aws.Int32(50),
	})
	var all []types.CommandInvocation
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("ListCommandInvocations", err)
		}
		all = append(all, page.CommandInvocations...)
	}
	return all, nil
}

// Outcome maps an invocation's status to a workflow.Host* value and a short
// detail, without regard to any deadline. StatusDetails is checked first:
// SSM reports an unreachable agent as Status "Failed" with StatusDetails
// "Undeliverable" (ResponseCode -1), and a delivery timeout as "TimedOut"
// with "Delivery Timed Out"; both mean the command never ran, so the host
// is offline rather than failed or timed out.
func Outcome(inv types.CommandInvocation) (status, detail string) {
	det := aws.ToString(inv.StatusDetails)
	switch normalize(det) {
	case "undeliverable":
		return workflow.HostOffline, "undeliverable: the SSM agent is not reachable"
	case "terminated":
		return workflow.HostOffline, "terminated: not run after the command's error limit was reached"
	case "deliverytimedout":
		return workflow.HostOffline, "delivery timed out: the SSM agent did not pick the command up"
	case "executiontimedout":
		return workflow.HostTimedOut, "execution timed out"
	}
	switch normalize(string(inv.Status)) {
	case "pending", "inprogress", "delayed":
		return workflow.HostPending, ""
	case "success":
		return workflow.HostSucceeded, ""
	case "failed":
		return workflow.HostFailed, fmt.Sprintf("failed (exit code %d)", pluginCode(inv))
	case "cancelled", "canceled", "cancelling":
		return workflow.HostFailed, "cancelled"
	case "timedout":
		return workflow.HostTimedOut, "timed out"
	case "undeliverable":
		return workflow.HostOffline, "undeliverable: the SSM agent is not reachable"
	case "terminated":
		return workflow.HostOffline, "terminated"
	}
	return workflow.HostPending, ""
}

func normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, " ", ""))
}

func pluginCode(inv types.CommandInvocation) int32 {
	if len(inv.CommandPlugins) > 0 {
		return inv.CommandPlugins[0].ResponseCode
	}
	return 0
}

// Output limits and markers of the SSM agent.
const (
	pluginErrTitle    = "\n----------ERROR-------\n"
	pluginOutTrunc    = "\n---Output truncated---"
	stdoutTruncSuffix = "--output truncated--"
	stdoutLimit       = 24000
)

// ErrTruncated says only a truncated stdout could be read (no S3 output
// location was available).
var ErrTruncated = errors.New("command output truncated and no S3 output location available")

// OutputSource reads the full stdout of a step.
type OutputSource struct {
	SSM Getter
	// S3 reads the command output location; nil disables S3 reads.
	S3 banlist.ObjectGetter
	// Bucket and Prefix are the OutputS3BucketName / OutputS3KeyPrefix the
	// commands were sent with; when Bucket is empty the location is taken
	// from the invocation's StandardOutputUrl.
	Bucket, Prefix string
	// StepName is the document's step (mainSteps[].name), used when the
	// invocation carries no plugin details.
	StepName string
}

// OutputKey is where the SSM agent writes a step's stream for a schema 2.2
// Command document: KEYPREFIX/COMMANDID/INSTANCEID/awsrunShellScript/STEP/stdout.
func OutputKey(prefix, commandID, instanceID, step, stream string) string {
	var parts []string
	if p := strings.Trim(prefix, "/"); p != "" {
		parts = append(parts, p)
	}
	parts = append(parts, commandID, instanceID, "awsrunShellScript", step, stream)
	return strings.Join(parts, "/")
}

// ErrForgedOutput says the S3 copy of a step's stdout does not begin with
// what SSM itself captured: someone else wrote it.
var ErrForgedOutput = errors.New("command output in S3 differs from what SSM captured")

// Stdout returns the step's complete stdout, trusting only what SSM captured
// itself: the inline plugin output when it is complete
// (ListCommandInvocations caps it at 2,400 characters of stdout and stderr
// combined), otherwise GetCommandInvocation's StandardOutputContent (24,000
// characters), and only when that is cut too the S3 copy, accepted if it
// begins with exactly what SSM captured (ErrForgedOutput otherwise; with
// ErrTruncated if there is no copy).
//
// Why not the S3 copy alone: every tagged host may write anywhere under the
// output prefix. IAM has no policy variable that is just the instance id
// (an instance role session's aws:userid is ROLEID:i-…, and
// ec2:SourceInstanceARN is a whole ARN), so the host policy cannot tie the
// key's INSTANCEID to the writer, and one compromised host could speak for
// all. What SSM captured, each agent reported for its own instance only.
// Beyond 24,000 characters SSM's copy ends, so the S3 copy must also have
// the SHA-256 the host printed on stderr (DigestLine), which SSM captured
// too: a forger could reproduce the beginning, never the host's digest of
// the whole (ErrForgedOutput if it differs, ErrNoDigest if there is none).
func (o *OutputSource) Stdout(ctx context.Context, inv types.CommandInvocation) ([]byte, error) {
	commandID, instanceID := aws.ToString(inv.CommandId), aws.ToString(inv.InstanceId)
	step := o.StepName
	var plugin *types.CommandPlugin
	for i := range inv.CommandPlugins {
		p := &inv.CommandPlugins[i]
		if plugin == nil || aws.ToString(p.Name) == o.StepName {
			plugin = p
		}
	}
	if plugin != nil {
		if n := aws.ToString(plugin.Name); n != "" {
			step = n
		}
		if out, complete := InlineStdout(aws.ToString(plugin.Output)); complete {
			return []byte(out), nil
		}
	}
	if o.SSM == nil {
		return nil, ErrTruncated
	}
	in := &ssm.GetCommandInvocationInput{CommandId: aws.String(commandID), InstanceId: aws.String(instanceID)}
	if step != "" {
		in.PluginName = aws.String(step)
	}
	out, err := o.SSM.GetCommandInvocation(ctx, in)
	if err != nil {
		return nil, classify("GetCommandInvocation", err)
	}
	content := aws.ToString(out.StandardOutputContent)
	captured, truncated := strings.CutSuffix(content, stdoutTruncSuffix)
	if !truncated && !strings.HasSuffix(content, pluginOutTrunc) && len(content) < stdoutLimit {
		return []byte(content), nil
	}
	if o.S3 != nil {
		bucket, key := o.Bucket, ""
		if bucket != "" {
			key = OutputKey(o.Prefix, commandID, instanceID, step, "stdout")
		} else {
			u := aws.ToString(out.StandardOutputUrl)
			if plugin != nil && aws.ToString(plugin.StandardOutputUrl) != "" {
				u = aws.ToString(plugin.StandardOutputUrl)
			}
			bucket, key = parseS3URL(u)
		}
		if bucket != "" && key != "" {
			body, err := getObject(ctx, o.S3, bucket, key)
			switch {
			case err == nil:
				// A cut inside a multi-byte character may leave a
				// replacement character at the end of SSM's copy.
				if !strings.HasPrefix(string(body), strings.TrimRight(captured, "\uFFFD")) {
					return nil, fmt.Errorf("%w: %s/%s (instance %s)", ErrForgedOutput, bucket, key, instanceID)
				}
				switch digestIn(aws.ToString(out.StandardErrorContent), body) {
				case digestMissing:
					return nil, fmt.Errorf("%s/%s (instance %s): %w", bucket, key, instanceID, ErrNoDigest)
				case digestDiffers:
					return nil, fmt.Errorf("%w: %s/%s (instance %s) is not what the host's SHA-256 on stderr says", ErrForgedOutput, bucket, key, instanceID)
				}
				return body, nil
			case !errors.Is(err, banlist.ErrNotFound):
				return nil, err
			}
			// not there (yet): only the truncated copy is known
		}
	}
	return []byte(content), ErrTruncated
}

// digestPrefix starts the line on which the host scripts print the SHA-256
// of their stdout to stderr (host/common.sh, print_output).
const digestPrefix = "sshguard-unban stdout sha256 "

// DigestLine is the stderr line a host prints for its stdout.
func DigestLine(stdout []byte) string {
	sum := sha256.Sum256(stdout)
	return digestPrefix + hex.EncodeToString(sum[:]) + "\n"
}

// ErrNoDigest says the host printed no SHA-256 of its stdout (sha256sum is
// missing there, see host/README.md): its long output cannot be vouched
// for, which is not the same as a forgery.
var ErrNoDigest = errors.New("the host printed no SHA-256 of its output on stderr (is sha256sum installed?)")

type digestCheck int

const (
	digestMatches digestCheck = iota
	digestMissing
	digestDiffers
)

// digestIn checks stdout against the digest in SSM's capture of stderr.
// Only the first digest line counts: a genuine script prints one.
func digestIn(stderr string, stdout []byte) digestCheck {
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, digestPrefix) {
			if strings.TrimSuffix(line, "\n") == strings.TrimSuffix(DigestLine(stdout), "\n") {
				return digestMatches
			}
			return digestDiffers
		}
	}
	return digestMissing
}

// InlineStdout extracts stdout from a CommandPlugin.Output (the agent
// appends "\n----------ERROR-------\n" and stderr) and reports whether it is
// complete (not ending in the agent's "\n---Output truncated---").
func InlineStdout(output string) (stdout string, complete bool) {
	if i := strings.Index(output, pluginErrTitle); i >= 0 {
		output = output[:i]
	}
	if strings.HasSuffix(output, pluginOutTrunc) {
		return output, false
	}
	return output, true
}

func getObject(ctx context.Context, c banlist.ObjectGetter, bucket, key string) ([]byte, error) {
	body, _, err := s3obj.Get(ctx, c, bucket, key)
	return body, err
}

// parseS3URL splits an https S3 URL (path-style s3.REGION.amazonaws.com/
// BUCKET/KEY or virtual-hosted BUCKET.s3.REGION.amazonaws.com/KEY).
func parseS3URL(raw string) (bucket, key string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", ""
	}
	path := strings.TrimPrefix(u.Path, "/")
	if strings.HasPrefix(u.Host, "s3.") || strings.HasPrefix(u.Host, "s3-") {
		b, k, ok := strings.Cut(path, "/")
		if !ok {
			return "", ""
		}
		return b, k
	}
	if i := strings.Index(u.Host, ".s3"); i > 0 {
		return u.Host[:i], path
	}
	return "", ""
}
