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
