// Package hostreport holds the JSON shapes printed by the host scripts
// (host/sshguard-unban.sh and host/sshguard-report.sh). The scripts are the
// producers; the task Lambdas decode SSM command output into these types.
package hostreport

import (
	"bytes"
	"encoding/json"
)

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
	// Report is the host's complete ban report taken after the unban, in
	// sshguard-report.sh's format, printed after Results: the request's
	// one SSM round trip also refreshes the host's stored list.
	Report *Report `json:"report,omitempty"`
	Error   string          `json:"error,omitempty"`
	Code    string          `json:"code,omitempty"`
}

// DecodeUnbanResults reads the unban script's output up to and including
// its results, skipping the embedded report: the SSM API's inline output
// (2,400 characters in ListCommandInvocations) holds the results even when
// the report that follows them was cut off. complete is false when the
// results themselves were cut off (read the whole output then). The
// returned Unban has no Report.
func DecodeUnbanResults(out []byte) (u Unban, complete bool) {
	dec := json.NewDecoder(bytes.NewReader(out))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Unban{}, false
	}
	sawResults := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return u, false
		}
		key, _ := t.(string)
		var dst any
		switch key {
		case "host":
			dst = &u.Host
		case "backend":
			dst = &u.Backend
		case "results":
			dst = &u.Results
		case "error":
			dst = &u.Error
		case "code":
			dst = &u.Code
		default:
			var skip json.RawMessage
			dst = &skip
		}
		if err := dec.Decode(dst); err != nil {
			// Cut off inside this value: fine if the results were read.
			return u, sawResults || (u.Error != "" && key != "error")
		}
		if key == "results" {
			sawResults = true
		}
	}
	return u, sawResults || u.Code != ""
}
