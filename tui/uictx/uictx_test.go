package uictx_test

import (
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

func TestFormatAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-1:                                   "-",
		0:                                    "0.0s",
		420 * time.Millisecond:               "0.4s",
		9*time.Second + 960*time.Millisecond: "10.0s",
		14 * time.Second:                     "14s",
		3*time.Minute + 5*time.Second:        "3m05s",
		2*time.Hour + 10*time.Minute:         "2h10m",
		80 * time.Hour:                       "3d",
	} {
		if got := uictx.FormatAge(d); got != want {
			t.Errorf("FormatAge(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestFormatCount: counts fit the four cells the tables give them, and
// are cut, never rounded up.
func TestFormatCount(t *testing.T) {
	for n, want := range map[int64]string{
		-1: "-", 0: "0", 7: "7", 999: "999", 1000: "1.0k", 1999: "1.9k", 9999: "9.9k",
		10_000: "10k", 48_213: "48k", 999_999: "999k", 1_000_000: "1.0M", 31_400_000: "31M",
		2_500_000_000: "2.5G", 999_000_000_000: "999G",
	} {
		if got := uictx.FormatCount(n); got != want {
			t.Errorf("FormatCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestAge is -1 before any data, and never negative.
func TestAge(t *testing.T) {
	c := &uictx.Context{Now: time.Unix(100, 0)}
	if c.Age() != -1 {
		t.Fatal("age before data")
	}
	c.DataAt = time.Unix(101, 0)
	if c.Age() != 0 {
		t.Fatal("negative age")
	}
}
