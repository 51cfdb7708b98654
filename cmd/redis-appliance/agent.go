package main

import (
	"log/slog"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/agent"
	"github.com/redis-appliance/redis-appliance/appliance/config"
)

func newAgentCmd() *cobra.Command {
	var path string
	var printDefault bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the agent daemon on this host",
		Long: `Run the agent in the foreground. With no --config it reads
` + config.SystemPath + ` if present, else the embedded single-node
default: a fresh node makes itself a one-node cluster and serves its API on
a unix socket. Logs go to stderr (the journal under systemd).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printDefault {
				_, err := os.Stdout.Write(config.DefaultYAML())
				return err
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			cfg.AgentVersion = version
			var level slog.Level
			if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			oneProc()
			return agent.Run(cmd.Context(), cfg, log, nil)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (default "+config.SystemPath+" if it exists)")
	cmd.Flags().BoolVar(&printDefault, "print-default-config", false, "print the documented default configuration and exit")
	return cmd
}

// oneProc runs the agent's goroutines on one thread at a time unless
// GOMAXPROCS says otherwise. Its work is a few short bursts a second (a
// heartbeat, a Raft round trip), all of it waiting on the network or on
// systemd: with more than one P, the Go scheduler wakes a second thread to
// look for work at each burst, which was a quarter of an idle agent's
// context switches and a sixth of its CPU, for no gain in latency.
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
