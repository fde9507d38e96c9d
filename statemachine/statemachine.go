// Package statemachine holds the two Step Functions definitions (Amazon
// States Language, JSONPath) and the names of their ${…} substitutions:
//
//   - unban.asl.json: one Chatwork request, from parsing the message to the
//     one reply; started by the webhook with {"request": workflow.Request}.
//   - refresh.asl.json: scheduled; refreshes every host's stored ban list
//     and announces new bans.
//
// The CDK stack passes the text to DefinitionBody_FromString with
// DefinitionSubstitutions mapping each ${…FunctionArn} key to the function's
// ARN (the keys are in shared/functions); the local mode and the tests
// substitute the same keys (local/sfnrunner).
package statemachine

import (
	_ "embed"
	"fmt"
	"regexp"

	"sshguard-unban/shared/functions"
)

// Unban is the unban machine's definition, substitutions not applied.
//
//go:embed unban.asl.json
var Unban string

// Refresh is the refresh machine's definition, substitutions not applied.
//
//go:embed refresh.asl.json
var Refresh string

// LocalSubstitutions gives every key a Lambda ARN in a local account whose
// function name is the task's name, which is what local/taskbridge serves.
func LocalSubstitutions(region, account string) map[string]string {
	subs := map[string]string{}
	for key, fn := range functions.Substitutions() {
		subs[key] = fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, account, fn)
	}
	return subs
}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Substitute replaces every ${Key} in def, failing on a key subs lacks (as
// CloudFormation does).
func Substitute(def string, subs map[string]string) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(def, func(m string) string {
		key := placeholder.FindStringSubmatch(m)[1]
		v, ok := subs[key]
		if !ok {
			missing = append(missing, key)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("statemachine: no substitution for %v", missing)
	}
	return out, nil
}
