package statemachine_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sshguard-unban/lambdas/app"
	"sshguard-unban/local/sfnrunner"
	"sshguard-unban/local/sfnrunner/sfnrunnertest"
	"sshguard-unban/shared/functions"
	"sshguard-unban/shared/message"
	"sshguard-unban/shared/workflow"
	"sshguard-unban/statemachine"
)

// Static checks of the two definitions: schema (asl-validator, the
// reference validator), the error-handling policy every Task must follow,
// and the data contract with the Go handlers (shared/workflow).

type definition struct {
	TimeoutSeconds int
	StartAt        string
	States         map[string]state
}

type state struct {
	Type           string
	Resource       string
	InputPath      *string
	Parameters     map[string]any
	ResultSelector map[string]any
	ResultPath     json.RawMessage
	Result         map[string]any
	TimeoutSeconds float64
	Retry          []retrier
	Catch          []catcher
	Choices        []map[string]any
	Default        string
	Next           string
	End            bool
	ErrorPath      string
	CausePath      string
	Seconds        int
}

type retrier struct {
	ErrorEquals     []string
	IntervalSeconds *float64
	BackoffRate     *float64
	MaxAttempts     *int
	MaxDelaySeconds *int
	JitterStrategy  string
}

type catcher struct {
	ErrorEquals []string
	ResultPath  json.RawMessage
	Next        string
}

var machines = map[string]string{"unban": statemachine.Unban, "refresh": statemachine.Refresh}

func parseDef(t *testing.T, text string) definition {
	t.Helper()
	var d definition
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// resultPath decodes a ResultPath: nil for null (discard), "$" if absent.
func resultPath(raw json.RawMessage) *string {
	if raw == nil {
		s := "$"
		return &s
	}
	var s *string
	json.Unmarshal(raw, &s)
	return s
}

func TestASLValidator(t *testing.T) {
	root, err := sfnrunner.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(root, "node_modules", ".bin", "node")
	// The package's own CLI (the .bin link points at it); run with Node 22
	// rather than through its "#!/usr/bin/env node" line.
	validator := filepath.Join(root, "node_modules", ".bin", "asl-validator")
	if _, err := os.Stat(validator); err != nil {
		sfnrunnertest.RequireInstalled(t)
	}
	for name, text := range machines {
		// Realistic ARNs: the validator checks Resource is an ARN.
		def, err := statemachine.Substitute(text, statemachine.LocalSubstitutions("us-east-1", "123456789012"))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), name+".asl.json")
		if err := os.WriteFile(file, []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(node, validator, "--json-path", file).CombinedOutput()
		if err != nil {
			t.Errorf("%s: asl-validator: %v\n%s", name, err, out)
		}
	}
}

