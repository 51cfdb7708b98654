package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newClusterRotateKeyCmd is `cluster rotate-key`: every secret in the
// state sealed again with a new cluster key, which every current member
// receives through Raft (a removed node does not).
func newClusterRotateKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Seal every secret again with a new cluster key (after removing a lost or compromised node)",
		Long: `Replace the cluster key that seals the passwords in the Raft state. Every
current member switches to the new key and writes it to its cluster.key;
a removed node is refused by the members and never receives it, so the
key it holds opens nothing written from now on.

After removing a compromised node: node remove NODE, then cluster
rotate-key, then db rotate-password DB for each database (the node had
the passwords in its instances' redis.conf).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(g); err != nil {
				return err
			}
			r, err := g.client().RotateClusterKey(cmd.Context())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(r)
			}
			fmt.Printf("cluster key is now %s; %d secrets sealed again with it\n", r.KeyID, r.Resealed)
			fmt.Println("every member writes it to its cluster.key as it applies the change; now rotate each database's passwords: redis-appliance db rotate-password DB")
			return nil
		},
	}
	addOutput(cmd, g)
	return cmd
}
