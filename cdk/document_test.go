package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sshguard-unban/host"
	"sshguard-unban/shared/hostreport"
	"sshguard-unban/shared/ssmdoc"
)

// renderLikeAgent does what the SSM agent does to each runCommand line
// (agent/parameters/parameters.go, ReplaceParameters): a line that is only
// "{{ name }}" becomes the value itself, and inside a longer string the
// value is put in as it is when it is a string and as its JSON encoding
// otherwise (a list, a Boolean).
func renderLikeAgent(t *testing.T, lines []interface{}, params map[string]interface{}) string {
	t.Helper()
	var out []string
	for _, l := range lines {
		s := l.(string)
		for name, v := range params {
			re := regexp.MustCompile(`{{\s*` + name + `\s*}}`)
			if re.MatchString(s) && strings.TrimSpace(re.ReplaceAllString(s, "")) == "" {
				t.Fatalf("line %q would be replaced by the list itself", s)
			}
			text, ok := v.(string)
			if !ok {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			s = re.ReplaceAllLiteralString(s, text)
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n") + "\n"
}

// runLikeAgent renders the document's commands with params, writes them to
// dir/_script.sh and runs that as the agent does: sh -c SCRIPTPATH, from dir
// as the working directory. params are what SendCommand carries (every
// value a list of strings); agentValues types them as the agent does.
func runLikeAgent(t *testing.T, doc map[string]interface{}, dir string, params map[string][]string) ([]byte, error) {
	t.Helper()
	path := filepath.Join(dir, "_script.sh")
	if err := os.WriteFile(path, []byte(renderLikeAgent(t, runCommandOf(doc), agentValues(t, doc, params))), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", path)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// agentValues gives each declared parameter the value the agent substitutes,
// by the type the document declares: a StringList its list, a Boolean true
// or false, a String its one value; a parameter not sent, its default. A
// Boolean that is neither (only if SSM's validation let it through) stays
// the string it is, as the agent would then have it: the tests assume
// nothing of SSM's validation.
func agentValues(t *testing.T, doc map[string]interface{}, params map[string][]string) map[string]interface{} {
	t.Helper()
	out := map[string]interface{}{}
	for name, d := range doc["parameters"].(map[string]interface{}) {
		d := d.(map[string]interface{})
		values, sent := params[name]
		switch {
		case !sent:
			out[name] = d["default"]
		case d["type"] == "StringList":
			out[name] = values
		case len(values) != 1:
			t.Fatalf("%s: %d values for a %s", name, len(values), d["type"])
		case d["type"] == "Boolean" && (values[0] == "true" || values[0] == "false"):
			out[name] = values[0] == "true"
		default:
			out[name] = values[0]
		}
	}
	for name := range params {
		if _, ok := out[name]; !ok {
			t.Fatalf("parameter %s is not declared", name)
		}
	}
	return out
}

func runCommandOf(doc map[string]interface{}) []interface{} {
	step := doc["mainSteps"].([]interface{})[0].(map[string]interface{})
	return step["inputs"].(map[string]interface{})["runCommand"].([]interface{})
}

// The unban document hands each address to the script as its own argument,
// with nothing interpreted by the shell on the way: a stand-in script that
// prints its arguments one per line sees exactly the list. The two optional
// parameters become the options in front of them.
func TestUnbanDocumentPassesEachAddressAsOneArgument(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	stub := "#!/bin/sh\nprintf '<%s>\\n' \"$#\" \"$@\"\n"
	doc, err := UnbanDocumentContent(stub, 60)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Unquoted, the JSON text ["192.0.2.12"] would be the glob [192.0.2.12],
	// matching one-character file names such as these in the working
	// directory: they must never show up in the arguments.
	for _, name := range []string{"1", "2", ":", "a"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		addrs    []string
		seconds  string
		override bool
	}{
		{[]string{"192.0.2.12"}, "0", false},
		{[]string{"192.0.2.12", "2001:db8::5", "::ffff:192.0.2.1", "fe80::1", "2001:0db8:0000:0000:0000:0000:0000:0001"}, "300", false},
		{[]string{"1.2", "::"}, "86400", true},
	} {
		addrs := c.addrs
		out, err := runLikeAgent(t, doc, dir, map[string][]string{"addresses": addrs, "exceptionSeconds": {c.seconds}, "removeBlacklisted": {strconv.FormatBool(c.override)}})
		if err != nil {
			t.Fatalf("%v: %v\n%s", addrs, err, out)
		}
		args := []string{"--exception-seconds", c.seconds}
		if c.override {
			args = append(args, "--remove-blacklisted")
		}
		args = append(args, addrs...)
		want := []string{"<" + itoa(len(args)) + ">"}
		for _, a := range args {
			want = append(want, "<"+a+">")
		}
		if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !reflect.DeepEqual(got, want) {
			t.Errorf("%v: script saw %q, want %q", addrs, got, want)
		}
	}
}

// Whatever SSM lets through, an address item cannot run anything: rendered
// as the agent renders a StringList (its JSON encoding), items with quotes,
// newlines, command substitution and backticks reach the script as inert
// arguments, and the sentinel files they try to create never appear.
func TestUnbanDocumentHostileItems(t *testing.T) {
	doc := argsDocument(t)
	dir := t.TempDir()
	hostile := [][]string{
		{"192.0.2.12'; touch pwned1; '"},
		{"$(touch pwned2)"},
		{"`touch pwned3`"},
		{"192.0.2.12\ntouch pwned4"},
		{"a\n" + paramsHeredocMarker + "\ntouch pwned5\n"},
		{"\"; touch pwned6; \"", "x\\\"$(touch pwned7)"},
		{"${IFS}touch${IFS}pwned8", "*", "[a]"},
	}
	for _, items := range hostile {
		out, err := runLikeAgent(t, doc, dir, map[string][]string{"addresses": items, "exceptionSeconds": {"0"}, "removeBlacklisted": {"false"}})
		if err != nil {
			t.Errorf("%q: %v\n%s", items, err, out)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "pwned*"))
		if len(matches) > 0 {
			t.Fatalf("%q ran a command: %v\n%s", items, matches, out)
		}
		if strings.Contains(string(out), "<a>") && items[len(items)-1] == "[a]" {
			t.Errorf("%q: a glob was expanded: %s", items, out)
		}
	}
}

// The two optional parameters cannot run anything either, whatever SSM
// validates: hostile values of exceptionSeconds reach the script as one
// inert argument, hostile values of removeBlacklisted stop the wrapper, and
// no sentinel file appears. (Rendered raw into xs='…' and rb='…', as before,
// the first value alone ran a command as root.)
func TestUnbanDocumentHostileOptions(t *testing.T) {
	doc := argsDocument(t)
	hostile := []string{
		"0'; touch pwned1; '",
		"$(touch pwned2)",
		"`touch pwned3`",
		"0\ntouch pwned4",
		"0\n" + paramsHeredocMarker + "\ntouch pwned5\n",
		"0\n" + scriptHeredocMarker + "\ntouch pwned6\n",
		"\"; touch pwned7; \"",
		"true' ; touch pwned8 #",
		"x\\\"$(touch pwned9)",
	}
	for _, param := range []string{ExceptionSecondsParam, RemoveBlacklistedParam} {
		for _, v := range hostile {
			dir := t.TempDir()
			out, err := runLikeAgent(t, doc, dir, map[string][]string{"addresses": {"192.0.2.1"}, param: {v}})
			if matches, _ := filepath.Glob(filepath.Join(dir, "pwned*")); len(matches) > 0 {
				t.Errorf("%s=%q ran a command: %v\n%s", param, v, matches, out)
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			switch param {
			case ExceptionSecondsParam:
				// The script (here a stand-in) gets it as one argument and
				// validates it itself.
				if err != nil || len(lines) != 3 || lines[0] != "<--exception-seconds>" || lines[2] != "<192.0.2.1>" {
					t.Errorf("%s=%q: %v: script saw %q", param, v, err, lines)
				}
			case RemoveBlacklistedParam:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), `"code":"usage"`) {
					t.Errorf("%s=%q: %v: %s", param, v, err, out)
				}
			}
		}
	}
}

// argsDocument is the unban document around a stand-in script that prints
// each argument it gets as <ARG>, one per line.
func argsDocument(t *testing.T) map[string]interface{} {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	doc, err := UnbanDocumentContent("#!/bin/sh\nprintf '<%s>\\n' \"$@\"\n", 60)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// allowedPattern, as SSM applies it to each item: addresses pass, anything
// that could leave the single quotes or mean something to a shell does not.
func TestAddressItemPattern(t *testing.T) {
	re := regexp.MustCompile(AddressItemPattern)
	for _, ok := range []string{"192.0.2.12", "2001:db8::5", "::1", "::ffff:192.0.2.1", "FE80::1",
		"2001:0db8:0000:0000:0000:ffff:192.000.002.001"} {
		if !re.MatchString(ok) {
			t.Errorf("%q rejected", ok)
		}
	}
	for _, bad := range []string{"", "1", "192.0.2.12'", "'", "192.0.2.12;id", "$(id)", "`id`", "192.0.2.1 192.0.2.2",
		"192.0.2.0/24", "a\nb", "192.0.2.1\n", "*", "[", "\"", ",", "{{x}}", "\\", "192.0.2.12,1.2.3.4",
		strings.Repeat("1", 46), "１９２.0.2.1", "example.com", "g::1"} {
		if re.MatchString(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEmbedScriptRejects(t *testing.T) {
	for name, script := range map[string]string{
		"no shebang":     "echo hi\n",
		"param ref":      "#!/bin/sh\necho {{ addresses }}\n",
		"ssm ref":        "#!/bin/sh\necho {{ssm:/x}}\n",
		"marker":         "#!/bin/sh\n" + scriptHeredocMarker + "\n",
		"odd shebang":    "#!/bin/sh -c 'x'\n",
		"relative shell": "#!sh\n",
	} {
		if _, err := UnbanDocumentContent(script, 60); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ReportDocumentContent("#!/bin/sh\n"+strings.Repeat("# filler line for size\n", 3000), 60); err == nil {
		t.Error("oversized document accepted")
	}
}

func TestPlaceholders(t *testing.T) {
	got, err := Placeholders(`{"a":"${UnbanFunctionArn}","b":"${ParseFunctionArn}","c":"${UnbanFunctionArn}"}`)
	if err != nil || !reflect.DeepEqual(got, []string{"ParseFunctionArn", "UnbanFunctionArn"}) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := Placeholders(`{"a":"${WebhookFunctionArn}"}`); err == nil {
		t.Error("unknown placeholder accepted")
	}
	if _, err := Placeholders(`{}`); err == nil {
		t.Error("definition without placeholders accepted")
	}
}

// A removeBlacklisted that is neither true nor false (SSM types it Boolean,
// so only a broken agent could send one) stops the wrapper before the
// script runs.
func TestUnbanDocumentRefusesOtherOverrideValues(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	doc, err := UnbanDocumentContent("#!/bin/sh\necho ran\n", 60)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"yes", "", "true; echo x", "1"} {
		out, err := runLikeAgent(t, doc, t.TempDir(), map[string][]string{
			"addresses": {"192.0.2.1"}, "exceptionSeconds": {"0"}, "removeBlacklisted": {v}})
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Contains(string(out), "ran") ||
			!strings.Contains(string(out), `"code":"usage"`) {
			t.Errorf("removeBlacklisted=%v: %v: %s", v, err, out)
		}
	}
}

// exceptionSeconds' allowedPattern is exactly 0 or the bounds the host
// script enforces, in canonical decimal.
func TestExceptionSecondsPattern(t *testing.T) {
	re := regexp.MustCompile(ssmdoc.ExceptionSecondsPattern)
	for n := 0; n <= 100000; n++ {
		want := n == 0 || (n >= hostreport.MinExceptionSeconds && n <= hostreport.MaxExceptionSeconds)
		if got := re.MatchString(strconv.Itoa(n)); got != want {
			t.Errorf("%d: matches %v, want %v", n, got, want)
		}
	}
	for _, bad := range []string{"", "00", "010", "1e3", "-10", "+10", " 60", "60\n", "60'", "6 0", "0x10", "８６４００"} {
		if re.MatchString(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
	if !re.MatchString(ssmdoc.ExceptionSecondsDefault) {
		t.Error("the default does not match")
	}
}

// The documents run exactly the scripts the tests run: the host scripts
// assembled from the tree at synth time equal the copy compiled into the
// binaries (host.Script), and each document carries one verbatim, within
// SSM's 64 KB for the whole document as JSON.
func TestDocumentsRunTheAssembledScripts(t *testing.T) {
	root, err := FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	unbanSrc, reportSrc, err := LoadScripts(root)
	if err != nil {
		t.Fatal(err)
	}
	unbanDoc, err := UnbanDocumentContent(unbanSrc, 60)
	if err != nil {
		t.Fatal(err)
	}
	reportDoc, err := ReportDocumentContent(reportSrc, 60)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		src string
		doc map[string]interface{}
	}{host.UnbanScript: {unbanSrc, unbanDoc}, host.ReportScript: {reportSrc, reportDoc}} {
		want, err := host.Script(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.src != want {
			t.Errorf("%s: assembled from the tree differs from host.Script", name)
		}
		var lines []string
		for _, l := range runCommandOf(c.doc) {
			lines = append(lines, l.(string))
		}
		body := strings.Join(lines, "\n")
		start := strings.Index(body, "<<'"+scriptHeredocMarker+"'\n")
		end := strings.LastIndex(body, "\n"+scriptHeredocMarker+"\n")
		if start < 0 || end < start {
			t.Fatalf("%s: no embedded script", name)
		}
		if got := body[start+len(scriptHeredocMarker)+5 : end+1]; got != want {
			t.Errorf("%s: the document does not carry the assembled script verbatim", name)
		}
		b, err := json.Marshal(c.doc)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > commandDocumentLimit {
			t.Errorf("%s: document is %d bytes as JSON, over SSM's %d", name, len(b), commandDocumentLimit)
		}
		t.Logf("%s: %d bytes as JSON", name, len(b))
	}
}
