// Package ssmdoc is the contract of the two SSM Command documents that run
// the host scripts: cdk/ writes the documents, the unban and refresh-list
// tasks send them and read their output, and the local SSM endpoint serves
// them. One place, so the names cannot drift apart.
package ssmdoc

const (
	// UnbanStep and ReportStep are the documents' step (action) names. SSM
	// names each invocation's plugin after them and stores the full output
	// in S3 under KEYPREFIX/COMMAND/INSTANCE/awsrunShellScript/STEP/stdout.
	UnbanStep  = "sshguardUnban"
	ReportStep = "sshguardReport"

	// AddressesParam is the unban document's required parameter: a
	// StringList with one address per item.
	AddressesParam = "addresses"
	// AddressItemPattern is its allowedPattern. SSM checks every item
	// before it accepts SendCommand: only hex digits, dots and colons (any
	// textual IPv4 or IPv6 address, 45 characters with an embedded IPv4),
	// nothing a shell treats specially. The host script still parses each
	// argument as an address.
	AddressItemPattern = `^[0-9A-Fa-f:.]{2,45}$`
	// MaxAddresses is the parameter's maxItems, the same as what one
	// Chatwork message may ask for (message.MaxAddresses; a test in
	// lambdas/unban keeps them equal).
	MaxAddresses = 5
)

// The unban document's two optional parameters, which the Lambdas never set
// (SSM fills in the defaults); they are for an SRE running the document by
// hand. Both are one-item StringLists, not String or Boolean: the agent
// JSON-encodes a list wherever it puts it, which is what keeps any value
// inert in the document (cdk/sources.go). The host script checks both again.
const (
	// ExceptionSecondsParam is how long an address stays excepted from a
	// containing prefix that stays blocked for everyone else: one item,
	// "0" (the default: the host's own, 30 × BLOCK_TIME) or 10 to 86400
	// seconds (hostreport.MinExceptionSeconds, MaxExceptionSeconds), which
	// ExceptionSecondsPattern enforces before SSM accepts the command.
	ExceptionSecondsParam   = "exceptionSeconds"
	ExceptionSecondsDefault = "0"
	ExceptionSecondsPattern = `^(0|[1-9][0-9]|[1-9][0-9]{2,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)$`
	// RemoveBlacklistedParam is the SRE override: one item, true or false
	// (RemoveBlacklistedPattern), default false. true removes the asked
	// addresses from sshguard's blacklist too (the script leaves
	// blacklisted addresses alone otherwise).
	RemoveBlacklistedParam   = "removeBlacklisted"
	RemoveBlacklistedPattern = `^(true|false)$`
)
