package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// outputNameRe is how a stack output's name looks in the README: a
// CamelCase word ending in what outputs end in (WebhookUrl, HostPolicyArn…).
// outputNameRe finds what the README presents as an output: a name in
// backticks, or the argument of the guide's out helper ("$(out NAME)"). AWS
// CLI fields in commands (AlarmName in a --query) are neither.
var outputNameRe = regexp.MustCompile("(?:`|\\bout )([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*(?:Arn|Name|Id|Url|Tag))\\b")

// The deploy guide matches the template: every output name the README
// mentions exists in the synthesized template, and the "Stack outputs"
// table describes exactly the template's outputs.
func TestREADMEOutputsMatchTheTemplate(t *testing.T) {
	root, _ := testSources(t)
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	outputs := defaultStack(t).json["Outputs"].(map[string]interface{})

	for _, m := range outputNameRe.FindAllStringSubmatch(readme, -1) {
		name := m[1]
		if _, ok := outputs[name]; !ok {
			t.Errorf("the README names %s, which is no output of the template", name)
		}
	}

	table := section(t, readme, "### Stack outputs")
	described := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z0-9]+)` \\|").FindAllStringSubmatch(table, -1) {
		described[m[1]] = true
	}
	var missing []string
	for name := range outputs {
		if !described[name] {
			missing = append(missing, name)
		}
		delete(described, name)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("outputs not described in the README's \"Stack outputs\" table: %v", missing)
	}
	for name := range described {
		t.Errorf("the README's \"Stack outputs\" table describes %s, which is no output of the template", name)
	}
}

// section returns the README text from heading to the next heading of the
// same or a higher level.
func section(t *testing.T, readme, heading string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	rest := readme[i+1+len(heading):]
	level := strings.Repeat("#", strings.Index(heading, " "))
	for _, l := range regexp.MustCompile(`(?m)^#+ `).FindAllStringIndex(rest, -1) {
		if l[1]-l[0]-1 <= len(level) {
			return rest[:l[0]]
		}
	}
	return rest
}
