package systemd

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestNewPicksBySystemd proves "auto" follows Booted(): here, where systemd
// is not PID 1, it must fall back to child processes and say so loudly.
// (Inside the lab container TestDBusLab checks that "auto" picks systemd.)
func TestNewPicksBySystemd(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := New(ctx, KindAuto, "", t.TempDir(), log)
	if err != nil {
		t.Fatalf("New(auto): %v", err)
	}
	defer s.Close()
	if Booted() {
		if s.Kind() != KindSystemd {
			t.Fatalf("systemd is PID 1 but auto picked %q", s.Kind())
		}
		return
	}
	if s.Kind() != KindProcess {
		t.Fatalf("systemd is not PID 1 but auto picked %q", s.Kind())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "systemd is not PID 1") {
		t.Errorf("no warning about running without systemd; logs:\n%s", logs.String())
	}

	if _, err := New(ctx, KindSystemd, "", t.TempDir(), log); err == nil || !strings.Contains(err.Error(), "not PID 1") {
		t.Errorf("New(systemd) without systemd: %v", err)
	}
	if _, err := New(ctx, "docker", "", t.TempDir(), log); err == nil || !strings.Contains(err.Error(), `"process"`) {
		t.Errorf("New(docker): %v", err)
	}
	p, err := New(ctx, KindProcess, "", t.TempDir(), log)
	if err != nil || p.Kind() != KindProcess {
		t.Fatalf("New(process) = %v, %v", p, err)
	}
	p.Close()
}
