package sizing

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Binary size units. Every size the appliance reads or prints is binary:
// "1mb" is 1 MiB, 1048576 bytes.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

const maxInt64 = math.MaxInt64

// ErrInvalidSize is wrapped by every error ParseSize returns, so the API can
// answer "bad request" without matching on text.
var ErrInvalidSize = errors.New("invalid size")

type sizeError struct {
	input  string
	reason string
}

func (e *sizeError) Error() string {
	msg := fmt.Sprintf("invalid memory %q: ", e.input)
	if e.reason != "" {
		msg += e.reason + "; "
	}
	return msg + "use a number with a unit, e.g. 256mb or 2gb"
}

func (e *sizeError) Unwrap() error { return ErrInvalidSize }

// units maps every accepted suffix to its multiplier. All are binary, unlike
// redis.conf where "1m" means 10^6 and "1mb" 2^20: users should not have to
// know that distinction, and the appliance writes maxmemory to redis.conf in
// plain bytes, so redis never sees these suffixes.
var units = map[string]int64{
	"": 1, "b": 1,
	"k": KiB, "kb": KiB, "kib": KiB,
	"m": MiB, "mb": MiB, "mib": MiB,
	"g": GiB, "gb": GiB, "gib": GiB,
	"t": TiB, "tb": TiB, "tib": TiB,
}

// MaxSizeText is the longest size text ParseSize reads.
const MaxSizeText = 32

// ParseSize reads a size as users type it for --memory: a whole or decimal
// number with an optional binary unit, case-insensitive ("256mb", "1.5gb",
// "512m", "2G", "64kb", "1048576" bytes, and "256 MiB" as FormatSize prints
// it). Fractions of a byte are dropped. It refuses empty, zero, negative and
// unparsable input, input longer than MaxSizeText and sizes beyond int64,
// with an error wrapping ErrInvalidSize that shows the input and an
// example.
func ParseSize(s string) (int64, error) {
	if len(s) > MaxSizeText {
		// Before any arithmetic: a size is never this long, and exact
		// arithmetic on a long enough number costs real CPU.
		return 0, &sizeError{input: s[:MaxSizeText] + "…", reason: fmt.Sprintf("it is longer than %d characters", MaxSizeText)}
	}
	in := strings.ToLower(strings.TrimSpace(s))
	if in == "" {
		return 0, &sizeError{input: s, reason: "it is empty"}
	}
	if strings.HasPrefix(in, "-") {
		return 0, &sizeError{input: s, reason: "it must be more than zero"}
	}

	// Split "1.5 gb" into the number "1.5" and the unit "gb".
	end := 0
	for end < len(in) && (in[end] >= '0' && in[end] <= '9' || in[end] == '.') {
		end++
	}
	num, unit := in[:end], strings.TrimSpace(in[end:])
	if num == "" {
		return 0, &sizeError{input: s}
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || strings.Contains(frac, ".") || (hasDot && frac == "") {
		return 0, &sizeError{input: s, reason: fmt.Sprintf("%q is not a number", num)}
	}
	mult, ok := units[unit]
	if !ok {
		return 0, &sizeError{input: s, reason: fmt.Sprintf("unknown unit %q", unit)}
	}

	// Exact arithmetic: "1.1gb" must not become 1181116006.4 bytes through a
	// float and then be off by one depending on rounding.
	n, _ := new(big.Int).SetString(whole+frac, 10) // digits only, cannot fail
	n.Mul(n, big.NewInt(mult))
	n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if !n.IsInt64() {
		return 0, &sizeError{input: s, reason: "it is too large"}
	}
	v := n.Int64()
	if v <= 0 {
		return 0, &sizeError{input: s, reason: "it must be more than zero"}
	}
	return v, nil
}

var unitNames = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// FormatSize prints a byte count for people: the largest binary unit that
// keeps the figure at or above 1, with at most one decimal ("512 B",
// "256 MiB", "1.3 GiB"). Use ParseSize to read it back.
func FormatSize(n int64) string {
	return formatSize(n, 1)
}

func formatSize(n int64, decimals int) string {
	if n < 0 {
		if n == math.MinInt64 {
			return "-8 EiB"
		}
		return "-" + formatSize(-n, decimals)
	}
	if n < KiB {
		return strconv.FormatInt(n, 10) + " B"
	}
	i := 0
	for i+1 < len(unitNames) && n >= int64(1)<<(10*(i+1)) {
		i++
	}
	s := strconv.FormatFloat(float64(n)/float64(int64(1)<<(10*i)), 'f', decimals, 64)
	// 1048575 bytes is 1023.999 KiB, which rounds to "1024.0": say 1 MiB.
	if f, _ := strconv.ParseFloat(s, 64); f >= 1024 && i+1 < len(unitNames) {
		i++
		s = strconv.FormatFloat(float64(n)/float64(int64(1)<<(10*i)), 'f', decimals, 64)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s + " " + unitNames[i]
}

// formatPair prints two sizes that are about to be compared in a message
// with enough precision that they differ on screen when they differ in
// fact, so no one reads "needs 1 GiB but has 1 GiB free".
func formatPair(a, b int64) (string, string) {
	for d := 1; d <= 3; d++ {
		sa, sb := formatSize(a, d), formatSize(b, d)
		if sa != sb || a == b {
			return sa, sb
		}
	}
	return strconv.FormatInt(a, 10) + " bytes", strconv.FormatInt(b, 10) + " bytes"
}

// flagSize returns the largest figure at most n that reads well as a
// --memory value, with the bytes it stands for: tenths of a GiB from 1 GiB
// up, whole MiB below. Suggestions round down so that they fit.
func flagSize(n int64) (string, int64) {
	if n >= GiB {
		tenths := n / (GiB / 10)
		// GiB/10 is not a whole number of bytes; step down until the
		// figure, as ParseSize reads it, is within n.
		for ; tenths > 0; tenths-- {
			s := strconv.FormatInt(tenths/10, 10)
			if tenths%10 != 0 {
				s += "." + strconv.FormatInt(tenths%10, 10)
			}
			s += "gb"
			if v, err := ParseSize(s); err == nil && v <= n {
				return s, v
			}
		}
	}
	mib := n / MiB
	return strconv.FormatInt(mib, 10) + "mb", mib * MiB
}

// addClamp and mulClamp do size arithmetic on non-negative values without
// wrapping around: a plan near the int64 limit must be refused as too big,
// not accepted because its need overflowed to a negative number.
func addClamp(a, b int64) int64 {
	if b > 0 && a > maxInt64-b {
		return maxInt64
	}
	return a + b
}

// subClamp is a - b for b >= 0, stopping at the smallest int64: an
// over-allocated node must stay short of room, not wrap around to plenty.
func subClamp(a, b int64) int64 {
	if b > 0 && a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

func mulClamp(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > maxInt64/b {
		return maxInt64
	}
	return a * b
}
