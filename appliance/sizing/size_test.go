package sizing

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestParseSize_Accepts proves every spelling users type for --memory reads
// as the binary size they mean.
func TestParseSize_Accepts(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"256mb", 256 * MiB},
		{"256MB", 256 * MiB},
		{"256Mb", 256 * MiB},
		{"1gb", GiB},
		{"1.5gb", GiB + GiB/2},
		{"512m", 512 * MiB},
		{"2g", 2 * GiB},
		{"2G", 2 * GiB},
		{"1048576", 1048576},
		{"64kb", 64 * KiB},
		{"64k", 64 * KiB},
		{"1tb", TiB},
		{"100b", 100},
		{"256 MiB", 256 * MiB}, // what FormatSize prints
		{" 2gb ", 2 * GiB},
		{"1.1gb", 1181116006}, // 1.1 * 2^30 = 1181116006.4, truncated exactly
		{"0.5gb", 512 * MiB},
		{"007mb", 7 * MiB},
		{"7TB", 7 * TiB},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if err != nil {
				t.Fatalf("ParseSize(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// TestParseSize_Refuses proves bad input is refused with a message that
// quotes it and shows an example, and that the error matches ErrInvalidSize.
func TestParseSize_Refuses(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string
	}{
		{"12zb", `invalid memory "12zb": unknown unit "zb"; use a number with a unit, e.g. 256mb or 2gb`},
		{"", `invalid memory "": it is empty; use a number with a unit, e.g. 256mb or 2gb`},
		{"   ", `invalid memory "   ": it is empty; use a number with a unit, e.g. 256mb or 2gb`},
		{"0", `invalid memory "0": it must be more than zero; use a number with a unit, e.g. 256mb or 2gb`},
		{"0mb", `invalid memory "0mb": it must be more than zero; use a number with a unit, e.g. 256mb or 2gb`},
		{"0.1b", `invalid memory "0.1b": it must be more than zero; use a number with a unit, e.g. 256mb or 2gb`},
		{"-1gb", `invalid memory "-1gb": it must be more than zero; use a number with a unit, e.g. 256mb or 2gb`},
		{"lots", `invalid memory "lots": use a number with a unit, e.g. 256mb or 2gb`},
		{"gb", `invalid memory "gb": use a number with a unit, e.g. 256mb or 2gb`},
		{"+1gb", `invalid memory "+1gb": use a number with a unit, e.g. 256mb or 2gb`},
		{"1.2.3gb", `invalid memory "1.2.3gb": "1.2.3" is not a number; use a number with a unit, e.g. 256mb or 2gb`},
		{".5gb", `invalid memory ".5gb": ".5" is not a number; use a number with a unit, e.g. 256mb or 2gb`},
		{"1.gb", `invalid memory "1.gb": "1." is not a number; use a number with a unit, e.g. 256mb or 2gb`},
		{"1e9", `invalid memory "1e9": unknown unit "e9"; use a number with a unit, e.g. 256mb or 2gb`},
		{"1 2gb", `invalid memory "1 2gb": unknown unit "2gb"; use a number with a unit, e.g. 256mb or 2gb`},
		{"8388608tb", `invalid memory "8388608tb": it is too large; use a number with a unit, e.g. 256mb or 2gb`},
		{"9223372036854775808", `invalid memory "9223372036854775808": it is too large; use a number with a unit, e.g. 256mb or 2gb`},
		{"99999999999999999999999999gb", `invalid memory "99999999999999999999999999gb": it is too large; use a number with a unit, e.g. 256mb or 2gb`},
		{strings.Repeat("9", 33), `invalid memory "` + strings.Repeat("9", 32) + `…": it is longer than 32 characters; use a number with a unit, e.g. 256mb or 2gb`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if err == nil {
				t.Fatalf("ParseSize(%q) = %d, want an error", tt.in, got)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("ParseSize(%q) error\n got %s\nwant %s", tt.in, err, tt.wantMsg)
			}
			if !errors.Is(err, ErrInvalidSize) {
				t.Errorf("error does not match ErrInvalidSize")
			}
		})
	}
}

// TestParseSize_Limit proves the largest int64 is accepted and one more is
// not, so overflow can never wrap into a small or negative plan.
func TestParseSize_Limit(t *testing.T) {
	if got, err := ParseSize("9223372036854775807"); err != nil || got != math.MaxInt64 {
		t.Errorf("ParseSize(MaxInt64) = %d, %v", got, err)
	}
	if got, err := ParseSize("8388607.9tb"); err != nil || got <= 0 {
		t.Errorf("ParseSize(8388607.9tb) = %d, %v", got, err)
	}
}

