// Command redis-appliance is the agent daemon and the CLI that drives it.
// The CLI is thin: it parses flags, calls the API client and prints.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	socket string
	output string
}

func (g *globals) client() *api.Client { return api.NewClient(g.socket) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var e *api.Error
		if errors.As(err, &e) && e.Status == 404 {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "redis-appliance",
		Short: "Managed Redis databases on your own hosts",
		Long: `redis-appliance runs Redis databases as hardened systemd units, keeps the
cluster's control state in Raft, sizes databases from the hardware, and is
driven from this CLI, a terminal UI and an HTTP API.

Start the agent with "redis-appliance agent" (or systemctl start
redis-appliance), then create a database:

  redis-appliance db create cache --memory 256mb --flavor aof
  redis-cli -u "$(redis-appliance db url cache)" ping`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", config.DefaultSocket(), "the agent's API socket (env REDIS_APPLIANCE_SOCKET)")
	root.AddCommand(newAgentCmd(), newDBCmd(g), newVersionsCmd(g), newNodeCmd(g), newClusterCmd(g), newTUICmd(g), newEventsCmd(g))
	return root
}

// addOutput adds -o to a read command.
func addOutput(cmd *cobra.Command, g *globals) {
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
}

func checkOutput(g *globals) error {
	switch g.output {
	case "table", "json", "":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o table or -o json", g.output)
}
