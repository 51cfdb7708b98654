package api

import (
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// errorLogEvery is how often the HTTP server's own errors (failed TLS
// handshakes, mostly) reach the log: a flood of refused connections must
// not fill the journal, yet the first one, and how many followed, should
// be seen.
const errorLogEvery = 10 * time.Second

// errorLog turns net/http's error log into slog warnings, at most one per
// errorLogEvery, with the count of those left out since the last.
type errorLog struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func newErrorLog(l *slog.Logger) *log.Logger {
	return log.New(&errorLog{log: l, now: time.Now}, "", 0)
}

func (e *errorLog) Write(p []byte) (int, error) {
	e.mu.Lock()
	now := e.now()
	if !e.last.IsZero() && now.Sub(e.last) < errorLogEvery {
		e.dropped++
		e.mu.Unlock()
		return len(p), nil
	}
	dropped := e.dropped
	e.last, e.dropped = now, 0
	e.mu.Unlock()
	e.log.Warn("cluster API: "+strings.TrimSpace(string(p)), "similar_left_out", dropped)
	return len(p), nil
}
