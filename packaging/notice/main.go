// Command notice writes the notice of the licenses of the code linked
// into a Go binary: the standard library and runtime, and every module the
// binary's build information lists (what go.mod resolved to and the linker
// kept; `go version -m BINARY` prints the same list). For each one it
// gives the module path, version, SPDX license identifier and the full
// text of its license and NOTICE files, read from the module cache.
//
// It fails, naming the module, when a linked module has no license file
// or one whose license it cannot identify (licenses.go lists the licenses
// the project accepts), so that a new dependency cannot slip into a
// package unnoticed. scripts/package runs it on the binary it packages:
//
//	go run ./packaging/notice -apache LICENSE -o THIRD-PARTY-LICENSES BINARY
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "notice:", err)
		os.Exit(1)
	}
}

// run is the command: args without the program name; the notice goes to
// stdout unless -o names a file.
func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("notice", flag.ContinueOnError)
	out := flags.String("o", "", "write the notice to this `file` (default: standard output)")
	apache := flags.String("apache", "", "`file` with the full text of the Apache License 2.0, appended when a module's license only refers to it (the project's LICENSE)")
	goroot := flags.String("goroot", "", "the `dir` of the Go installation that built the binary (default: go env GOROOT)")
	modcache := flags.String("modcache", "", "the module cache `dir` (default: go env GOMODCACHE)")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: notice [flags] BINARY")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return errors.New("name one Go binary")
	}
	bin := flags.Arg(0)
	for _, v := range []struct {
		flag *string
		name string
	}{{goroot, "GOROOT"}, {modcache, "GOMODCACHE"}} {
		if *v.flag != "" {
			continue
		}
		val, err := goEnv(v.name)
		if err != nil {
			return err
		}
		*v.flag = val
	}

	mods, info, err := linked(bin, *goroot, *modcache)
	if err != nil {
		return err
	}
	var appendix string
	if needsApache(mods) {
		if *apache == "" {
			return fmt.Errorf("the license files of %s refer to the Apache License 2.0 without carrying its terms: pass its full text with -apache (the project's LICENSE)", strings.Join(referring(mods, "Apache-2.0"), ", "))
		}
		b, err := os.ReadFile(*apache)
		if err != nil {
			return fmt.Errorf("reading the Apache License 2.0 text: %w", err)
		}
		appendix = cleanText(string(b))
		if id, err := identify(appendix); err != nil || !slices.Equal(id.spdx, []string{"Apache-2.0"}) || len(id.refersOnly) > 0 {
			return fmt.Errorf("-apache %s is not the full text of the Apache License 2.0 alone", *apache)
		}
	}

	var b bytes.Buffer
	write(&b, filepath.Base(info.Path), mods, appendix)
	if *out == "" {
		_, err := stdout.Write(b.Bytes())
		return err
	}
	// Written whole or not at all: a failed run leaves no partial notice
	// for the packaging to ship.
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}

// goEnv is `go env NAME`, with the go command of $GO if set (as the
// Makefile and scripts/package pass it).
func goEnv(name string) (string, error) {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	out, err := exec.Command(goCmd, "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("%s env %s (pass -%s instead): %w", goCmd, name, strings.ToLower(strings.TrimPrefix(name, "GO")), err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("%s env %s is empty", goCmd, name)
	}
	return v, nil
}

// needsApache reports whether a module refers to the Apache License 2.0
// without carrying its terms.
func needsApache(mods []Module) bool { return len(referring(mods, "Apache-2.0")) > 0 }

// referring lists the modules whose license files refer to spdx without
// carrying its terms.
func referring(mods []Module, spdx string) []string {
	var names []string
	for _, m := range mods {
		if slices.Contains(m.refersOnly, spdx) {
			names = append(names, m.Path+" "+m.Version)
		}
	}
	return names
}

// rule separates the modules in the notice.
var rule = strings.Repeat("=", 79)

// write writes the notice of program's mods to w: a summary, then each
// module's files in full, then the Apache License 2.0 when appendix holds
// it.
func write(w *bytes.Buffer, program string, mods []Module, appendix string) {
	fmt.Fprintf(w, "Licenses of the code linked into %s\n\n", program)
	fmt.Fprintf(w, "%s is statically linked with the Go standard library and runtime\n", program)
	fmt.Fprintf(w, "and with the Go modules below, which keep their own licenses. Each\n")
	fmt.Fprintf(w, "module's license and NOTICE files follow in full. This file is generated\n")
	fmt.Fprintf(w, "from the build information in the binary (`go version -m %s`\n", program)
	fmt.Fprintf(w, "lists the same modules) when the package is built.\n\n")
	width := 0
	for _, m := range mods {
		width = max(width, len(m.Path)+1+len(m.Version))
	}
	for _, m := range mods {
		fmt.Fprintf(w, "  %-*s  %s\n", width, m.Path+" "+m.Version, m.SPDX)
	}
	for _, m := range mods {
		fmt.Fprintf(w, "\n%s\n", rule)
		fmt.Fprintf(w, "Module: %s\n", m.Path)
		fmt.Fprintf(w, "Version: %s\n", m.Version)
		fmt.Fprintf(w, "License: %s\n", m.SPDX)
		if m.Path == "std" {
			fmt.Fprintf(w, "Source: the Go distribution %s (https://go.dev/dl/)\n", m.Version)
		} else {
			fmt.Fprintf(w, "Source: `go mod download %s@%s`\n", m.Path, m.Version)
		}
		if slices.Contains(m.refersOnly, "Apache-2.0") {
			fmt.Fprintf(w, "The Apache License 2.0 it refers to is at the end of this file.\n")
		}
		fmt.Fprintf(w, "%s\n", rule)
		for _, f := range m.Files {
			what := f.SPDX
			if what == "" {
				what = "notice"
			}
			fmt.Fprintf(w, "\n--- %s (%s) ---\n\n%s\n", f.Name, what, f.Text)
		}
	}
	if appendix != "" {
		fmt.Fprintf(w, "\n%s\nThe Apache License 2.0, to which the modules above that say so refer\n%s\n\n%s\n", rule, rule, appendix)
	}
}
