package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

func newDBReplicateCmd(g *globals) *cobra.Command {
	var req api.CreateDatabaseRequest
	var fromFile string
	cmd := &cobra.Command{
		Use:   "replicate SOURCE NEW [--node NODE] | replicate NEW --from URL",
		Short: "Create a linked replica: a database of its own that follows another",
		Long: `Create NEW as a linked replica: its own name, password and URL, following
SOURCE (a database of this cluster) or an external Redis (--from). Version,
flavor and memory default to the source's. It stays read-only while it
follows; "db promote NEW" makes it a writable primary for good, and
"db unlink NEW" stops it following without making it writable.

--from takes redis://:PASSWORD@HOST:PORT. The URL holds a password: prefer
--from-file, a file holding the URL, to keep it out of argv and shell history.`,
		Example: `  redis-appliance db replicate orders orders-copy --node host2
  redis-appliance db replicate legacy --from-file /root/legacy.url
  redis-appliance db replicate legacy --from redis://:PW@10.0.0.9:6379`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			if fromFile != "" {
				if req.FromURL != "" {
					return fmt.Errorf("give --from or --from-file, not both")
				}
				b, err := os.ReadFile(fromFile)
				if err != nil {
					return fmt.Errorf("read --from-file: %w", err)
				}
				req.FromURL = strings.TrimSpace(string(b))
			}
			switch {
			case req.FromURL != "" && len(args) == 1:
				req.Name = args[0]
			case req.FromURL == "" && len(args) == 2:
				req.Follows, req.Name = args[0], args[1]
			case req.FromURL != "":
				return fmt.Errorf("with --from, give only the new database's name; see --help")
			default:
				return fmt.Errorf("give the source database and the new database's name (or NEW --from URL); see --help")
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
	cmd.Flags().StringVar(&req.FromURL, "from", "", "follow an external Redis: redis://:PASSWORD@HOST:PORT")
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read the --from URL from this file (keeps the password out of argv)")
	cmd.Flags().StringVar(&req.Memory, "memory", "", "memory plan (default: the source's)")
	cmd.Flags().StringVar(&req.Flavor, "flavor", "", "persistence: aof, rdb or nordb (default: the source's, aof for --from)")
	cmd.Flags().StringVar(&req.Version, "version", "", "Redis version (default: the source's)")
	cmd.Flags().StringVar(&req.Node, "node", "", "place it on this node (default: the node with the most free memory)")
	cmd.Flags().IntVar(&req.Replicas, "replicas", 0, "replicas of the new database, each on another node")
	addOutput(cmd, g)
	return cmd
}

func newDBPromoteCmd(g *globals) *cobra.Command {
	return dbLinkCmd(g, "promote NAME", "Make a linked (or unlinked) replica a standalone, writable primary",
		`Stop NAME following its source and let it take writes. The promotion is
recorded in the cluster state, so restarting redis-server, the agent or the
host never makes it follow again.`,
		(*api.Client).PromoteDatabase,
		func(db api.Database) string {
			return fmt.Sprintf("database %s promoted: a writable primary at epoch %d", db.Name, db.Epoch)
		})
}

func newDBUnlinkCmd(g *globals) *cobra.Command {
	return dbLinkCmd(g, "unlink NAME", "Stop a linked replica following its source; it keeps its data, read-only", "",
		(*api.Client).UnlinkDatabase,
		func(db api.Database) string {
			return fmt.Sprintf("database %s unlinked: it follows nothing and refuses writes until promoted", db.Name)
		})
}

// dbLinkCmd is promote or unlink: one database name in, the database out
// (-o json), or a sentence on stderr.
func dbLinkCmd(g *globals, use, short, long string, call func(*api.Client, context.Context, string) (api.Database, error), done func(api.Database) string) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			db, err := call(g.client(), cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(db)
			}
			fmt.Fprintln(os.Stderr, done(db))
			return nil
		},
	}
	addOutput(cmd, g)
	return cmd
}

func newDBFailoverCmd(g *globals) *cobra.Command {
	var req api.FailoverRequest
	cmd := &cobra.Command{
		Use:   "failover NAME [--to NODE]",
		Short: "Planned switchover: make a replica the primary without losing a write",
		Long: `Pause writes on the primary, wait until the chosen replica has every write
the primary acknowledged, record the new primary (a new epoch) in the
cluster state, repoint the other instances and disconnect the clients still
on the old primary, then resume. Without --to, the most up-to-date replica is
chosen. A replica that is down or lagging is refused, and nothing changes.`,
		Example: `  redis-appliance db failover sessions --to host3`,
		Args:    exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			res, err := g.client().FailoverDatabase(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(res)
			}
			fmt.Fprintf(os.Stderr, "database %s: primary moved from %s to %s (epoch %d); writes paused %.1f ms\n",
				res.Database.Name, res.From, res.To, res.Database.Epoch, res.WritePauseMs)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.To, "to", "", "node whose replica becomes the primary (default: the most up-to-date replica)")
	addOutput(cmd, g)
	return cmd
}
