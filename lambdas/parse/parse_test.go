package parse

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
)

// Through aws-lambda-go's own handler adapter, as the runtime calls it: the
// JSON in and out is the contract with the state machine.
func TestHandleJSON(t *testing.T) {
	h := lambda.NewHandler(New(nil).Handle)
	tests := []struct {
		in, intent string
		addrs      []string
	}{
		{`{"room_id":"1","message_id":"2","account_id":"3","body":"[To:1234567]bot さん\n２０３．０．１１３．５ です"}`, "unban", []string{"203.0.113.5"}},
		{`{"room_id":"1","message_id":"2","account_id":"3","body":"[To:1234567]bot さん ありがとう！"}`, "thanks", []string{}},
		{`{"room_id":"1","message_id":"2","account_id":"3","body":"[To:1234567]bot さん"}`, "help", []string{}},
	}
	for _, tt := range tests {
		out, err := h.Invoke(context.Background(), []byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Intent    string   `json:"intent"`
			Addresses []string `json:"addresses"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if got.Intent != tt.intent || len(got.Addresses) != len(tt.addrs) || got.Addresses == nil {
			t.Fatalf("%s → %s", tt.in, out)
		}
		for i := range tt.addrs {
			if got.Addresses[i] != tt.addrs[i] {
				t.Fatalf("%s → %s", tt.in, out)
			}
		}
	}
}
