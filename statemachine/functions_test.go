package statemachine_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"sshguard-unban/shared/functions"
	"sshguard-unban/statemachine"
)

// The one table of functions (shared/functions) agrees with the ASL files:
// every Task state invokes, through its ${…} substitution, the function
// whose row lists that state, and every state a row lists is such a Task.
func TestFunctionTableMatchesDefinitions(t *testing.T) {
	defs := map[string]string{functions.UnbanMachine: statemachine.Unban, functions.RefreshMachine: statemachine.Refresh}
	sub := regexp.MustCompile(`^\$\{([A-Za-z0-9_]+)\}$`)
	for machine, text := range defs {
		d := parseDef(t, text)
		tasks := map[string]string{} // state → handler
		for name, st := range d.States {
			if st.Type != "Task" {
				continue
			}
			resource, _, _ := taskCall(st)
			m := sub.FindStringSubmatch(resource)
			if m == nil {
				t.Errorf("%s.%s: Resource %q is not a substitution", machine, name, resource)
				continue
			}
			f, ok := functions.BySubstitution(m[1])
			if !ok {
				t.Errorf("%s.%s: ${%s} is in no row of shared/functions", machine, name, m[1])
				continue
			}
			tasks[name] = f.Handler
			if !slices.Contains(f.States[machine], name) {
				t.Errorf("%s.%s invokes %s, whose row does not list the state", machine, name, f.Handler)
			}
		}
		for _, f := range functions.All {
			for _, name := range f.States[machine] {
				if tasks[name] != f.Handler {
					t.Errorf("shared/functions: %s lists %s.%s, which is not a Task invoking it", f.Handler, machine, name)
				}
			}
		}
	}
	for _, f := range functions.All {
		for machine := range f.States {
			if _, ok := defs[machine]; !ok {
				t.Errorf("%s: unknown state machine %q", f.Handler, machine)
			}
		}
		if f.Substitution != "" && !strings.HasSuffix(f.Substitution, "FunctionArn") {
			t.Errorf("%s: substitution %q does not end in FunctionArn", f.Handler, f.Substitution)
		}
	}
}
