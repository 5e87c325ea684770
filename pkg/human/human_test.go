package human

import "testing"

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 53 << 20: "53.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Plural(1, "table") + ", " + Plural(2, "table"); got != "1 table, 2 tables" {
		t.Errorf("Plural: %q", got)
	}
}

func TestList(t *testing.T) {
	if got := List([]string{"a", "b", "c", "d", "e"}, 3); got != "a, b, c and 2 more" {
		t.Errorf("List: %q", got)
	}
	if got := List([]string{"a", "b"}, 3); got != "a, b" {
		t.Errorf("List: %q", got)
	}
}
