// Package e2e tests the real redis-appliance binary inside hosts that run
// real systemd as PID 1 (systemd-nspawn containers, see package lab): the
// agent as its own unit, databases as hardened instance units, and what
// users notice when processes, the agent or the whole host die.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	// binary is the redis-appliance built for this test run.
	binary string
	// agentUnit is the agent's unit file as shipped in packaging/.
	agentUnit string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	agentUnit = filepath.Join(root, "packaging", "redis-appliance.service")
	if _, err := os.Stat(agentUnit); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the agent's unit file is missing: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "redis-appliance-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Build here rather than rely on `make build`, so `go test ./e2e/`
	// always tests the source it sits beside.
	binary = filepath.Join(dir, "redis-appliance")
	build := exec.Command("go", "build", "-o", binary, "./cmd/redis-appliance")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/redis-appliance: %v\n", err)
		return 1
	}
	return m.Run()
}