// TestFormatSize proves sizes print in the largest binary unit with at most
// one decimal, and never as "1024 KiB".
func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{MiB - 1, "1 MiB"},
		{256 * MiB, "256 MiB"},
		{GiB, "1 GiB"},
		{GiB + 300*MiB, "1.3 GiB"},
		{GiB + GiB/2, "1.5 GiB"},
		{16000 * MiB, "15.6 GiB"},
		{3 * TiB, "3 TiB"},
		{math.MaxInt64, "8 EiB"},
		{-512 * MiB, "-512 MiB"},
		{math.MinInt64, "-8 EiB"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFormatSize_RoundTrip proves what FormatSize prints for whole MiB and
// GiB figures reads back through ParseSize to the same size.
func TestFormatSize_RoundTrip(t *testing.T) {
	for _, n := range []int64{16 * MiB, 256 * MiB, 700 * MiB, GiB, 2 * GiB, GiB + GiB/2, 64 * KiB, 100} {
		got, err := ParseSize(FormatSize(n))
		if err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), got, err)
		}
	}
}

// TestFlagSize proves suggested --memory values never exceed the room they
// were computed from and parse back to the bytes claimed.
func TestFlagSize(t *testing.T) {
	tests := []struct {
		in      int64
		wantStr string
	}{
		{789*MiB + 333, "789mb"},
		{16 * MiB, "16mb"},
		{GiB, "1gb"},
		{GiB - 1, "1023mb"},
		{GiB + GiB/2, "1.5gb"},
		{GiB + GiB/2 - 1, "1.4gb"},
		{10 * GiB, "10gb"},
		{MiB - 1, "0mb"},
	}
	for _, tt := range tests {
		s, v := flagSize(tt.in)
		if s != tt.wantStr {
			t.Errorf("flagSize(%d) = %q, want %q", tt.in, s, tt.wantStr)
		}
		if v > tt.in {
			t.Errorf("flagSize(%d) = %d, above the input", tt.in, v)
		}
		if v > 0 {
			if p, err := ParseSize(s); err != nil || p != v {
				t.Errorf("ParseSize(%q) = %d, %v; flagSize claimed %d", s, p, err, v)
			}
		}
	}
}

// TestFormatPair proves that two different sizes never print the same in
// one message.
func TestFormatPair(t *testing.T) {
	tests := []struct {
		a, b         int64
		wantA, wantB string
	}{
		{GiB + 16*MiB, GiB, "1.02 GiB", "1 GiB"},
		{GiB + 1, GiB, "1073741825 bytes", "1073741824 bytes"},
		{256 * MiB, 256 * MiB, "256 MiB", "256 MiB"},
		{3 * GiB, GiB, "3 GiB", "1 GiB"},
	}
	for _, tt := range tests {
		sa, sb := formatPair(tt.a, tt.b)
		if sa != tt.wantA || sb != tt.wantB {
			t.Errorf("formatPair(%d, %d) = %q, %q; want %q, %q", tt.a, tt.b, sa, sb, tt.wantA, tt.wantB)
		}
	}
}

// A size over MaxSizeText characters is refused before any arithmetic:
// parsing a 512 KiB number used to take most of a second of CPU.
func TestParseSize_RefusesLongInputCheaply(t *testing.T) {
	huge := strings.Repeat("9", 512<<10) + "gb"
	res := testing.Benchmark(func(b *testing.B) {
		for range b.N {
			if _, err := ParseSize(huge); err == nil {
				b.Fatal("a 512 KiB size was accepted")
			}
		}
	})
	// Refused without reading the number: no allocation that grows with it.
	if per := res.AllocedBytesPerOp(); per > 4096 {
		t.Errorf("refusing a 512 KiB size allocates %d bytes per call; want it refused before the number is read", per)
	}
}

// FuzzParseSize: whatever the input, ParseSize never panics, never returns
// a size of zero or less without an error, and a size it accepts (below
// a PiB, the largest unit it reads) prints back (FormatSize) as text it
// accepts again.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"256mb", "1.5gb", "0", "-1", "9223372036854775807", "8388607.9tb", "1 2gb", "256 MiB", ".5", strings.Repeat("9", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("ParseSize(%q) error %v does not wrap ErrInvalidSize", s, err)
			}
			return
		}
		if n <= 0 {
			t.Fatalf("ParseSize(%q) = %d with no error", s, n)
		}
		if len(s) > MaxSizeText {
			t.Fatalf("ParseSize accepted %d characters", len(s))
		}
		if _, err := ParseSize(FormatSize(n)); err != nil && n < PiB {
			t.Fatalf("ParseSize(FormatSize(%d) = %q): %v", n, FormatSize(n), err)
		}
	})
}
