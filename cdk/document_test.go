package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// renderLikeAgent does what the SSM agent does to each runCommand line
// (agent/parameters/parameters.go, ReplaceParameters): a line that is only
// "{{ name }}" becomes the value itself, and inside a longer string the
// value is replaced by its JSON encoding when it is not a string.
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
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			s = re.ReplaceAllLiteralString(s, string(b))
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n") + "\n"
}

func runCommandOf(doc map[string]interface{}) []interface{} {
	step := doc["mainSteps"].([]interface{})[0].(map[string]interface{})
	return step["inputs"].(map[string]interface{})["runCommand"].([]interface{})
}

// The unban document hands each address to the script as its own argument,
// with nothing interpreted by the shell on the way: a stand-in script that
// prints its arguments one per line sees exactly the list.
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
	for _, addrs := range [][]string{
		{"192.0.2.12"},
		{"192.0.2.12", "2001:db8::5", "::ffff:192.0.2.1", "fe80::1", "2001:0db8:0000:0000:0000:0000:0000:0001"},
		{"1.2", "::"},
	} {
		params := map[string]interface{}{"addresses": addrs}
		script := renderLikeAgent(t, runCommandOf(doc), params)
		path := filepath.Join(dir, "_script.sh")
		if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
			t.Fatal(err)
		}
		// As the agent runs it: sh -c SCRIPTPATH, from a working directory.
		cmd := exec.Command("sh", "-c", path)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", addrs, err, out)
		}
		want := []string{"<" + itoa(len(addrs)) + ">"}
		for _, a := range addrs {
			want = append(want, "<"+a+">")
		}
		if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !reflect.DeepEqual(got, want) {
			t.Errorf("%v: script saw %q, want %q", addrs, got, want)
		}
	}
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
