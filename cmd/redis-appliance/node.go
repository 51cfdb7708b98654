package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/api"
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
			t := newTable("VERSION", "STATUS", "DEPRECATED", "EOL", "INSTALLED HERE", "NODES", "DEFAULT")
			for _, r := range rows {
				inst := "no"
				if r.Installed {
					inst = joinNonEmpty(" ", r.Full, r.Path)
				}
				nodes := strings.Join(r.Nodes, ",")
				if nodes == "" {
					nodes = "-"
				}
				def := ""
				if r.Default {
					def = "*"
				}
				t.row(r.Version, r.Status, r.Deprecated, r.EndOfLife, inst, nodes, def)
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
			t.row("Agent:", agentWord(n.AgentVersion, n.FeatureLevel))
			t.row("Redis versions:", versionsWord(n.Versions))
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
	list := &cobra.Command{
		Use:   "list",
		Short: "Every node: memory, disk, CPUs, allocated, free, databases, last contact",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			nodes, err := g.client().Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(nodes)
			}
			f := sizing.FormatSize
			t := newTable("NODE", "ADDRESS", "ROLE", "CPUS", "MEMORY", "FREE MEM", "DISK FREE", "DATABASES", "REDIS", "LAST CONTACT", "STATE")
			for _, n := range nodes {
				role := "follower"
				if n.Leader {
					role = "leader"
				}
				state := healthWord(n.Healthy, n.LastContactSeconds)
				if n.Draining {
					state = "draining"
				}
				t.row(n.Name, n.Address, role, n.Hardware.CPUs, f(n.Hardware.MemTotal), f(n.FreeMemory), f(n.FreeDisk), n.Databases, versionsWord(n.Versions), contactAge(n.LastContactSeconds), state)
			}
			return t.flush()
		},
	}
	addOutput(list, g)
	drain := &cobra.Command{
		Use:   "drain NAME",
		Short: "Stop placing new databases on a node and switch its primaries over to replicas elsewhere",
		Args:  exactNode,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := g.client().DrainNode(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "node %s is draining: no new databases go there\n", d.Node)
			if len(d.Moved) > 0 {
				fmt.Fprintf(os.Stderr, "primaries switched over to other nodes: %s\n", strings.Join(d.Moved, ", "))
			}
			if len(d.Remaining) > 0 {
				fmt.Fprintf(os.Stderr, "still there (replicas, and primaries with no healthy replica elsewhere): %s\n", strings.Join(d.Remaining, ", "))
			}
			return nil
		},
	}
	var force bool
	remove := &cobra.Command{
		Use:   "remove NAME [--force]",
		Short: "Remove a node from the cluster (refused while it holds the only copy of a database)",
		Args:  exactNode,
		RunE: func(cmd *cobra.Command, args []string) error {
			if force {
				fmt.Fprintf(os.Stderr, "WARNING: --force deletes every database whose only copy is on %s\n", args[0])
			}
			if err := g.client().RemoveNode(cmd.Context(), args[0], force); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "node %s removed\n", args[0])
			return nil
		},
	}
	remove.Flags().BoolVar(&force, "force", false, "remove even if it holds the only copy of databases, DELETING them")
	cmd.AddCommand(show, list, drain, remove)
	return cmd
}

