package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// nagFindings runs the AwsSolutions pack over a freshly built stack and
// returns unsuppressed errors and warnings as "path: message" lines.
func nagFindings(t *testing.T, overrides map[string]interface{}) (errs, warns []string) {
	t.Helper()
	app, s, _ := newTestStack(t, overrides)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	// With the feature flags of cdk.json, an unsuppressed cdk-nag error
	// fails synthesis itself (the CLI prints it and exits non-zero); the
	// findings were printed to stderr just above.
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("synthesis with cdk-nag failed (unsuppressed error, printed above): %v", r)
		}
	}()
	ann := assertions.Annotations_FromStack(s.Stack)
	re := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	render := func(msgs *[]*cxapi.SynthesisMessage) []string {
		var out []string
		for _, m := range *msgs {
			out = append(out, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
		}
		sort.Strings(out)
		return out
	}
	return render(ann.FindError(jsii.String("*"), re)), render(ann.FindWarning(jsii.String("*"), re))
}

// cdk-nag AwsSolutions: no unsuppressed error; warnings are listed in the
// test log for review (none are expected either).
func TestNagAwsSolutions(t *testing.T) {
	for name, ctx := range map[string]map[string]interface{}{
		"created secret":   production,
		"imported secrets": {"webhookSecretName": "prod/sshguard-unban/webhook", "apiSecretName": "prod/sshguard-unban/api", "alarmEmail": "sre@example.com", "webhookReservedConcurrency": 0},
	} {
		t.Run(name, func(t *testing.T) {
			errs, warns := nagFindings(t, ctx)
			for _, e := range errs {
				t.Errorf("cdk-nag error: %s", e)
			}
			for _, w := range warns {
				t.Logf("cdk-nag warning: %s", w)
			}
			if len(warns) > 0 {
				t.Errorf("%d unsuppressed cdk-nag warnings (see log)", len(warns))
			}
		})
	}
}

// Every suppression carries a reason a reviewer can act on, not a token
// phrase.
func TestNagSuppressionReasons(t *testing.T) {
	s := defaultStack(t)
	n := 0
	for id, r := range s.json["Resources"].(map[string]interface{}) {
		md, _ := r.(map[string]interface{})["Metadata"].(map[string]interface{})
		nag, _ := md["cdk_nag"].(map[string]interface{})
		for _, rule := range asList(nag["rules_to_suppress"]) {
			rule := rule.(map[string]interface{})
			n++
			reason, _ := rule["reason"].(string)
			if len(reason) < 80 || strings.Contains(strings.ToLower(reason), "todo") {
				t.Errorf("%s: %s suppressed with a weak reason %q", id, rule["id"], reason)
			}
			if rule["id"] == "AwsSolutions-IAM5" && rule["applies_to"] == nil {
				t.Errorf("%s: IAM5 suppressed for every finding; name the wildcard with appliesTo", id)
			}
		}
	}
	if n == 0 {
		t.Fatal("no suppressions found in template metadata")
	}
}
