// Package functions is the one table of the service's Lambda functions: for
// each, the handler name the bootstrap binary dispatches on, the Go package
// that holds it, the CDK construct id, the ASL definition substitution key
// that stands for its ARN, and the Task states it serves in each state
// machine. cdk/, lambdas/app and statemachine/ all read this table; tests in
// statemachine/ and lambdas/app check it against the ASL files and the
// package docs, so a rename cannot leave one of the five names behind.
package functions

// Handler names (the Lambda Handler property, _HANDLER at run time).
const (
	Webhook        = "webhook"
	Parse          = "parse"
	Lookup         = "lookup"
	Unban          = "unban"
	WaitForCommand = "wait-for-command"
	RefreshList    = "refresh-list"
	Notify         = "notify"
	Policy         = "policy"
	Page           = "page"
)

// State machine names, as the ASL files are named (statemachine/NAME.asl.json).
const (
	UnbanMachine   = "unban"
	RefreshMachine = "refresh"
)

// Function is one row of the table.
type Function struct {
	Handler   string // handler name
	Package   string // import path of the handler's package
	Construct string // CDK construct id of the function
	// Substitution is the ${…} key the ASL uses for the function's ARN;
	// empty for the webhook and the page, which no state machine invokes
	// (API Gateway does).
	Substitution string
	// States lists, per state machine, the Task states that invoke it.
	States map[string][]string
}

// All is the table, in the order the functions are defined in the stack.
var All = []Function{
	{Handler: Webhook, Package: "sshguard-unban/lambdas/webhook", Construct: "WebhookFunction"},
	{Handler: Parse, Package: "sshguard-unban/lambdas/parse", Construct: "ParseFunction",
		Substitution: "ParseFunctionArn",
		States:       map[string][]string{UnbanMachine: {"ReadTheMessage"}}},
	{Handler: Lookup, Package: "sshguard-unban/lambdas/lookup", Construct: "LookupFunction",
		Substitution: "LookupFunctionArn",
		States:       map[string][]string{UnbanMachine: {"LookUpBanLists"}}},
	{Handler: Policy, Package: "sshguard-unban/lambdas/policy", Construct: "PolicyFunction",
		Substitution: "PolicyFunctionArn",
		States:       map[string][]string{UnbanMachine: {"CheckPolicy", "AskAboutBlacklisted", "DecideApproval", "CheckPageAccess"}}},
	{Handler: Unban, Package: "sshguard-unban/lambdas/unban", Construct: "UnbanFunction",
		Substitution: "UnbanFunctionArn",
		States:       map[string][]string{UnbanMachine: {"RemoveBlockOnHosts", "RemoveBlacklistedOnHosts"}}},
	{Handler: WaitForCommand, Package: "sshguard-unban/lambdas/waitforcommand", Construct: "WaitForCommandFunction",
		Substitution: "WaitForCommandFunctionArn",
		States: map[string][]string{
			UnbanMachine:   {"CheckUnbanCommand", "CheckBlacklistCommand", "WaitForLateHosts"},
			RefreshMachine: {"CheckReportCommand"},
		}},
	{Handler: RefreshList, Package: "sshguard-unban/lambdas/refreshlist", Construct: "RefreshListFunction",
		Substitution: "RefreshListFunctionArn",
		States: map[string][]string{
			UnbanMachine:   {"StoreBanLists"},
			RefreshMachine: {"RequestBanReports", "StoreBanLists"},
		}},
	{Handler: Notify, Package: "sshguard-unban/lambdas/notify", Construct: "NotifyFunction",
		Substitution: "NotifyFunctionArn",
		States: map[string][]string{
			UnbanMachine:   {"SayWeAreOnIt", "AskSREsToApprove", "ReplyToUser", "SendPageLink", "FollowUp", "AnnounceNewBans", "ReplyFailure", "AlertSREs"},
			RefreshMachine: {"AnnounceNewBans", "AlertSREs"},
		}},
	{Handler: Page, Package: "sshguard-unban/lambdas/page", Construct: "PageFunction"},
}

// Handlers lists every handler name, in table order.
func Handlers() []string {
	out := make([]string, len(All))
	for i, f := range All {
		out[i] = f.Handler
	}
	return out
}

// Substitutions maps every ASL substitution key to its handler name.
func Substitutions() map[string]string {
	m := map[string]string{}
	for _, f := range All {
		if f.Substitution != "" {
			m[f.Substitution] = f.Handler
		}
	}
	return m
}

// ByHandler finds a function by handler name.
func ByHandler(handler string) (Function, bool) {
	for _, f := range All {
		if f.Handler == handler {
			return f, true
		}
	}
	return Function{}, false
}

// BySubstitution finds the function an ASL substitution key stands for.
func BySubstitution(key string) (Function, bool) {
	for _, f := range All {
		if f.Substitution != "" && f.Substitution == key {
			return f, true
		}
	}
	return Function{}, false
}
