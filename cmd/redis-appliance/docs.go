//go:build gendocs

// This file turns a build of the CLI into the generator of its man pages:
//
//	go run -tags gendocs ./cmd/redis-appliance man DIR
//
// writes one page per command (redis-appliance.1, redis-appliance-db-create.1,
// ...) into DIR from the same command tree the shipped binary has. It is
// compiled only with the gendocs tag, so the shipped binary carries neither
// the generator nor its markdown-to-roff dependency, and nothing has to be
// registered in newRoot. scripts/package runs it when it builds the .deb and
// .rpm. Shell completions need no generator: cobra's built-in
// `redis-appliance completion bash|zsh|fish` prints them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra/doc"
)

// init runs the generator and exits before main would run the CLI.
func init() {
	if len(os.Args) != 3 || os.Args[1] != "man" {
		fmt.Fprintln(os.Stderr, "usage: go run -tags gendocs ./cmd/redis-appliance man DIR")
		os.Exit(2)
	}
	if err := genMan(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// genMan writes the man pages of every command into dir.
func genMan(dir string) error {
	// The --socket default is computed from the user running the
	// generator; the pages must show the one an installed host uses.
	if err := os.Setenv("REDIS_APPLIANCE_SOCKET", "/run/redis-appliance/api.sock"); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := newRoot()
	// cobra adds these two at run time; add them now so they get pages.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{
		Title:   "REDIS-APPLIANCE",
		Section: "1",
		Source:  "redis-appliance " + version,
		Manual:  "redis-appliance manual",
		// Date: cobra takes SOURCE_DATE_EPOCH when set (reproducible).
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("generate man pages in %s: %w", dir, err)
	}
	return nil
}
