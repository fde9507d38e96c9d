// Package hostreport holds the JSON shapes printed by the host scripts
// (host/sshguard-unban.sh and host/sshguard-report.sh). The scripts are the
// producers; the task Lambdas decode SSM command output into these types.
package hostreport

// Entry is one block in sshguard's firewall: a single address ("192.0.2.12",
// "2001:db8::1") or a prefix when sshguard blocks subnets ("192.0.2.0/24").
type Entry struct {
	Entry       string `json:"entry"`
	Family      int    `json:"family"` // 4 or 6
	Blacklisted bool   `json:"blacklisted"`
}

// Report is what host/sshguard-report.sh prints: every block on one host.
type Report struct {
	Host    string  `json:"host"`
	Time    string  `json:"time"` // RFC 3339, UTC
	Backend string  `json:"backend"`
	Entries []Entry `json:"entries"`
	Error   string  `json:"error,omitempty"`
	Code    string  `json:"code,omitempty"`
}

// AddressResult says what host/sshguard-unban.sh did for one address.
type AddressResult struct {
	Address          string   `json:"address"`
	WasBlocked       bool     `json:"was_blocked"`
	Removed          []string `json:"removed"` // firewall entries removed: the address or a containing prefix
	BlacklistRemoved bool     `json:"blacklist_removed"`
}

// Unban is what host/sshguard-unban.sh prints. On failure Error and Code are
// set ("bad_address", "no_config", "firewall_unreadable", …) and the script
// exits non-zero.
type Unban struct {
	Host    string          `json:"host"`
	Backend string          `json:"backend,omitempty"`
	Results []AddressResult `json:"results"`
	Error   string          `json:"error,omitempty"`
	Code    string          `json:"code,omitempty"`
}
