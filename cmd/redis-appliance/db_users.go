package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

func newDBUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Application users of a database: create, list, rotate, delete",
		Long: `Application users are Redis ACL users on every instance of the database,
kept in the cluster state: they survive failover, restarts and restores.
Roles: read (+@read), write (+@all -@dangerous, with INFO), admin (what the
default user may do). No role may run what changes roles, persistence,
security or the fence; docs/security.md lists every command denied.
A password is shown once, when the user is created or rotated.`,
	}
	cmd.AddCommand(newDBUserCreateCmd(g), newDBUserListCmd(g), newDBUserRotateCmd(g), newDBUserDeleteCmd(g))
	return cmd
}

func twoNames(cmd *cobra.Command, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("%s takes a database name and a user name, got %d arguments; see --help", cmd.CommandPath(), len(args))
	}
	return nil
}

// printCredentials shows a password, once, with what to do with it.
func printCredentials(g *globals, c api.Credentials) error {
	if c.Warning != "" {
		fmt.Fprintln(os.Stderr, "warning: "+c.Warning)
	}
	if g.output == "json" {
		return printJSON(c)
	}
	t := newTable()
	t.row("Database:", c.Database)
	t.row("User:", c.User)
	t.row("Password:", c.Password)
	t.row("URL:", c.URL)
	if c.PreviousValidUntil != nil {
		t.row("Old password:", "works until "+c.PreviousValidUntil.Format("2006-01-02 15:04:05 MST"))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if c.User == "default" {
		fmt.Fprintf(os.Stderr, "redis-appliance db url %s prints it again; keep it out of logs and shell history.\n", c.Database)
	} else {
		fmt.Fprintln(os.Stderr, "This password is not shown again: keep it now.")
	}
	return nil
}

func newDBUserCreateCmd(g *globals) *cobra.Command {
	var req api.CreateUserRequest
	cmd := &cobra.Command{
		Use:   "create DB USER --role read|write|admin [--keys PATTERN]... [--channels PATTERN]...",
		Short: "Create an application user and print its password (once)",
		Args:  twoNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			if req.Role == "" {
				return fmt.Errorf("--role is required: read, write or admin")
			}
			req.Name = args[1]
			c, err := g.client().CreateUser(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return printCredentials(g, c)
		},
	}
	cmd.Flags().StringVar(&req.Role, "role", "", "read, write or admin")
	cmd.Flags().StringArrayVar(&req.Keys, "keys", nil, "key pattern the user may touch, e.g. 'app:*' (repeat for several; default all)")
	cmd.Flags().StringArrayVar(&req.Channels, "channels", nil, "Pub/Sub channel pattern (repeat for several; default all)")
	addOutput(cmd, g)
	return cmd
}

func newDBUserListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list DB",
		Short: "List a database's application users and their roles (never passwords)",
		Args:  exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			us, err := g.client().ListUsers(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(us)
			}
			printUsers(us)
			return nil
		},
	}
	addOutput(cmd, g)
	return cmd
}

func printUsers(us []api.DatabaseUser) {
	t := newTable("USER", "ROLE", "KEYS", "CHANNELS", "CREATED", "ROTATED", "OLD PASSWORD UNTIL")
	for _, u := range us {
		rotated, until := "-", "-"
		if !u.RotatedAt.IsZero() {
			rotated = u.RotatedAt.Format("2006-01-02 15:04")
		}
		if u.PreviousValidUntil != nil {
			until = u.PreviousValidUntil.Format("2006-01-02 15:04")
		}
		t.row(u.Name, u.Role, strings.Join(u.Keys, " "), strings.Join(u.Channels, " "), u.CreatedAt.Format("2006-01-02 15:04"), rotated, until)
	}
	_ = t.flush()
}

func newDBUserRotateCmd(g *globals) *cobra.Command {
	var req api.RotateRequest
	cmd := &cobra.Command{
		Use:   "rotate DB USER [--grace 24h]",
		Short: "Give a user a new password (printed once); the old one works for --grace",
		Args:  twoNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			c, err := g.client().RotateUser(cmd.Context(), args[0], args[1], req)
			if err != nil {
				return err
			}
			return printCredentials(g, c)
		},
	}
	cmd.Flags().StringVar(&req.Grace, "grace", "", "how long the old password keeps working (default 24h; 0s: stops at once)")
	addOutput(cmd, g)
	return cmd
}

func newDBUserDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete DB USER",
		Short: "Delete an application user from every instance (its connections are closed)",
		Args:  twoNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().DeleteUser(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "user %s of %s deleted\n", args[1], args[0])
			return nil
		},
	}
}

func newDBRotatePasswordCmd(g *globals) *cobra.Command {
	var req api.RotateRequest
	cmd := &cobra.Command{
		Use:   "rotate-password DB [--grace 0s]",
		Short: "Give a database new secrets: the default user's password (printed once), the agent's and the replicas'",
		Long: `Rotate every secret of a database but the application users' own: the
default user's password (the one db url prints), the agent's management
user's and the replication user's. Run it for each database after removing
a lost or stolen node (see docs/security.md). By default the old password
stops working at once; --grace keeps it working for a while, for the
applications to be given the new one.`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			c, err := g.client().RotatePassword(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return printCredentials(g, c)
		},
	}
	cmd.Flags().StringVar(&req.Grace, "grace", "", "how long the old passwords keep working (default 0s: they stop at once)")
	addOutput(cmd, g)
	return cmd
}
