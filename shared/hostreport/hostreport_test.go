package hostreport

import (
	"encoding/json"
	"strings"
	"testing"
)

// The inline output SSM returns is cut at 2,400 characters: the results,
// printed before the report, are still read; a cut inside the results is
// reported as incomplete.
func TestDecodeUnbanResults(t *testing.T) {
	full := Unban{Host: "web-1", Backend: "nft-sets",
		Results: []AddressResult{{Address: "192.0.2.5", WasBlocked: true, Removed: []string{"192.0.2.5"}}},
		Report:  &Report{Host: "web-1", Time: "2026-12-01T00:00:00Z", Backend: "nft-sets", Settings: &Settings{BlockTime: 120, DetectionTime: 1800, Threshold: 30}}}
	for i := range 500 {
		full.Report.Entries = append(full.Report.Entries, Entry{Entry: "198.51.100." + string(rune('0'+i%10)), Family: 4})
	}
	b, _ := json.Marshal(full)
	cases := []struct {
		name     string
		out      string
		complete bool
		blocked  bool
	}{
		{"whole", string(b), true, true},
		{"cut in the report", string(b)[:2400], true, true},
		{"cut in the results", string(b)[:strings.Index(string(b), "removed")], false, false},
		{"error object", `{"host":"web-1","backend":"","error":"sshguard config missing","code":"no_config"}`, true, false},
		{"report first, whole", `{"host":"web-1","backend":"nft-sets","report":{"host":"web-1","settings":{"block_time":120},"entries":[{"entry":"198.51.100.1"}]},"results":[{"address":"192.0.2.5","was_blocked":true}]}`, true, true},
		{"report first, cut in it", `{"host":"web-1","backend":"nft-sets","report":{"host":"web-1","settings":{"block_time":120},"entries":[{"entry":"198.51`, false, false},
		{"not json", "sh: 1: syntax error", false, false},
		{"empty", "", false, false},
	}
	for _, c := range cases {
		u, complete := DecodeUnbanResults([]byte(c.out))
		if complete != c.complete {
			t.Errorf("%s: complete=%v, want %v", c.name, complete, c.complete)
		}
		if got := len(u.Results) == 1 && u.Results[0].WasBlocked; got != c.blocked {
			t.Errorf("%s: results %+v", c.name, u.Results)
		}
		if u.Report != nil && (len(u.Report.Entries) > 0 || u.Report.Host != "") {
			t.Errorf("%s: the report's entries were decoded", c.name)
		}
		if c.complete && c.blocked && (u.Report == nil || u.Report.Settings == nil || u.Report.Settings.BlockTime != 120) {
			t.Errorf("%s: settings %+v", c.name, u.Report)
		}
	}
}
