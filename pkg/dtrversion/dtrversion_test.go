package dtrversion

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for v, want := range map[string]bool{
		"2.9.4": true, "2.9.4-rc1": true, "3.1.0-tp.2": true,
		"": false, "latest": false, "2.9": false, "v2.9.4": false, "2.9.4 ": false,
		"2.9." + strings.Repeat("4", MaxLen): false,
	} {
		if got := Valid(v); got != want {
			t.Errorf("Valid(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestMajorMinor(t *testing.T) {
	for v, want := range map[string]string{"2.9.4": "2.9", "2.9.4-rc1": "2.9", "2.9": "2.9", "2": "2", "": ""} {
		if got := MajorMinor(v); got != want {
			t.Errorf("MajorMinor(%q) = %q, want %q", v, got, want)
		}
	}
	if !SameMajorMinor("2.9.4", "2.9.0") || SameMajorMinor("2.9.4", "2.8.4") {
		t.Error("SameMajorMinor")
	}
}
