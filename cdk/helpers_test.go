package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// TestMain closes the jsii runtime (a Node.js child process) after the
// tests; without it the process can linger.
func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

var (
	repoRootOnce sync.Once
	repoRoot     string
	sources      Sources
	sourcesErr   error
)

// testSources reads the real ASL and scripts and builds the real bootstrap
// (unless SSHGUARD_UNBAN_LAMBDA_DIR points at a prebuilt one), once.
func testSources(t *testing.T) (string, Sources) {
	t.Helper()
	repoRootOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			sourcesErr = err
			return
		}
		if repoRoot, sourcesErr = FindRepoRoot(wd); sourcesErr != nil {
			return
		}
		sources, sourcesErr = LoadSources(repoRoot)
	})
	if sourcesErr != nil {
		t.Fatalf("load sources: %v", sourcesErr)
	}
	return repoRoot, sources
}

// cdkJSON is the repository's cdk.json, parsed, with its raw bytes.
type cdkJSON struct {
	App     string                 `json:"app"`
	Context map[string]interface{} `json:"context"`
	raw     []byte
}

func readCDKJSON(t *testing.T, root string) cdkJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f cdkJSON
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	f.raw = b
	return f
}

// cdkJSONContext is the context of the repository's cdk.json (feature flags
// and defaults), so the tests synthesize what `cdk synth` synthesizes.
func cdkJSONContext(t *testing.T, root string) map[string]interface{} {
	t.Helper()
	return readCDKJSON(t, root).Context
}

// synthesized is one synthesized stack with its template as plain JSON.
type synthesized struct {
	stack    *UnbanStack
	template assertions.Template
	json     map[string]interface{}
	cfg      Config
}

// newTestStack builds the stack in a fresh app whose context is cdk.json's
// plus overrides, loading Config through LoadConfig as the app does.
func newTestStack(t *testing.T, overrides map[string]interface{}) (awscdk.App, *UnbanStack, Config) {
	t.Helper()
	root, src := testSources(t)
	ctx := cdkJSONContext(t, root)
	for k, v := range overrides {
		ctx[k] = v
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx})
	cfg, err := LoadConfig(app.Node())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s := NewUnbanStack(app, StackName, &StackProps{Config: cfg, Sources: src})
	return app, s, cfg
}

func synth(t *testing.T, overrides map[string]interface{}) *synthesized {
	t.Helper()
	_, s, cfg := newTestStack(t, overrides)
	tpl := assertions.Template_FromStack(s.Stack, nil)
	raw, err := json.Marshal(tpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return &synthesized{stack: s, template: tpl, json: m, cfg: cfg}
}

var (
	defaultOnce sync.Once
	defaultSyn  *synthesized
)

// production is a realistic configuration (what an operator passes with -c).
var production = map[string]interface{}{
	"botAccountId": "1234567",
	"allowedRooms": []interface{}{"567890123", "567890124"},
	"notifyRoomId": "567890125",
	"sreRoomId":    "567890126",
}

// defaultStack is synthesized once and shared by the read-only tests.
func defaultStack(t *testing.T) *synthesized {
	t.Helper()
	defaultOnce.Do(func() { defaultSyn = synth(t, production) })
	if defaultSyn == nil {
		t.Fatal("default stack failed to synthesize")
	}
	return defaultSyn
}

// check runs an assertions call, turning its panic (AssertionError) into a
// test error so one failed assertion does not hide the others.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

// resources returns the template's resources of one type, by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]interface{} {
	out := map[string]map[string]interface{}{}
	for id, r := range s.json["Resources"].(map[string]interface{}) {
		r := r.(map[string]interface{})
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

func props(r map[string]interface{}) map[string]interface{} {
	p, _ := r["Properties"].(map[string]interface{})
	return p
}

// idOf resolves a CDK construct's logical id in this stack.
func idOf(stack awscdk.Stack, el awscdk.CfnElement) string {
	switch v := stack.Resolve(stack.GetLogicalId(el)).(type) {
	case string:
		return v
	case *string:
		return *v
	default:
		panic(fmt.Sprintf("logical id resolved to %T", v))
	}
}

// cfn is the default CloudFormation resource of a construct.
func cfn(c constructs.IConstruct) awscdk.CfnElement {
	return c.Node().DefaultChild().(awscdk.CfnElement)
}

// statement is one IAM policy statement, normalized.
type statement struct {
	Policy    string // logical id of the policy resource
	Sid       string
	Effect    string
	Actions   []string
	Resources []interface{}
	Condition map[string]interface{}
}

func asList(v interface{}) []interface{} {
	switch t := v.(type) {
	case nil:
		return nil
	case []interface{}:
		return t
	default:
		return []interface{}{t}
	}
}

// statements returns every statement of every AWS::IAM::Policy and
// AWS::IAM::ManagedPolicy in the template.
func (s *synthesized) statements() []statement {
	var out []statement
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"} {
		for id, r := range s.resources(typ) {
			doc := props(r)["PolicyDocument"].(map[string]interface{})
			for _, st := range asList(doc["Statement"]) {
				st := st.(map[string]interface{})
				var acts []string
				for _, a := range asList(st["Action"]) {
					acts = append(acts, a.(string))
				}
				sort.Strings(acts)
				sid, _ := st["Sid"].(string)
				cond, _ := st["Condition"].(map[string]interface{})
				out = append(out, statement{
					Policy: id, Sid: sid, Effect: st["Effect"].(string),
					Actions: acts, Resources: asList(st["Resource"]), Condition: cond,
				})
			}
		}
	}
	return out
}

// rolePolicies maps a role's logical id to the statements attached to it
// through AWS::IAM::Policy resources.
func (s *synthesized) rolePolicies() map[string][]statement {
	byPolicy := map[string][]statement{}
	for _, st := range s.statements() {
		byPolicy[st.Policy] = append(byPolicy[st.Policy], st)
	}
	out := map[string][]statement{}
	for id, r := range s.resources("AWS::IAM::Policy") {
		for _, role := range asList(props(r)["Roles"]) {
			ref := role.(map[string]interface{})["Ref"].(string)
			out[ref] = append(out[ref], byPolicy[id]...)
		}
	}
	return out
}

// handlerOfRole maps each function role's logical id to its handler.
func (s *synthesized) handlerOfRole() map[string]string {
	out := map[string]string{}
	for _, r := range s.resources("AWS::Lambda::Function") {
		p := props(r)
		out[p["Role"].(map[string]interface{})["Fn::GetAtt"].([]interface{})[0].(string)] = p["Handler"].(string)
	}
	return out
}

// compact renders a template fragment on one line for messages.
func compact(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func hasAction(st statement, action string) bool {
	for _, a := range st.Actions {
		if a == action {
			return true
		}
	}
	return false
}

func keys(m map[string]interface{}) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
