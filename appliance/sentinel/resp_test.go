package sentinel

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReadCommand_ParsesArraysAndInlineCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want [][]string // one per request; nil for an empty request
	}{
		{"array", "*2\r\n$4\r\nPING\r\n$2\r\nab\r\n", [][]string{{"PING", "ab"}}},
		{"binary-safe bulk", "*1\r\n$5\r\na\r\nb\x00\r\n", [][]string{{"a\r\nb\x00"}}},
		{"empty bulk", "*2\r\n$4\r\nPING\r\n$0\r\n\r\n", [][]string{{"PING", ""}}},
		{"pipelined", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n", [][]string{{"PING"}, {"QUIT"}}},
		{"empty array is skipped", "*0\r\n*1\r\n$4\r\nPING\r\n", [][]string{nil, {"PING"}}},
		{"inline", "SENTINEL get-master-addr-by-name cache\r\n", [][]string{{"SENTINEL", "get-master-addr-by-name", "cache"}}},
		{"inline with bare LF and blanks", "  AUTH \t pw  \n", [][]string{{"AUTH", "pw"}}},
		{"inline blank line", "\r\nPING\r\n", [][]string{nil, {"PING"}}},
		{"inline double quotes and escapes", `PING "a b\n\x41\"" 'it\'s' ""` + "\r\n", [][]string{{"PING", "a b\nA\"", "it's", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in))
			for i, want := range tc.want {
				got, err := readCommand(r)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("request %d: got %q, want %q", i, got, want)
				}
			}
			if _, err := readCommand(r); err != io.EOF {
				t.Fatalf("after the last request: got %v, want EOF", err)
			}
		})
	}
}

func TestReadCommand_RefusesOversizedAndMalformedRequests(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"too many arguments", "*1025\r\n", "invalid multibulk length"},
		{"garbage count", "*x\r\n", "invalid multibulk length"},
		{"bulk over 64 KiB", "*1\r\n$65537\r\n", "invalid bulk length"},
		{"negative bulk", "*1\r\n$-1\r\n", "invalid bulk length"},
		{"not a bulk", "*1\r\n:1\r\n", "expected '$', got ':'"},
		{"bulk without CRLF", "*1\r\n$1\r\nabc\r\n", "bulk string not terminated by CRLF"},
		{"endless count line", "*" + strings.Repeat("1", 100) + "\r\n", "too big mbulk count string"},
		{"inline over 64 KiB", strings.Repeat("a", 70<<10) + "\r\n", "too big inline request"},
		{"unbalanced quotes", "PING \"abc\r\n", "unbalanced quotes in request"},
		{"closing quote inside a word", "PING \"a\"b\r\n", "unbalanced quotes in request"},
		{"too many inline words", strings.Repeat("a ", 1025) + "\r\n", "invalid multibulk length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readCommand(bufio.NewReader(strings.NewReader(tc.in)))
			var pe *protocolError
			if !errors.As(err, &pe) || pe.msg != tc.want {
				t.Fatalf("got %v, want protocol error %q", err, tc.want)
			}
		})
	}
}

func TestReadCommand_AcceptsLimits(t *testing.T) {
	big := strings.Repeat("x", maxBulkLen)
	in := string(appendBulks(nil, append([]string{big}, make([]string, maxArgs-1)...)...))
	got, err := readCommand(bufio.NewReader(strings.NewReader(in)))
	if err != nil {
		t.Fatalf("a request exactly at the limits: %v", err)
	}
	if len(got) != maxArgs || got[0] != big {
		t.Fatalf("got %d args", len(got))
	}
}

func TestReadCommand_TruncatedRequestIsUnexpectedEOF(t *testing.T) {
	for _, in := range []string{"*2\r\n$4\r\nPING\r\n", "*1\r\n$4\r\nPI", "PING"} {
		_, err := readCommand(bufio.NewReader(strings.NewReader(in)))
		if err != io.ErrUnexpectedEOF {
			t.Errorf("%q: got %v, want unexpected EOF", in, err)
		}
	}
}

func TestAppendReplies_EncodeRESP2(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{string(appendSimple(nil, "OK")), "+OK\r\n"},
		{string(appendError(nil, "ERR bad\r\ninput")), "-ERR bad  input\r\n"},
		{string(appendInt(nil, -42)), ":-42\r\n"},
		{string(appendBulk(nil, "")), "$0\r\n\r\n"},
		{string(appendBulk(nil, "a\r\nb")), "$4\r\na\r\nb\r\n"},
		{string(appendNullBulk(nil)), "$-1\r\n"},
		{string(appendNullArray(nil)), "*-1\r\n"},
		{string(appendBulks(nil, "127.0.0.1", "6379")), "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"},
		{string(appendBulks(nil)), "*0\r\n"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestGlobMatch_FollowsRedisPatterns(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "+switch-master", true},
		{"*", "", true},
		{"+switch-*", "+switch-master", true},
		{"+switch-*", "+sdown", false},
		{"*master", "+switch-master", true},
		{"+sw?tch-master", "+switch-master", true},
		{"+sw?tch-master", "+swtch-master", false},
		{"[+-]switch-master", "+switch-master", true},
		{"[^+]switch-master", "+switch-master", false},
		{"[a-z]*", "q/r", true}, // '*' crosses '/', unlike path.Match
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{strings.Repeat("*a", 30) + "b", strings.Repeat("a", 60), false}, // must not take exponential time
	} {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

// FuzzReadCommand checks that no input makes the parser panic or return
// more than the limits allow.
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{"*1\r\n$4\r\nPING\r\n", "PING \"a\\x41\" 'b'\r\n", "*-1\r\n", "$3\r\n", "*2\r\n$1\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := bufio.NewReader(strings.NewReader(in))
		for range 100 {
			args, err := readCommand(r)
			if err != nil {
				return
			}
			if len(args) > maxArgs {
				t.Fatalf("%d args", len(args))
			}
			for _, a := range args {
				if len(a) > maxInlineLen && len(a) > maxBulkLen {
					t.Fatalf("argument of %d bytes", len(a))
				}
			}
		}
	})
}
