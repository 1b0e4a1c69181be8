package users

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIPTail(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.57": "….57",
		"2001:db8::1f": "…:1f",
		"::1":          "…:1",
		"":             "",
		"garbage":      "",
	} {
		if got := IPTail(ip); got != want {
			t.Errorf("IPTail(%q) = %q, want %q", ip, got, want)
		}
	}
}

func TestEventIDsSortByTime(t *testing.T) {
	a := NewEventID(time.UnixMilli(999))
	b := NewEventID(time.UnixMilli(1000))
	if a >= b || !strings.HasPrefix(b, EventIDPrefix(time.UnixMilli(1000))) || b < EventIDPrefix(time.UnixMilli(1000)) {
		t.Errorf("ids %q, %q do not sort by time", a, b)
	}
	if _, err := CheckEventPage(a, 10); err != nil {
		t.Errorf("a made ID is refused as a cursor: %v", err)
	}
	if n, err := CheckEventPage("", 0); n != DefaultEventPage || err != nil {
		t.Errorf("CheckEventPage default = %d, %v", n, err)
	}
}

func TestParseIPList(t *testing.T) {
	got, err := ParseIPList("blacklist", "10.1.2.3/8, 203.0.113.7\n2001:DB8::1  203.0.113.7 ::ffff:1.2.3.4")
	want := []string{"10.0.0.0/8", "203.0.113.7", "2001:db8::1", "1.2.3.4"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseIPList = %v, %v; want %v", got, err, want)
	}
	if got, err := ParseIPList("blacklist", " \n "); err != nil || len(got) != 0 {
		t.Errorf("blank list = %v, %v", got, err)
	}
	_, err = ParseIPList("whitelist", "1.2.3.4, example.com, 10.0.0.0/33, fe80::1%eth0")
	e := AsError(err)
	if e.Code != CodeInvalid || len(e.Issues) != 3 || e.Issues[0].Path != "whitelist" || !strings.Contains(e.Issues[0].Message, "example.com") {
		t.Errorf("bad entries: %v (%+v)", err, e.Issues)
	}
}

func TestEnvLine(t *testing.T) {
	if got := EnvLine("10.0.0.0/8, 1.2.3.4", []string{"1.2.3.4", "2001:db8::/32"}); got != "10.0.0.0/8,1.2.3.4,2001:db8::/32" {
		t.Errorf("EnvLine = %q", got)
	}
	if got := EnvLine("", nil); got != "" {
		t.Errorf("EnvLine of nothing = %q", got)
	}
}

func TestClampModel(t *testing.T) {
	if got := ClampModel("gpt-4o"); got != "gpt-4o" {
		t.Errorf("short name changed: %q", got)
	}
	long := strings.Repeat("é", MaxModelLen+50)
	if got := ClampModel(long); len([]rune(got)) != MaxModelLen+1 || !strings.HasSuffix(got, "…") {
		t.Errorf("long name clamped to %d runes", len([]rune(got)))
	}
}
