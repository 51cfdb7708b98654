package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
)

func newDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Create, inspect and manage databases"}
	cmd.AddCommand(newDBCreateCmd(g), newDBListCmd(g), newDBShowCmd(g), newDBURLCmd(g), newDBRestartCmd(g), newDBDeleteCmd(g),
		newDBReplicateCmd(g), newDBPromoteCmd(g), newDBUnlinkCmd(g), newDBFailoverCmd(g),
		newDBUserCmd(g), newDBRotatePasswordCmd(g), newDBSaveCmd(g), newDBTLSCmd(g), newDBCACmd(g))
	return cmd
}

func newDBCreateCmd(g *globals) *cobra.Command {
	var req api.CreateDatabaseRequest
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "create NAME --memory SIZE [--flavor aof|rdb|nordb] [--version X.Y] [--replicas N]",
		Short: "Create a database and wait until it runs",
		Example: `  redis-appliance db create cache --memory 256mb --flavor aof
  redis-appliance db create sessions --memory 512mb --replicas 2   # a primary and 2 replicas on other nodes
  redis-appliance db create events --memory 1gb --flavor nordb --version 7.0`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			req.Name = args[0]
			if dryRun {
				plan, err := g.client().ValidateDatabase(cmd.Context(), req)
				if err != nil {
					return err
				}
				return printPlan(g, plan)
			}
			db, err := g.client().CreateDatabase(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := printDatabase(g, db); err != nil {
				return err
			}
			return notRunning(db)
		},
	}
	cmd.Flags().StringVar(&req.Memory, "memory", "", "memory plan (maxmemory), e.g. 256mb, 2gb (required)")
	cmd.Flags().StringVar(&req.Flavor, "flavor", "aof", "persistence: aof (AOF+RDB), rdb (RDB only), nordb (memory only)")
	cmd.Flags().StringVar(&req.Version, "version", "", "Redis version from `redis-appliance versions` (default: newest installed)")
	cmd.Flags().StringVar(&req.Node, "node", "", "place it on this node (default: the node with the most free memory)")
	cmd.Flags().IntVar(&req.Replicas, "replicas", 0, "replicas to keep, each on a node other than the primary's")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only ask the agent whether it would create it, and where: every check a create makes, nothing created")
	addOutput(cmd, g)
	return cmd
}

// printPlan shows where a create would go (db create --dry-run).
func printPlan(g *globals, p api.CreatePlan) error {
	if g.output == "json" {
		return printJSON(p)
	}
	db := p.Database
	fmt.Printf("would create %s: version %s, flavor %s, plan %s; each instance needs %s memory and %s disk on its node\n",
		db.Name, db.Version, db.Flavor, sizing.FormatSize(db.MemoryBytes), sizing.FormatSize(p.NeedMemory), sizing.FormatSize(p.NeedDisk))
	t := newTable("INSTANCE", "ROLE", "NODE", "ADDRESS")
	for _, in := range db.Instances {
		t.row(in.ID, in.Role, in.Node, net.JoinHostPort(in.Host, strconv.Itoa(in.Port)))
	}
	return t.flush()
}

// notRunning turns a database that did not reach running into an error.
func notRunning(db api.Database) error {
	if db.State == api.StateRunning {
		return nil
	}
	msg := fmt.Sprintf("database %s is %s", db.Name, db.State)
	for _, in := range db.Instances {
		if in.Error != "" {
			msg += ": " + in.Error
			break
		}
	}
	return fmt.Errorf("%s; see redis-appliance db show %s and journalctl -u %s", msg, db.Name, db.Unit)
}

func exactName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one database name, got %d arguments; see --help", cmd.CommandPath(), len(args))
	}
	return nil
}

func newDBListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List databases",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			dbs, err := g.client().ListDatabases(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(dbs)
			}
			t := newTable("NAME", "VERSION", "FLAVOR", "MEMORY", "USED", "PORT", "STATE", "REPLICAS", "OPS/S", "CLIENTS")
			for _, db := range dbs {
				t.row(db.Name, db.Version, db.Flavor, sizing.FormatSize(db.MemoryBytes), sizing.FormatSize(db.MemoryUsedBytes), db.Port, db.State,
					len(db.Instances)-1, db.OpsPerSec, db.Clients)
			}
			return t.flush()
		},
	}
	addOutput(cmd, g)
	return cmd
}

func newDBShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a database: version, flavor, plan, port, unit, state, memory used",
		Args:  exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			db, err := g.client().GetDatabase(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printDatabase(g, db)
		},
	}
	addOutput(cmd, g)
	return cmd
}

func printDatabase(g *globals, db api.Database) error {
	if g.output == "json" {
		return printJSON(db)
	}
	t := newTable()
	t.row("Name:", db.Name)
	t.row("Version:", db.Version)
	t.row("Flavor:", db.Flavor)
	t.row("Memory plan:", sizing.FormatSize(db.MemoryBytes))
	t.row("Memory used:", sizing.FormatSize(db.MemoryUsedBytes))
	t.row("Port:", db.Port)
	if db.TLS != "" {
		t.row("TLS port:", fmt.Sprintf("%d (%s; redis-appliance db url %s --tls, CA: redis-appliance db ca)", db.TLSPort, db.TLS, db.Name))
	}
	t.row("Unit:", db.Unit)
	t.row("State:", db.State)
	t.row("Ops/s, clients:", fmt.Sprintf("%d, %d (primary, observed every 2 s)", db.OpsPerSec, db.Clients))
	t.row("Epoch:", db.Epoch)
	if db.Follows != "" {
		t.row("Follows:", db.Follows)
	}
	if db.ReadOnly {
		t.row("Read-only:", "yes (unlinked; redis-appliance db promote "+db.Name+" makes it writable)")
	}
	if len(db.LinkedReplicas) > 0 {
		t.row("Linked replicas:", strings.Join(db.LinkedReplicas, ", "))
	}
	if db.FailoverStatus != "" {
		t.row("Failover:", db.FailoverStatus)
	}
	if db.PromotedAt != nil {
		t.row("Promoted:", db.PromotedAt.Format("2006-01-02 15:04:05 MST")+" (followed "+db.PromotedFrom+")")
	}
	t.row("Created:", db.CreatedAt.Format("2006-01-02 15:04:05 MST"))
	if db.AccessControl {
		t.row("Users:", fmt.Sprintf("default (admin) and %d more; redis-appliance db user list %s", len(db.Users), db.Name))
	} else {
		t.row("Users:", "default only, with every command (access control comes once every node runs this release)")
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Println()
	it := newTable("INSTANCE", "NODE", "ROLE", "ADDRESS", "STATE", "FOLLOWS", "LINK", "SYNC", "LAG", "LAST IO", "OFFSET", "PID", "RESTARTS", "SERVER")
	for _, in := range db.Instances {
		follows, link, sync, lag, io := "-", "-", "-", "-", "-"
		if r := in.Replication; r != nil {
			follows, link, sync, io = r.Primary, r.LinkStatus, "no", "-"
			if r.SyncInProgress {
				sync = "yes"
			}
			if r.LagBytes >= 0 {
				lag = sizing.FormatSize(r.LagBytes)
			}
			if r.LastIOSeconds >= 0 {
				io = fmt.Sprintf("%ds", r.LastIOSeconds)
			}
		}
		it.row(in.ID, in.Node, in.Role, fmt.Sprintf("%s:%d", in.Host, in.Port), in.State, follows, link, sync, lag, io, in.Offset, in.PID, in.Restarts, in.ServerVersion)
	}
	if err := it.flush(); err != nil {
		return err
	}
	for _, in := range db.Instances {
		if in.Error != "" {
			fmt.Printf("\n%s: %s\n", in.ID, in.Error)
		}
	}
	return nil
}

func newDBURLCmd(g *globals) *cobra.Command {
	var user string
	var useTLS bool
	cmd := &cobra.Command{
		Use:   "url NAME [--user USER]",
		Short: "Print the database's redis:// URL, password included",
		Long: `Print redis://default:PASSWORD@HOST:PORT/0 for the database's primary. It
works with redis-cli -u, go-redis, redis-py and ioredis. The URL holds the
password: keep it out of shell history and logs.

With --user, print the URL of an application user (db user create). Its
password was shown once, when the user was created or rotated, and is not
in this URL.`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			var u api.URL
			var err error
			switch {
			case useTLS && user != "":
				return fmt.Errorf("--tls and --user together are not available yet; use one")
			case useTLS:
				u, err = g.client().DatabaseTLSURL(cmd.Context(), args[0])
			case user != "":
				u, err = g.client().UserURL(cmd.Context(), args[0], user)
			default:
				u, err = g.client().DatabaseURL(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(u)
			}
			fmt.Println(u.URL)
			if user != "" {
				fmt.Fprintf(os.Stderr, "The password of %s is not shown again; redis-appliance db user rotate %s %s makes a new one.\n", user, args[0], user)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "an application user of the database (db user list)")
	cmd.Flags().BoolVar(&useTLS, "tls", false, "the rediss:// URL of the TLS port (verify it with the CA of redis-appliance db ca)")
	addOutput(cmd, g)
	return cmd
}

func newDBRestartCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restart NAME",
		Short: "Restart every instance of a database and wait until it runs",
		Args:  exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := g.client().RestartDatabase(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "database %s restarted: %s\n", db.Name, db.State)
			return nil
		},
	}
}

func newDBTLSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls NAME enable|off",
		Short: "Open a TLS port beside the plaintext one (enable), or close it (off)",
		Long: `enable gives every instance of the database a TLS port (TLS 1.2 and 1.3)
with a certificate of the cluster's database CA for this node's addresses;
clients verify it with the CA redis-appliance db ca prints, and reach it
with the URL of redis-appliance db url NAME --tls. off closes it. The
instances restart to take the change.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("%s takes a database name and a mode (enable or off), got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			db, err := g.client().SetDatabaseTLS(cmd.Context(), args[0], api.TLSRequest{Mode: args[1]})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(db)
			}
			fmt.Fprintf(os.Stderr, "database %s: TLS %s (port %d)\n", db.Name, orOff(db.TLS), db.TLSPort)
			return nil
		},
	}
	addOutput(cmd, g)
	return cmd
}

func orOff(mode string) string {
	if mode == "" {
		return "off"
	}
	return mode
}

func newDBCACmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ca",
		Short: "Print the database CA (PEM) that applications verify TLS ports with",
		Long: `Print the cluster's database CA. Give it to applications that connect with
rediss:// (redis-cli --tls --cacert FILE, go-redis tls.Config RootCAs,
redis-py ssl_ca_certs). It is not the cluster's own CA: trusting it grants
nothing inside the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := g.client().DatabaseCA(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Print(ca.CertPEM)
			return nil
		},
	}
}

func newDBSaveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "save NAME",
		Short: "Write the primary's data to its RDB file now (BGSAVE) and wait until it is on disk",
		Long: `Snapshot the database's primary to its dump.rdb now and wait until it is
written. Applications may not run SAVE or BGSAVE (docs/security.md); this is
the operator's way to make the files on disk current, for example before
copying them.`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			res, err := g.client().SaveDatabase(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(res)
			}
			fmt.Printf("%s saved on %s (%s) at %s in %.2fs\n", res.Database, res.Node, res.Instance, res.SavedAt.Format("2006-01-02 15:04:05 MST"), res.Seconds)
			return nil
		},
	}
	addOutput(cmd, g)
	return cmd
}

func newDBDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a database: its units, its config and its data",
		Args:  exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().DeleteDatabase(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "database %s deleted\n", args[0])
			return nil
		},
	}
}

// joinNonEmpty joins the non-empty parts.
func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