func exactNode(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one node name, got %d arguments; see --help", cmd.CommandPath(), len(args))
	}
	return nil
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
			if s.RaftState != "leader" && s.Bootstrapped {
				t.row("Last contact:", contactAge(s.LastContactSeconds))
			}
			t.row("Agent:", agentWord(s.AgentVersion, s.FeatureLevel))
			if s.ClusterFeatureLevel != 0 {
				t.row("Cluster level:", fmt.Sprintf("%d (the lowest of the voters: commands above it wait for their upgrade)", s.ClusterFeatureLevel))
			}
			if s.UndecodableTotal > 0 {
				t.row("Not applied:", fmt.Sprintf("%d Raft entries this agent cannot decode (written by a newer agent): upgrade it; see docs/install.md", s.UndecodableTotal))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if len(s.Members) == 0 {
				return nil
			}
			fmt.Println()
			mt := newTable("MEMBER", "RAFT ADDRESS", "VOTER", "LEADER", "AGENT", "LAST CONTACT", "HEALTHY")
			for _, m := range s.Members {
				mt.row(m.Name, m.Address, m.Voter, m.Leader, agentWord(m.AgentVersion, m.FeatureLevel), contactAge(m.LastContactSeconds), healthWord(m.Healthy, m.LastContactSeconds))
			}
			return mt.flush()
		},
	}
	addOutput(status, g)
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Make this node a new cluster: CA, node certificate, secrets key; prints a join token",
		Long: `Make this node a new cluster with itself as the only voter (for agents
configured with bootstrap: manual). It creates the cluster CA, this node's
certificate and the key that seals secrets, and prints a first join token
for other hosts: redis-appliance cluster join ADDRESS --token TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			s, err := g.client().ClusterInit(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(s)
			}
			fmt.Printf("cluster initialised: node %s is the leader of %d voter(s)\n", s.Node, s.Voters)
			if s.Token != nil {
				printToken(*s.Token)
			}
			return nil
		},
	}
	addOutput(initCmd, g)
	var ttl string
	tokenCmd := &cobra.Command{
		Use:   "token",
		Short: "Create a join token (single use, expiring) for another host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			t, err := g.client().ClusterToken(cmd.Context(), api.TokenRequest{TTL: ttl})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(t)
			}
			printToken(t)
			return nil
		},
	}
	tokenCmd.Flags().StringVar(&ttl, "ttl", "1h", "how long the token is valid, e.g. 30m or 24h")
	addOutput(tokenCmd, g)
	var token, tokenFile string
	joinCmd := &cobra.Command{
		Use:   "join ADDRESS --token TOKEN",
		Short: "Join this host to the cluster a member at ADDRESS belongs to",
		Long: `Join this host (a fresh agent with bootstrap: manual) to a cluster. ADDRESS
is any member's cluster API, HOST or HOST:PORT (default port 7482). The
connection is TLS pinned to the cluster CA named in the token; the member
checks the token, and this node receives its certificate and the cluster's
keys and becomes a Raft voter.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("cluster join takes one member address, got %d arguments; see --help", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokenFile != "" {
				if token != "" {
					return fmt.Errorf("give the token with --token or --token-file, not both")
				}
				t, err := readTokenFile(tokenFile)
				if err != nil {
					return err
				}
				token = t
			}
			s, err := g.client().ClusterJoin(cmd.Context(), api.JoinClusterRequest{Addr: args[0], Token: token})
			if err != nil {
				return err
			}
			fmt.Printf("joined: node %s, leader %s, %d voter(s)\n", s.Node, s.Leader, s.Voters)
			return nil
		},
	}
	joinCmd.Flags().StringVar(&token, "token", "", "join token from `redis-appliance cluster token` (visible in ps; prefer --token-file)")
	joinCmd.Flags().StringVar(&tokenFile, "token-file", "", "read the join token from this file, or - for standard input")
	leaveCmd := &cobra.Command{
		Use:   "leave",
		Short: "Remove this node from its cluster (refused while it holds databases)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.client().ClusterLeave(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "this node left the cluster")
			return nil
		},
	}
	cmd.AddCommand(status, initCmd, tokenCmd, joinCmd, leaveCmd, newClusterRecoverCmd(), newClusterRotateKeyCmd(g))
	return cmd
}

// readTokenFile reads a join token from a file or standard input, so the
// secret need not appear on a command line.
func readTokenFile(path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read join token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func printToken(t api.TokenResponse) {
	fmt.Printf("join token (single use, expires %s):\n%s\n", t.Expires.Local().Format("2006-01-02 15:04 MST"), t.Token)
	fmt.Println("on another host: redis-appliance cluster join ADDRESS --token TOKEN")
}

func contactAge(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", s)
}

func healthWord(ok bool, age float64) string {
	switch {
	case ok:
		return "yes"
	case age < 0:
		return "unknown"
	}
	return "no"
}

// agentWord shows an agent's release and feature level; an agent too old
// to report them is level 1.
func agentWord(version string, level uint32) string {
	if version == "" {
		version = "unknown"
	}
	return fmt.Sprintf("%s (level %d)", version, max(level, 1))
}

// versionsWord lists the redis-server versions a node reported; "?" for an
// agent too old to report them.
func versionsWord(vs []string) string {
	switch {
	case vs == nil:
		return "?"
	case len(vs) == 0:
		return "none"
	}
	return strings.Join(vs, ",")
}
