package main

import (
	"github.com/spf13/cobra"
)

func newEventsCmd(g *globals) *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "events [--db NAME]",
		Short: "List what the cluster recorded: failures detected, failovers, refusals, fences, nodes lost and back",
		Long: `List the recorded events, oldest first: every detection of a failed primary,
every promotion, every refusal to fail over (and why), every fence and
un-fence of a node's primaries, nodes lost and back, switchovers. The
cluster keeps the last 1000.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			evs, err := g.client().Events(cmd.Context())
			if err != nil {
				return err
			}
			kept := evs[:0]
			for _, e := range evs {
				if database == "" || e.Database == database {
					kept = append(kept, e)
				}
			}
			if g.output == "json" {
				return printJSON(kept)
			}
			t := newTable("TIME", "KIND", "DATABASE", "NODE", "MESSAGE")
			for _, e := range kept {
				t.row(e.At.Local().Format("2006-01-02 15:04:05.000"), e.Kind, dash(e.Database), dash(e.Node), e.Message)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&database, "db", "", "only events about this database")
	addOutput(cmd, g)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
