package main

import (
	"log/slog"
	"os"

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
			var level slog.Level
			if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return agent.Run(cmd.Context(), cfg, log, nil)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (default "+config.SystemPath+" if it exists)")
	cmd.Flags().BoolVar(&printDefault, "print-default-config", false, "print the documented default configuration and exit")
	return cmd
}
