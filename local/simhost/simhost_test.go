package simhost

import (
	"context"
	"encoding/json"
	"testing"

	"sshguard-unban/shared/hostreport"
)

func TestUnbanAndReport(t *testing.T) {
	h := &Host{Name: "sim-1", Documents: map[string]string{"U": "unban", "R": "report"}}
	for _, e := range []string{"192.0.2.1", "192.0.2.12", "198.51.100.0/24", "2001:db8::1"} {
		if err := h.Block(e); err != nil {
			t.Fatal(err)
		}
	}
	out, _, code, _ := h.Run(context.Background(), "U", map[string][]string{"addresses": {"192.0.2.1", "198.51.100.7", "2001:db8::1"}})
	var u hostreport.Unban
	if err := json.Unmarshal(out, &u); err != nil || code != 0 {
		t.Fatalf("%s %d", out, code)
	}
	// Exactly the asked addresses: the /24 stays, 198.51.100.7 is exempt
	// from it, the neighbours stay blocked.
	if !u.Results[0].WasBlocked || len(u.Results[1].Removed) != 0 || u.Results[1].Exception == nil ||
		u.Results[1].Exception.Entries[0] != "198.51.100.0/24" || !u.Results[2].WasBlocked {
		t.Fatalf("%s", out)
	}
	if h.Blocks("198.51.100.7") || !h.Blocks("198.51.100.8") || !h.Blocks("192.0.2.12") || h.Blocks("192.0.2.1") {
		t.Fatalf("blocks after the unban: %v", h.Blocked())
	}
	if u.Report == nil || len(u.Report.Entries) != 2 || len(u.Report.Exceptions) != 1 {
		t.Fatalf("post-unban report %+v", u.Report)
	}
	out, _, _, _ = h.Run(context.Background(), "R", nil)
	var r hostreport.Report
	json.Unmarshal(out, &r)
	if len(r.Entries) != 2 || r.Entries[0].Entry != "192.0.2.12" || r.Backend != "simulated" {
		t.Fatalf("%s", out)
	}
	if _, _, code, _ := h.Run(context.Background(), "U", map[string][]string{"addresses": {"192.0.2.1;reboot"}}); code != 2 {
		t.Fatalf("bad address exit %d", code)
	}
}
