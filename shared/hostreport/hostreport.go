// Package hostreport holds the JSON shapes printed by the host scripts
// (host/sshguard-unban.sh and host/sshguard-report.sh). The scripts are the
// producers; the task Lambdas decode SSM command output into these types.
//
// # What an unban does
//
// Exactly the asked address is freed, never anything else:
//   - an entry that is the address itself ("192.0.2.5") is deleted
//     (AddressResult.Removed);
//   - an entry that contains it ("192.0.2.0/24" under IPV4_SUBNET=24, or a
//     prefix an admin added) stays blocked for everyone else, and the address
//     gets an Exception from it that ends by itself at Exception.Expires
//     (AddressResult.Exception);
//   - an address that is on sshguard's blacklist, or inside a blocked entry
//     that holds a blacklisted address, is left alone (Blacklisted) unless an
//     SRE ran the document with its override (BlacklistRemoved).
//
// # What sshguard 2.4.2 does afterwards
//
// Measured on Debian 12 (host/README.md, host/behaviour_test.go), read in
// its source:
//
//   - A block lasts BLOCK_TIME × 2^(n−1) seconds for an address's n-th block
//     since sshguard started (it never forgets an offender): 120, 240, 480,
//     960 s… with Debian's BLOCK_TIME=120. sshguard checks for expired blocks
//     every 1 to 1+BLOCK_TIME/2 s (random), so a block ends between its pardon
//     time and pardon + BLOCK_TIME/2 + 2 s after the attack that caused it
//     (Settings.BlockEnds).
//   - sshguard remembers blocked addresses, not entries: after an exact entry
//     is deleted, sshguard ignores that address's failed logins ("has already
//     been blocked", not even counted) until its own timer ends, which may be
//     any moment up to the bound above. The host cannot tell when the block
//     started, so no reply can promise more than "until at most ...".
//   - Under subnet blocking it remembers the attacker's own address too:
//     another address in the same /24 is counted normally and, once it
//     reaches THRESHOLD, blocks the /24 again (an entry that is already there,
//     so nothing changes) and sshguard later releases the /24 when the first
//     of those blocks ends. An excepted address stays excepted either way,
//     until Exception.Expires or until the /24 is released.
//   - Failed logins score 10 each (most sshd messages; a connection closed
//     before authentication scores 2): THRESHOLD=30 blocks after 3 within
//     DETECTION_TIME.
//   - Blacklisted entries are blocked forever. After an SRE removed one
//     (BlacklistRemoved): if sshguard blacklisted the address while running,
//     it keeps ignoring the address's failed logins until sshguard restarts
//     (AddressResult.IgnoredUntilRestart); if the address was blacklisted
//     before sshguard started, its failed logins count again from zero.
package hostreport

import (
	"bytes"
	"encoding/json"
	"time"
)

// Entry is one block in sshguard's firewall: a single address ("192.0.2.12",
// "2001:db8::1") or a prefix when sshguard blocks subnets ("192.0.2.0/24").
type Entry struct {
	Entry  string `json:"entry"`
	Family int    `json:"family"` // 4 or 6
	// Blacklisted: an address of sshguard's blacklist file lies in the
	// entry, so sshguard never releases it and blocks it again at start.
	Blacklisted bool `json:"blacklisted"`
}

// Settings are what the host's sshguard is configured with, read from its
// sshguard.conf as data. Values not set there are sshguard 2.4.2's own
// defaults; 0 means the config sets something the scripts do not
// understand (such as a shell expression).
type Settings struct {
	BlockTime     int `json:"block_time"`     // BLOCK_TIME, seconds: a first block's pardon time
	DetectionTime int `json:"detection_time"` // DETECTION_TIME, seconds: how long failed logins are remembered
	Threshold     int `json:"threshold"`      // THRESHOLD: the score that blocks (10 per failed login)
	IPv4Subnet    int `json:"ipv4_subnet"`    // IPV4_SUBNET: prefix length sshguard blocks, 32 = single addresses
	IPv6Subnet    int `json:"ipv6_subnet"`    // IPV6_SUBNET, 128 = single addresses
	// BlacklistThreshold is the score that blacklists, 0 without a
	// blacklist; BlacklistFile its path ("" without one).
	BlacklistThreshold int    `json:"blacklist_threshold"`
	BlacklistFile      string `json:"blacklist_file"`
	// Whitelist: a whitelist is configured (WHITELIST_FILE); whitelisted
	// addresses are never blocked. Adding one is an SRE decision.
	Whitelist bool `json:"whitelist"`
	// ExceptionSeconds is how long an exception lasts on this host unless
	// the unban document says otherwise: 30 × BLOCK_TIME, within
	// [MinExceptionSeconds, MaxExceptionSeconds].
	ExceptionSeconds int `json:"exception_seconds"`
}