func TestSubstitute(t *testing.T) {
	if _, err := statemachine.Substitute(statemachine.Unban, map[string]string{"ParseFunctionArn": "x"}); err == nil {
		t.Error("missing keys accepted")
	}
	for name, text := range machines {
		def, err := statemachine.Substitute(text, statemachine.LocalSubstitutions("local", "000000000000"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(def, "${") {
			t.Errorf("%s: placeholder left", name)
		}
		// Only the declared keys are used.
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(text, -1) {
			if _, ok := functions.Substitutions()[m[1]]; !ok {
				t.Errorf("%s: undeclared substitution %s", name, m[1])
			}
		}
	}
}

var transientErrors = []string{"TransientError", "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException"}

// timeoutErrors: the Task's timeout, the function's own timeout (the Lambda
// service reports Sandbox.Timedout) and a function that died.
var timeoutErrors = []string{"States.Timeout", "Sandbox.Timedout", "Lambda.Unknown"}

// lambdaInvoke is the Lambda integration's Resource (the only way to write
// an asynchronous call).
const lambdaInvoke = "arn:aws:states:::lambda:invoke"

// lambdaCallback is the Lambda integration that waits for a task token.
const lambdaCallback = lambdaInvoke + ".waitForTaskToken"

// taskCall is what a Task invokes: the ${…} substitution naming the
// function, the template of its payload (nil: InputPath or the whole
// input), and whether the call is asynchronous (InvocationType Event).
func taskCall(s state) (resource string, payload map[string]any, async bool) {
	if s.Resource != lambdaInvoke && s.Resource != lambdaCallback {
		return s.Resource, s.Parameters, false
	}
	fn, _ := s.Parameters["FunctionName"].(string)
	p, _ := s.Parameters["Payload"].(map[string]any)
	return fn, p, s.Parameters["InvocationType"] == "Event"
}

// callbackResult is what a callback Task's ResultPath receives: the output
// an SRE's answer sends with the token (policy's resume).
var callbackResult = reflect.TypeFor[workflow.Approval]()

// bestEffort lists the Tasks whose failure only loses a sign of life: they
// are not retried (a retry would delay the unban) and their Catch goes on
// with the request, keeping the state as it was.
var bestEffort = map[string]bool{"SayWeAreOnIt": true}

// notIdempotent lists the Tasks that must not be retried after a timeout
// (a late first attempt may have done the work already). Today every task
// is safe to repeat: see each States.Timeout retrier's Comment.
var notIdempotent = map[string]bool{}

// TestMachineOutlastsItsWaits: the unban machine's own timeout (which no
// Catch sees: the asker would get no answer) is longer than an approval's
// wait plus every other Task's, so an unanswered approval ends in the
// polite "expired" reply, not a timed-out execution.
func TestMachineOutlastsItsWaits(t *testing.T) {
	d := parseDef(t, statemachine.Unban)
	total := 0.0
	for _, s := range d.States {
		if s.Type == "Task" {
			total += s.TimeoutSeconds
		}
	}
	if float64(d.TimeoutSeconds) <= total {
		t.Errorf("machine TimeoutSeconds %d, but its Tasks may take %.0f s", d.TimeoutSeconds, total)
	}
	if s := d.States["AskSREsToApprove"]; s.TimeoutSeconds != app.ApprovalWait.Seconds() {
		t.Errorf("AskSREsToApprove waits %v s, notify tells the asker %v", s.TimeoutSeconds, app.ApprovalWait)
	}
}

func TestTaskErrorPolicy(t *testing.T) {
	for name, text := range machines {
		d := parseDef(t, text)
		if d.TimeoutSeconds <= 0 {
			t.Errorf("%s: no machine TimeoutSeconds backstop", name)
		}
		for sn, s := range d.States {
			if s.Type != "Task" {
				continue
			}
			where := name + "." + sn
			if s.TimeoutSeconds <= 0 {
				t.Errorf("%s: no TimeoutSeconds", where)
			}
			if s.Resource == lambdaCallback {
				// Waiting for a person: a timeout is "no answer", caught
				// (never retried); named errors are their answers; the
				// last catch is the failure path.
				if len(s.Retry) != 1 || !slices.Equal(s.Retry[0].ErrorEquals, transientErrors) {
					t.Errorf("%s: a callback task retries transient errors only", where)
				}
				last := s.Catch[len(s.Catch)-1]
				if len(s.Catch) < 2 || !slices.Equal(last.ErrorEquals, []string{"States.ALL"}) ||
					!slices.ContainsFunc(s.Catch, func(c catcher) bool { return slices.Equal(c.ErrorEquals, []string{"States.Timeout"}) }) {
					t.Errorf("%s: a callback task catches its timeout and then States.ALL", where)
				}
				continue
			}
			if bestEffort[sn] {
				_, _, async := taskCall(s)
				if len(s.Retry) > 0 || !async || len(s.Catch) != 1 || resultPath(s.Catch[0].ResultPath) != nil || s.Catch[0].Next != s.Next {
					t.Errorf("%s: a best-effort task is asynchronous, not retried, and its Catch goes on to its Next keeping the state", where)
				}
				continue
			}
			if len(s.Retry) == 0 || !slices.Equal(s.Retry[0].ErrorEquals, transientErrors) {
				t.Errorf("%s: first retrier must match %v", where, transientErrors)
			}
			timeoutRetried := false
			for _, r := range s.Retry {
				if r.IntervalSeconds == nil || r.BackoffRate == nil || r.MaxAttempts == nil || r.MaxDelaySeconds == nil || r.JitterStrategy != "FULL" {
					t.Errorf("%s: retrier %v lacks IntervalSeconds, BackoffRate, MaxAttempts, MaxDelaySeconds or JitterStrategy FULL", where, r.ErrorEquals)
				}
				if slices.Contains(r.ErrorEquals, "States.Timeout") {
					timeoutRetried = true
					if !slices.Equal(r.ErrorEquals, timeoutErrors) {
						t.Errorf("%s: timeout retrier %v, want %v", where, r.ErrorEquals, timeoutErrors)
					}
				}
				if slices.Contains(r.ErrorEquals, "States.ALL") || slices.Contains(r.ErrorEquals, "States.TaskFailed") {
					t.Errorf("%s: retrying everything would retry permanent errors", where)
				}
			}
			if timeoutRetried == notIdempotent[sn] {
				t.Errorf("%s: States.Timeout retried=%v, but idempotent=%v", where, timeoutRetried, !notIdempotent[sn])
			}
			if len(s.Catch) != 1 || !slices.Equal(s.Catch[0].ErrorEquals, []string{"States.ALL"}) {
				t.Errorf("%s: must catch States.ALL (and only that)", where)
			}
		}
	}
}

// TestUnbanFailureRouting pins where each failure goes: before the reply →
// ReplyFailure with $.error (the lookup, which decides nothing, goes on with
// $.lookup_error); after the reply → AlertSREs, never a second reply; the
// failure replies → AlertSREs → Failed.
func TestUnbanFailureRouting(t *testing.T) {
	d := parseDef(t, statemachine.Unban)
	want := map[string][2]string{
		"ReadTheMessage":           {"ReplyFailure", "$.error"},
		"SayWeAreOnIt":             {"LookUpBanLists", "null"}, // best effort: go on
		"LookUpBanLists":           {"CheckPolicy", "$.lookup_error"},
		"CheckPolicy":              {"ReplyFailure", "$.error"},
		"AskSREsToApprove":         {"ReplyFailure", "$.error"}, // its last catch; the others are the SREs' answers
		"DecideApproval":           {"ReplyFailure", "$.error"},
		"CheckPageAccess":          {"ReplyFailure", "$.error"},
		"SendPageLink":             {"ReplyFailure", "$.error"}, // the SRE's one reply
		"RemoveBlockOnHosts":       {"ReplyFailure", "$.error"},
		"AskAboutBlacklisted":      {"ReplyFailure", "$.error"},
		"RemoveBlacklistedOnHosts": {"ReplyFailure", "$.error"},
		"CheckBlacklistCommand":    {"ReplyFailure", "$.error"},
		"CheckUnbanCommand":        {"ReplyFailure", "$.error"},
		"ReplyToUser":              {"ReplyFailure", "$.error"},
		"WaitForLateHosts":         {"AlertSREs", "$.error"}, // after the reply: alert, no second reply
		"FollowUp":                 {"AlertSREs", "$.error"},
		"StoreBanLists":            {"AlertSREs", "$.error"},
		"AnnounceNewBans":          {"AlertSREs", "$.error"},
		"ReplyFailure":             {"AlertSREs", "null"},
		"AlertSREs":                {"Failed", "null"},
	}
	for sn, s := range d.States {
		if s.Type != "Task" {
			continue
		}
		w, ok := want[sn]
		if !ok {
			t.Errorf("new Task %s: add its failure route here", sn)
			continue
		}
		c := s.Catch[len(s.Catch)-1] // the States.ALL one
		rp := "null"
		if p := resultPath(c.ResultPath); p != nil {
			rp = *p
		}
		if got := [2]string{c.Next, rp}; got != w {
			t.Errorf("%s catches to %v, want %v", sn, got, w)
		}
	}
	if d.States["ReplyFailure"].Next != "AlertSREs" || d.States["AlertSREs"].Next != "Failed" || d.States["Failed"].Type != "Fail" {
		t.Error("ReplyFailure → AlertSREs → Failed")
	}
	// Every path to Done passes a reply: Done and Failed are reached only
	// from the states after ReplyToUser and from the failure path.
	afterReply := map[string]bool{}
	for _, sn := range []string{"ReplyToUser", "SendPageLink", "AnySilentHosts", "WaitForLateHosts", "AreLateHostsDone", "FollowUp", "StoreBanLists", "AnyNewBans", "AnnounceNewBans"} {
		afterReply[sn] = true
	}
	for sn, s := range d.States {
		for _, next := range nexts(s) {
			if (next == "Done" && !afterReply[sn]) || (next == "Failed" && sn != "AlertSREs") ||
				(afterReply[next] && !afterReply[sn] && next != "ReplyToUser" && next != "SendPageLink") {
				t.Errorf("%s goes to %s without a reply", sn, next)
			}
		}
	}
}

func nexts(s state) []string {
	var out []string
	if s.Next != "" {
		out = append(out, s.Next)
	}
	if s.Default != "" {
		out = append(out, s.Default)
	}
	for _, c := range s.Choices {
		if n, ok := c["Next"].(string); ok {
			out = append(out, n)
		}
	}
	for _, c := range s.Catch {
		out = append(out, c.Next)
	}
	return out
}

// Task input and output types, by function name.
var taskTypes = map[string][2]reflect.Type{
	"parse":            {reflect.TypeFor[workflow.Request](), reflect.TypeFor[message.Result]()},
	"lookup":           {reflect.TypeFor[workflow.LookupInput](), reflect.TypeFor[workflow.LookupResult]()},
	"unban":            {reflect.TypeFor[workflow.UnbanInput](), reflect.TypeFor[workflow.UnbanCommand]()},
	"wait-for-command": {reflect.TypeFor[workflow.CheckInput](), reflect.TypeFor[workflow.CheckResult]()},
	"refresh-list":     {reflect.TypeFor[workflow.RefreshInput](), reflect.TypeFor[workflow.RefreshResult]()},
	"notify":           {reflect.TypeFor[workflow.NotifyInput](), reflect.TypeFor[workflow.NotifyResult]()},
	"policy":           {reflect.TypeFor[workflow.PolicyInput](), reflect.TypeFor[workflow.PolicyResult]()},
}

var stateType = reflect.TypeFor[workflow.State]()

// TestDataContract checks every path and field name in the definitions
// against the Go types the handlers decode and return: a renamed JSON field
// in shared/workflow (or a typo here) fails this test, not a deployment.
func TestDataContract(t *testing.T) {
	for name, text := range machines {
		d := parseDef(t, text)
		subs := map[string]string{}
		for key, fn := range functions.Substitutions() {
			subs[key] = fn
		}
		for sn, s := range d.States {
			where := name + "." + sn
			switch s.Type {
			case "Task":
				resource, payload, async := taskCall(s)
				fn := subs[strings.TrimSuffix(strings.TrimPrefix(resource, "${"), "}")]
				types, ok := taskTypes[fn]
				if !ok {
					t.Errorf("%s: unknown resource %s", where, resource)
					continue
				}
				in, out := types[0], types[1]
				if s.Resource == lambdaCallback {
					out = callbackResult
				}
				switch {
				case s.InputPath != nil && payload != nil:
					t.Errorf("%s: both InputPath and Parameters", where)
				case s.InputPath != nil:
					checkAssign(t, where+" InputPath", resolve(t, where, stateType, *s.InputPath), in)
				case payload != nil:
					checkTemplate(t, where+" Parameters", payload, stateType, in)
				default:
					t.Errorf("%s: passes the whole state to the task", where)
				}
				if async {
					// An Event invocation returns no result of the function.
					if resultPath(s.ResultPath) != nil || s.ResultSelector != nil {
						t.Errorf("%s: an asynchronous call has no result to keep", where)
					}
					continue
				}
				result := out
				if s.ResultSelector != nil {
					result = nil // checked against the ResultPath target below
				}
				if p := resultPath(s.ResultPath); p != nil {
					if *p == "$" {
						t.Errorf("%s: the task result would replace the whole state", where)
						continue
					}
					target := resolve(t, where, stateType, *p)
					if s.ResultSelector != nil {
						checkTemplate(t, where+" ResultSelector", s.ResultSelector, out, target)
					} else {
						checkAssign(t, where+" ResultPath", result, target)
					}
				}
				for _, c := range s.Catch {
					if p := resultPath(c.ResultPath); p != nil {
						checkAssign(t, where+" Catch", reflect.TypeFor[workflow.TaskError](), resolve(t, where, stateType, *p))
					}
				}
			case "Choice":
				for _, c := range s.Choices {
					checkRule(t, where, c)
				}
			case "Pass":
				if p := resultPath(s.ResultPath); p != nil && s.Result != nil {
					checkTemplate(t, where+" Result", s.Result, stateType, resolve(t, where, stateType, *p))
				}
			case "Fail":
				for _, p := range []string{s.ErrorPath, s.CausePath} {
					if p != "" {
						checkAssign(t, where, resolve(t, where, stateType, p), reflect.TypeFor[string]())
					}
				}
			}
		}
	}
}

func checkRule(t *testing.T, where string, rule map[string]any) {
	t.Helper()
	for _, op := range []string{"And", "Or"} {
		if subs, ok := rule[op].([]any); ok {
			for _, s := range subs {
				checkRule(t, where, s.(map[string]any))
			}
		}
	}
	if sub, ok := rule["Not"].(map[string]any); ok {
		checkRule(t, where, sub)
	}
	v, ok := rule["Variable"].(string)
	if !ok {
		return
	}
	typ := deref(resolve(t, where, stateType, v))
	if typ == nil {
		return
	}
	for op := range rule {
		var want reflect.Kind
		switch {
		case strings.HasPrefix(op, "String"):
			want = reflect.String
		case strings.HasPrefix(op, "Boolean"):
			want = reflect.Bool
		case strings.HasPrefix(op, "Numeric"):
			want = reflect.Int
		default:
			continue
		}
		k := typ.Kind()
		if k >= reflect.Int && k <= reflect.Float64 {
			k = reflect.Int
		}
		if k != want {
			t.Errorf("%s: %s compares %s, a %s", where, op, v, typ)
		}
	}
}

// checkTemplate checks a Parameters/ResultSelector/Result object: each key
// must be a JSON field of into, static values must decode into it and
// paths (key.$) must resolve, in from, to an assignable type.
func checkTemplate(t *testing.T, where string, tmpl map[string]any, from, into reflect.Type) {
	t.Helper()
	fields := jsonFields(deref(into))
	for key, v := range tmpl {
		field, isPath := strings.CutSuffix(key, ".$")
		ft, ok := fields[field]
		if !ok {
			t.Errorf("%s: %s has no field %q", where, into, field)
			continue
		}
		if isPath {
			p := v.(string)
			if strings.HasPrefix(p, "$$.") {
				continue // context object: execution name and start time, strings
			}
			if inner, ok := strings.CutPrefix(p, "States.Array("); ok {
				// One path in, a list of its type out.
				elem := resolve(t, where, from, strings.TrimSuffix(inner, ")"))
				if ft.Kind() != reflect.Slice {
					t.Errorf("%s: States.Array into %s, not a list", where+" "+key, ft)
				} else {
					checkAssign(t, where+" "+key, elem, ft.Elem())
				}
				continue
			}
			checkAssign(t, where+" "+key, resolve(t, where, from, p), ft)
			continue
		}
		if obj, ok := v.(map[string]any); ok && deref(ft).Kind() == reflect.Struct {
			checkTemplate(t, where+" "+key, obj, from, ft)
			continue
		}
		raw, _ := json.Marshal(v)
		if err := json.Unmarshal(raw, reflect.New(ft).Interface()); err != nil {
			t.Errorf("%s: %s=%s does not decode into %s: %v", where, key, raw, ft, err)
		}
	}
}

func checkAssign(t *testing.T, where string, from, to reflect.Type) {
	t.Helper()
	if from == nil || to == nil {
		return
	}
	if deref(from) != deref(to) {
		t.Errorf("%s: %s given where %s is expected", where, from, to)
	}
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// jsonFields lists a struct's JSON fields, embedded structs flattened as
// encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(deref(f.Type)) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

var pathToken = regexp.MustCompile(`^\.([A-Za-z_][A-Za-z0-9_]*)|^\[(\d+)\]`)

// resolve follows a reference path ($.a.b[0].c) through Go types.
func resolve(t *testing.T, where string, root reflect.Type, path string) reflect.Type {
	t.Helper()
	rest, ok := strings.CutPrefix(path, "$")
	if !ok {
		t.Errorf("%s: %q is not a path", where, path)
		return nil
	}
	typ := root
	for rest != "" {
		m := pathToken.FindStringSubmatch(rest)
		if m == nil {
			t.Errorf("%s: cannot read path %q", where, path)
			return nil
		}
		rest = rest[len(m[0]):]
		typ = deref(typ)
		if m[2] != "" {
			if _, err := strconv.Atoi(m[2]); err != nil || typ.Kind() != reflect.Slice {
				t.Errorf("%s: %q indexes a %s", where, path, typ)
				return nil
			}
			typ = typ.Elem()
			continue
		}
		ft, ok := jsonFields(typ)[m[1]]
		if !ok {
			t.Errorf("%s: %q: %s has no field %q", where, path, typ, m[1])
			return nil
		}
		typ = ft
	}
	return typ
}
