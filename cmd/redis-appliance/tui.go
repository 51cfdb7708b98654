package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/tui"
)

func newTUICmd(g *globals) *cobra.Command {
	var opts tui.Options
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Terminal UI: the cluster, its nodes and databases, live; create, restart, delete, drain",
		Long: `tui shows the cluster at a glance and acts on it: nodes with their health
and memory and disk gauges, databases with their state and memory, a
database's instances and connection URL. It refreshes every second and says
how old the data on screen is; when the agent cannot be reached or the
cluster has no leader, a banner says so.

Keys: 1 2 3 switch views, enter opens, / filters, s sorts, n creates a
database, R restarts, D deletes (type the name), d drains a node, r reveals
a password, ? lists every key, q quits.

Colours follow the terminal; NO_COLOR=1 turns them off.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := g.client()
			defer c.Close()
			opts.Endpoint = g.socket
			return tui.Run(cmd.Context(), c, opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Refresh, "refresh", time.Second, "how often to fetch the data (100ms or more)")
	cmd.Flags().StringVar(&opts.LogFile, "log-file", "", "append the UI's diagnostics to this file (the UI never writes logs to the terminal)")
	return cmd
}