// The bounds of an exception's lifetime (the unban document's
// exceptionSeconds parameter, and the host default). 30 × BLOCK_TIME (an
// hour with Debian's 120 s) outlasts what is left of an attacker's block up
// to its fifth block in a row (16 × BLOCK_TIME + BLOCK_TIME/2 + 2 s), and the
// exception ends anyway as soon as sshguard releases the containing entry;
// the upper bound limits how long the asked address is immune to blocks of
// that entry; a day covers a working day and beyond it an SRE should
// whitelist the address instead.
const (
	MinExceptionSeconds     = 10
	MaxExceptionSeconds     = 86400
	DefaultExceptionFactor  = 30 // × BLOCK_TIME
	MaxExceptionEntries     = 4  // containing entries one exception can cover
	RepeatBlockFactor       = 2  // each further block of an address lasts twice as long (measured)
	FailedLoginScore        = 10 // what sshguard scores most sshd failures
	releaseCheckSlackSecond = 2  // the one-second granularity of the release check, on both ends
)

// BlockPardon is how long sshguard 2.4.2 blocks an address for its n-th
// block (n ≥ 1) since sshguard started: BLOCK_TIME × 2^(n−1).
func (s Settings) BlockPardon(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := time.Duration(s.BlockTime) * time.Second
	for i := 1; i < n; i++ {
		d *= RepeatBlockFactor
	}
	return d
}

// BlockEnds is the window, after the attack that caused it, in which
// sshguard releases an address's n-th block: after its pardon time, and at
// most BLOCK_TIME/2 + 2 s later (the release check sleeps 1 to
// 1+BLOCK_TIME/2 s and compares whole seconds).
func (s Settings) BlockEnds(n int) (earliest, latest time.Duration) {
	p := s.BlockPardon(n)
	return p, p + time.Duration(s.BlockTime/2+releaseCheckSlackSecond)*time.Second
}

// FailedLoginsToBlock is how many failed logins within DetectionTime block
// an address (at FailedLoginScore each).
func (s Settings) FailedLoginsToBlock() int {
	if s.Threshold <= 0 {
		return 0
	}
	return (s.Threshold + FailedLoginScore - 1) / FailedLoginScore
}

// Exception exempts one address from containing entries that stay blocked
// for everyone else. It ends by itself at Expires, and earlier when sshguard
// releases the entries (the scripts remove it at their next run: every
// report, once a minute in production, and every unban), when a new block
// covers the address, or when sshguard exits.
type Exception struct {
	Address string   `json:"address"`
	Entries []string `json:"entries"` // the containing entries it is exempt from
	Expires string   `json:"expires"` // RFC 3339, UTC
}

// Report is what host/sshguard-report.sh prints: every block on one host,
// the settings, and the active exceptions. The report also removes
// exceptions that ended (see Exception) before it lists them.
type Report struct {
	Host       string      `json:"host"`
	Time       string      `json:"time"` // RFC 3339, UTC
	Backend    string      `json:"backend"`
	Settings   *Settings   `json:"settings,omitempty"`
	Entries    []Entry     `json:"entries"`
	Exceptions []Exception `json:"exceptions,omitempty"`
	// Addresses are the host's own (ip addr, scope global): an employee who
	// asks for one of them means the server, not their own address.
	Addresses []string `json:"addresses,omitempty"`
	Error     string   `json:"error,omitempty"`
	Code      string   `json:"code,omitempty"`
}

