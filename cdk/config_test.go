package main

import (
	"reflect"
	"strings"
	"testing"
)

type mapContext map[string]interface{}

func (m mapContext) TryGetContext(key *string) interface{} { return m[*key] }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(mapContext{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Defaults) {
		t.Errorf("got %+v, want defaults %+v", c, Defaults)
	}
	if got := c.Missing(); !reflect.DeepEqual(got, []string{"botAccountId", "allowedRooms", "notifyRoomId", "sreRoomId"}) {
		t.Errorf("missing %v", got)
	}
}

// cdk.json gives JSON types, -c gives strings: both work.
func TestLoadConfigTypes(t *testing.T) {
	fromJSON := mapContext{
		"botAccountId": float64(1234567), "allowedRooms": []interface{}{"1", float64(2)},
		"freshnessSeconds": float64(600), "apiRateLimit": 2.5, "locale": "en",
	}
	fromFlags := mapContext{
		"botAccountId": "1234567", "allowedRooms": "1, 2", "freshnessSeconds": "600", "apiRateLimit": "2.5", "locale": "en",
	}
	a, err := LoadConfig(fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadConfig(fromFlags)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("json %+v != flags %+v", a, b)
	}
	if a.BotAccountID != "1234567" || !reflect.DeepEqual(a.AllowedRooms, []string{"1", "2"}) || a.FreshnessSeconds != 600 || a.APIRateLimit != 2.5 {
		t.Errorf("%+v", a)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	for key, v := range map[string]interface{}{
		"botAccountId":          "12a",
		"allowedRooms":          "1,x",
		"locale":                "fr",
		"targetTagKey":          "aws:x",
		"targetTagValue":        "",
		"refreshSchedule":       "every minute",
		"freshnessSeconds":      "10",
		"commandTimeoutSeconds": "5",
		"logRetentionDays":      "42",
		"logLevel":              "trace",
		"alarmEmail":            "not an address",
		"apiRateLimit":          "0",
		"apiBurstLimit":         "1.5",
		"webhookSecretName":     "bad name!",
		"apiSecretName":         "bad name!",
		"secretName":            "prod/chatwork", // replaced by the two above
	} {
		if _, err := LoadConfig(mapContext{key: v}); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%v: err %v", key, v, err)
		}
	}
}
