package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/sizing"
)

func newVersionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "The version catalogue: status, deprecation and EOL dates, installed or not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			rows, err := g.client().Versions(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(rows)
			}
			t := newTable("VERSION", "STATUS", "DEPRECATED", "EOL", "INSTALLED", "DEFAULT")
			for _, r := range rows {
				inst := "no"
				if r.Installed {
					inst = joinNonEmpty(" ", r.Full, r.Path)
				}
				def := ""
				if r.Default {
					def = "*"
				}
				t.row(r.Version, r.Status, r.Deprecated, r.EndOfLife, inst, def)
			}
			return t.flush()
		},
	}
	addOutput(cmd, g)
	return cmd
}

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "This host's hardware and allocations"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Memory, swap, disk, CPUs, and what is allocated on this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			n, err := g.client().Node(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(n)
			}
			hw := n.Hardware
			f := sizing.FormatSize
			t := newTable()
			t.row("Node:", n.Name)
			t.row("Supervisor:", n.Supervisor)
			t.row("CPUs:", hw.CPUs)
			t.row("Memory:", fmt.Sprintf("%s total, %s available", f(hw.MemTotal), f(hw.MemAvailable)))
			t.row("Swap:", fmt.Sprintf("%s total, %s free", f(hw.SwapTotal), f(hw.SwapFree)))
			t.row("Disk:", fmt.Sprintf("%s total, %s free (%s)", f(hw.DiskTotal), f(hw.DiskFree), hw.DiskPath))
			t.row("Reserved:", fmt.Sprintf("%s memory, %s disk (OS and agent)", f(n.ReservedMemory), f(n.ReservedDisk)))
			t.row("Allocated:", fmt.Sprintf("%s memory, %s disk", f(n.AllocatedMemory), f(n.AllocatedDisk)))
			t.row("Free for plans:", fmt.Sprintf("%s memory, %s disk", f(n.FreeMemory), f(n.FreeDisk)))
			t.row("Instances:", n.Databases)
			return t.flush()
		},
	}
	addOutput(show, g)
	cmd.AddCommand(show)
	return cmd
}

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Cluster membership and Raft state"}
	status := &cobra.Command{
		Use:   "status",
		Short: "This node's view of the cluster: Raft role, leader, voters, index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			s, err := g.client().ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(s)
			}
			t := newTable()
			t.row("Node:", s.Node)
			t.row("Bootstrapped:", s.Bootstrapped)
			t.row("Raft state:", s.RaftState)
			t.row("Leader:", s.Leader)
			t.row("Voters:", s.Voters)
			t.row("Index:", fmt.Sprintf("%d applied of %d", s.AppliedIndex, s.LastIndex))
			return t.flush()
		},
	}
	addOutput(status, g)
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Make this node a new cluster (for agents configured with bootstrap: manual)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.client().ClusterInit(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Printf("cluster initialised: node %s is the leader of %d voter(s)\n", s.Node, s.Voters)
			return nil
		},
	}
	cmd.AddCommand(status, initCmd)
	return cmd
}
