package api

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestErrorLog_AFloodOfHandshakeErrorsIsOneLinePerPeriod: a thousand
// refused handshakes make one log line, then one more with the count of
// those left out once the period has passed.
func TestErrorLog_AFloodOfHandshakeErrorsIsOneLinePerPeriod(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	e := &errorLog{log: slog.New(slog.NewTextHandler(&buf, nil)), now: func() time.Time { return now }}
	for range 1000 {
		_, _ = e.Write([]byte("http: TLS handshake error from 127.0.0.1:1: remote error: tls: bad certificate\n"))
	}
	now = now.Add(errorLogEvery)
	_, _ = e.Write([]byte("http: TLS handshake error from 127.0.0.1:2: EOF\n"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "similar_left_out=0") || !strings.Contains(lines[1], "similar_left_out=999") {
		t.Errorf("log:\n%s", buf.String())
	}
}
