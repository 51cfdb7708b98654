package e2e

// What the tests' writers, probes and in-host clients share.

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// paced is the loop of the e2e writers and probes: step(1), step(2), ...
// once every period, until limit steps were taken, maxRun has passed, stop
// is closed or ctx ends. Every load loop of the tests is bounded this way,
// in count and in time.
func paced(ctx context.Context, stop <-chan struct{}, every time.Duration, limit int, maxRun time.Duration, step func(i int)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.Now().Add(maxRun)
	for i := 1; i <= limit && time.Now().Before(deadline); i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		step(i)
	}
}

// startHostPython starts a python3 script inside h with the database
// password in its environment (never in argv) and returns the process, its
// stdin and stdout, and what it writes on stderr. what names it in errors.
func startHostPython(t testing.TB, ctx context.Context, h clusterHost, what, password, script string, args ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, *strings.Builder) {
	t.Helper()
	cmd := h.Command(ctx, append([]string{"/usr/bin/python3", "-c", script}, args...)...)
	cmd.Env = append(cmd.Env, "PW="+password)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s inside %s: %v", what, h.name, err)
	}
	return cmd, stdin, stdout, stderr
}

// readKeys reads keys on c in batches of 500 MGETs and returns their
// values in order (nil for a missing key).
func readKeys(ctx context.Context, c *redis.Client, keys []string) ([]any, error) {
	out := make([]any, 0, len(keys))
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		vals, err := c.MGet(ctx, batch...).Result()
		if err != nil {
			return nil, fmt.Errorf("MGET of %d acknowledged keys: %w", len(batch), err)
		}
		out = append(out, vals...)
	}
	return out, nil
}
