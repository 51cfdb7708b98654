package sentinel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits on one request. Redis allows far more (a 512 MiB bulk), but
// discovery needs a handful of short words, so anything larger is a confused
// or hostile client and must not make us allocate for it.
const (
	maxArgs      = 1024
	maxBulkLen   = 64 << 10
	maxInlineLen = 64 << 10
	// maxHeaderLen bounds a "*N" or "$N" line: a count never needs more.
	maxHeaderLen = 32
)

// protocolError is a malformed request. It is answered with
// "-ERR Protocol error: ..." and the connection is closed, as Redis does,
// because the rest of the stream can no longer be framed.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "Protocol error: " + e.msg }

// readCommand reads one request: a RESP array of bulk strings, or an inline
// command line (what telnet and some redis-cli paths send). An empty request
// ("*0", a blank line) returns no arguments and no error; callers skip it.
func readCommand(r *bufio.Reader) ([]string, error) {
	first, err := r.Peek(1)
	if err != nil {
		return nil, err
	}
	if first[0] != '*' {
		return readInline(r)
	}
	_, _ = r.Discard(1)
	line, err := readLine(r, maxHeaderLen, "too big mbulk count string")
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(line)
	if err != nil || n > maxArgs {
		return nil, &protocolError{"invalid multibulk length"}
	}
	if n <= 0 {
		return nil, nil
	}
	args := make([]string, 0, n)
	for range n {
		c, err := r.ReadByte()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		if c != '$' {
			return nil, &protocolError{fmt.Sprintf("expected '$', got '%c'", c)}
		}
		line, err := readLine(r, maxHeaderLen, "too big bulk count string")
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(line)
		if err != nil || size < 0 || size > maxBulkLen {
			return nil, &protocolError{"invalid bulk length"}
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, unexpectedEOF(err)
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return nil, &protocolError{"bulk string not terminated by CRLF"}
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}

func readInline(r *bufio.Reader) ([]string, error) {
	line, err := readLine(r, maxInlineLen, "too big inline request")
	if err != nil {
		return nil, err
	}
	args, ok := splitArgs(line)
	if !ok {
		return nil, &protocolError{"unbalanced quotes in request"}
	}
	if len(args) > maxArgs {
		return nil, &protocolError{"invalid multibulk length"}
	}
	return args, nil
}

// readLine reads up to and including '\n' and returns the line without its
// "\r\n" or "\n". A line longer than limit is a protocol error named by
// tooLong, found before more than limit bytes are kept.
func readLine(r *bufio.Reader, limit int, tooLong string) (string, error) {
	var acc []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(acc)+len(chunk) > limit+2 {
			return "", &protocolError{tooLong}
		}
		acc = append(acc, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if len(acc) > 0 {
				return "", unexpectedEOF(err)
			}
			return "", err
		}
		break
	}
	acc = acc[:len(acc)-1]
	if n := len(acc); n > 0 && acc[n-1] == '\r' {
		acc = acc[:n-1]
	}
	return string(acc), nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// splitArgs splits an inline command the way Redis's sdssplitargs does:
// words separated by blanks, "double quotes" with C escapes (\n, \xHH...),
// 'single quotes' with only \' escaped. A closing quote must end the word.
// It reports false for unbalanced quotes.
func splitArgs(line string) ([]string, bool) {
	var args []string
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			return args, true
		}
		var word []byte
		inDouble, inSingle := false, false
	word:
		for {
			switch {
			case inDouble:
				if i == len(line) {
					return nil, false
				}
				c := line[i]
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					word = append(word, hexVal(line[i+2])<<4|hexVal(line[i+3]))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					word = append(word, unescape(line[i]))
				case c == '"':
					if i+1 < len(line) && !isBlank(line[i+1]) {
						return nil, false
					}
					i++
					break word
				default:
					word = append(word, c)
				}
			case inSingle:
				if i == len(line) {
					return nil, false
				}
				c := line[i]
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					word = append(word, '\'')
				case c == '\'':
					if i+1 < len(line) && !isBlank(line[i+1]) {
						return nil, false
					}
					i++
					break word
				default:
					word = append(word, c)
				}
			default:
				if i == len(line) {
					break word
				}
				switch c := line[i]; {
				case isBlank(c):
					i++
					break word
				case c == '"':
					inDouble = true
				case c == '\'':
					inSingle = true
				default:
					word = append(word, c)
				}
			}
			i++
		}
		args = append(args, string(word))
	}
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	default:
		return c
	}
}

// The append* functions encode RESP2 replies onto b, in the manner of
// strconv.Append*, so that one reply is built in one buffer and queued whole.

func appendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendError encodes an error reply. msg starts with the error code
// ("ERR", "NOAUTH"...). Line breaks become spaces, as in Redis, because an
// error echoes client input and must stay one line.
func appendError(b []byte, msg string) []byte {
	b = append(b, '-')
	b = append(b, strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)...)
	return append(b, '\r', '\n')
}

func appendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

func appendBulk(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func appendNullBulk(b []byte) []byte { return append(b, "$-1\r\n"...) }

// appendNullArray encodes RESP2's "*-1": what Sentinel answers for an
// address it does not know.
func appendNullArray(b []byte) []byte { return append(b, "*-1\r\n"...) }

func appendArrayLen(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendBulks encodes an array of bulk strings.
func appendBulks(b []byte, ss ...string) []byte {
	b = appendArrayLen(b, len(ss))
	for _, s := range ss {
		b = appendBulk(b, s)
	}
	return b
}