// Blacklisted reports whether entry is in the report as a blacklisted one.
func (r Report) Blacklisted(entry string) bool {
	for _, e := range r.Entries {
		if e.Entry == entry {
			return e.Blacklisted
		}
	}
	return false
}

// AddressResult says what host/sshguard-unban.sh did for one address.
type AddressResult struct {
	Address string `json:"address"`
	// WasBlocked: some entry contained the address before the unban;
	// BlockedBy lists them.
	WasBlocked bool     `json:"was_blocked"`
	BlockedBy  []string `json:"blocked_by"`
	// Removed are the entries deleted: only ever the address itself, never
	// a containing prefix.
	Removed []string `json:"removed"`
	// Exception is set when the address is now exempt from containing
	// entries that stay blocked for everyone else.
	Exception *Exception `json:"exception,omitempty"`
	// Blacklisted: the address is on sshguard's blacklist, or inside a
	// blocked entry that holds a blacklisted address. Without the SRE
	// override nothing was changed for it: an SRE decides.
	Blacklisted bool `json:"blacklisted"`
	// BlacklistRemoved: the SRE override removed the address's blacklist
	// lines (only ever set under the override).
	BlacklistRemoved bool `json:"blacklist_removed"`
	// IgnoredUntilRestart (with BlacklistRemoved): sshguard blacklisted the
	// address while running, keeps it in its block list with no end and
	// ignores its failed logins until sshguard restarts.
	IgnoredUntilRestart bool `json:"ignored_until_restart,omitempty"`
	// StillBlocked: an entry still blocks the address after the unban (it
	// was left alone, or could not be excepted).
	StillBlocked bool `json:"still_blocked"`
}

// Unban is what host/sshguard-unban.sh prints. On failure Error and Code are
// set ("bad_address", "no_config", "firewall_unreadable", …) and the script
// exits non-zero; after a failed change Results and Report say what the
// firewall holds now.
type Unban struct {
	Host    string          `json:"host"`
	Backend string          `json:"backend,omitempty"`
	Results []AddressResult `json:"results"`
	// Report is the host's report after the unban, as sshguard-report.sh
	// prints it: the listing the unban took (under the host's lock, so no
	// other unban or report ran in between) with the unban's committed
	// changes applied. It is printed after Results, so the results survive
	// the API's cut of the inline output (DecodeUnbanResults).
	Report *Report `json:"report,omitempty"`
	Error  string  `json:"error,omitempty"`
	Code   string  `json:"code,omitempty"`
}

// DecodeUnbanResults reads the unban script's output up to and including
// its results and the report's settings, skipping the report's entries and
// exceptions: the SSM API's inline output (2,400 characters in
// ListCommandInvocations) holds those first parts even when the rest was cut
// off. complete is false when the results themselves were cut off (read the
// whole output then). The returned Report, if any, holds only Settings.
func DecodeUnbanResults(out []byte) (u Unban, complete bool) {
	dec := json.NewDecoder(bytes.NewReader(out))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Unban{}, false
	}
	sawResults := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return u, sawResults
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
		case "report":
			rep, whole := decodeSettings(dec)
			u.Report = rep
			if !whole {
				// Cut off inside the report: enough if the results came first.
				return u, sawResults
			}
			continue
		default:
			var skip json.RawMessage
			dst = &skip
		}
		if err := dec.Decode(dst); err != nil {
			// Cut off inside this value: fine if the results were read.
			return u, sawResults
		}
		if key == "results" {
			sawResults = true
		}
	}
	return u, sawResults || u.Code != ""
}

// decodeSettings reads a report object, keeping only its settings, and
// skips the rest (entries, exceptions). whole is false when the object was
// cut off; the settings, printed before the entries, may be there anyway.
func decodeSettings(dec *json.Decoder) (rep *Report, whole bool) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return rep, false
		}
		if t == "settings" {
			var s Settings
			if dec.Decode(&s) != nil {
				return rep, false
			}
			rep = &Report{Settings: &s}
			continue
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return rep, false
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return rep, false
	}
	return rep, true
}
