package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// newClusterRecoverCmd is `cluster recover`: the offline, peers.json-style
// way out of a lost quorum. It works on this node's files, not through the
// API, because a cluster without quorum cannot commit the change itself.
func newClusterRecoverCmd() *cobra.Command {
	var path string
	var voters []string
	cmd := &cobra.Command{
		Use:   "recover --voters NODE[,NODE...] [--config FILE]",
		Short: "Recover a cluster that lost quorum: make the listed surviving nodes its only voters",
		Long: `Recover a cluster that lost quorum. Use it only when more than half of the
voters are gone for good (2 of 3, 3 of 5): then no leader can be elected
and nothing, not even "node remove", can be committed. While a majority is
alive, replace nodes with "node remove" and "cluster join" instead.

It rewrites this node's Raft configuration, offline, so that exactly the
nodes given with --voters are the cluster's voters; the replicated state
(databases, nodes) is kept as this node has it. It must run with the agent
stopped (systemctl stop redis-appliance); while the agent runs it refuses.

Steps:
  1. stop the agent on every node that is still up;
  2. choose the survivors to keep (the nodes with the most recent state,
     normally all that still have their disks);
  3. run this command with the SAME --voters on every one of them;
  4. start their agents: the survivors elect a leader among themselves;
  5. nodes NOT listed must never start again with their old state (they
     would hold an old configuration and an old copy of the state): keep
     their agent stopped, run "node remove NAME" for each (--force if it
     held databases), move their data_dir aside, and join them again with
     a new token ("cluster token", "cluster join").

See docs/cluster.md.`,
		Example: `  systemctl stop redis-appliance
  redis-appliance cluster recover --voters lab1,lab3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
				return fmt.Errorf("log_level %q: %w", cfg.LogLevel, err)
			}
			// Logs go to stderr; the outcome and next steps to stdout.
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			res, err := raftstate.Recover(raftstate.Config{
				NodeName:      cfg.NodeName,
				Dir:           cfg.RaftDir(),
				BindAddr:      cfg.RaftAddr,
				AdvertiseAddr: cfg.RaftAdvertise(),
			}, voters, log)
			if err != nil {
				return fmt.Errorf("cluster recover on %s: %w", cfg.NodeName, err)
			}
			printRecovery(res, voters)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&voters, "voters", nil, "the surviving nodes to keep as voters, this one included, comma separated (required)")
	cmd.Flags().StringVar(&path, "config", "", "the agent's configuration file (default "+config.SystemPath+" if it exists)")
	_ = cmd.MarkFlagRequired("voters")
	return cmd
}

// printRecovery says what was written and what the operator does next.
func printRecovery(res raftstate.RecoverResult, voters []string) {
	var kept []string
	for _, v := range res.Voters {
		kept = append(kept, fmt.Sprintf("%s (%s)", v.ID, v.Address))
	}
	fmt.Printf("recovered node %s: the Raft configuration is now %d voter(s): %s\n", res.Node, len(res.Voters), strings.Join(kept, ", "))
	fmt.Printf("state at index %d with %d database(s) kept\n", res.LastIndex, res.Databases)
	listed := map[string]bool{}
	for _, v := range voters {
		listed[v] = true
	}
	var others, dropped []string
	for _, v := range voters {
		if v != res.Node {
			others = append(others, v)
		}
	}
	for _, p := range res.Previous {
		if !listed[p.ID] {
			dropped = append(dropped, p.ID)
		}
	}
	fmt.Println("\nnext steps:")
	step := 1
	if len(others) > 0 {
		fmt.Printf("  %d. run the same command on every other surviving node listed (%s), with their agents stopped:\n", step, strings.Join(others, ", "))
		fmt.Printf("       redis-appliance cluster recover --voters %s\n", strings.Join(voters, ","))
		step++
	}
	if step == 1 {
		fmt.Printf("  %d. start the agent: systemctl start redis-appliance\n", step)
	} else {
		fmt.Printf("  %d. then start the agents on all of them: systemctl start redis-appliance\n", step)
	}
	step++
	fmt.Printf("  %d. check: redis-appliance cluster status\n", step)
	step++
	if len(dropped) > 0 {
		fmt.Printf("  %d. never start the nodes left out (%s) with their old state: keep their agents stopped;\n", step, strings.Join(dropped, ", "))
		fmt.Println("     for each, once the cluster has a leader, run (--force if it held databases: it deletes them)")
		fmt.Println("       redis-appliance node remove NAME")
		fmt.Println("     then move its data_dir aside and join it again with a new token (cluster token, cluster join)")
	}
}
