package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// binDir holds the binary the tests build once; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "notice-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goModRoot is the repository's root (where go.mod is).
func goModRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("go env GOMOD: %v %q", err, out)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := goModRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// built is redis-appliance built as scripts/package builds it, once.
var built = sync.OnceValues(func() (string, error) {
	root, err := goModRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(binDir, "redis-appliance")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/redis-appliance")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/redis-appliance: %w\n%s", err, out)
	}
	return bin, nil
})

func mustBuild(t *testing.T) (string, *buildinfo.BuildInfo) {
	t.Helper()
	bin, err := built()
	if err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return bin, info
}

// section is one module's part of a notice.
type section struct {
	version, spdx string
	// files maps a file's header ("LICENSE (MIT)") to its text.
	files map[string]string
}

// parse reads a notice back: its modules by path.
func parse(t *testing.T, notice string) map[string]section {
	t.Helper()
	parts := strings.Split(notice, "\n"+rule+"\n")
	got := map[string]section{}
	for i := 1; i+1 < len(parts); i++ {
		head := parts[i]
		if !strings.HasPrefix(head, "Module: ") {
			continue
		}
		fields := map[string]string{}
		for _, line := range strings.Split(head, "\n") {
			k, v, _ := strings.Cut(line, ": ")
			fields[k] = v
		}
		s := section{version: fields["Version"], spdx: fields["License"], files: map[string]string{}}
		for _, f := range strings.Split(parts[i+1], "\n--- ")[1:] {
			name, text, _ := strings.Cut(f, " ---\n")
			s.files[name] = strings.TrimSpace(text)
		}
		got[fields["Module"]] = s
	}
	return got
}

// The notice of the binary that scripts/package builds names every
// module its build information lists, and the standard library, each with
// an SPDX identifier of a license the project accepts and the full text of
// its license files; the Apache License's full text closes it, for the
// modules whose files only refer to it.
func TestNotice_ListsEveryLinkedModuleWithItsLicenseText(t *testing.T) {
	bin, info := mustBuild(t)
	root := moduleRoot(t)
	out := filepath.Join(t.TempDir(), "THIRD-PARTY-LICENSES")
	if err := run([]string{"-apache", filepath.Join(root, "LICENSE"), "-o", out, bin}, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	notice := string(b)
	got := parse(t, notice)

	want := map[string]string{"std": strings.Fields(info.GoVersion)[0]}
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		want[d.Path] = d.Version
	}
	if len(info.Deps) < 10 {
		t.Fatalf("the binary's build information lists only %d modules; is it redis-appliance?", len(info.Deps))
	}
	for path, version := range want {
		s, ok := got[path]
		switch {
		case !ok:
			t.Errorf("the notice has no section for %s %s", path, version)
			continue
		case s.version != version:
			t.Errorf("%s: the notice says version %q, the binary %q", path, s.version, version)
		}
		ids := strings.Split(s.spdx, " AND ")
		for _, id := range ids {
			if !slices.Contains(knownIDs(), id) {
				t.Errorf("%s: license %q is not an SPDX identifier of a known license (%v)", path, s.spdx, knownIDs())
			}
		}
		licensed := 0
		for name, text := range s.files {
			if text == "" {
				t.Errorf("%s: %s has no text", path, name)
			}
			if !strings.HasSuffix(name, "(notice)") {
				licensed++
			}
		}
		if licensed == 0 {
			t.Errorf("%s: the notice carries none of its license files", path)
		}
		if !strings.Contains(notice, "\n  "+path+" "+version+" ") {
			t.Errorf("the summary does not list %s %s", path, version)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("the notice lists %s, which the binary does not link", path)
		}
	}
	// Full texts, not summaries: a license's own words are there.
	if s := got["golang.org/x/sys"]; !strings.Contains(s.files["LICENSE (BSD-3-Clause)"], "Redistributions in binary form must reproduce") {
		t.Errorf("golang.org/x/sys: the BSD-3-Clause text is not there in full: %v", s.files)
	}
	if !strings.Contains(notice, "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION") {
		t.Error("the notice holds no full text of the Apache License 2.0")
	}
}

// fakeCache copies, for every module the binary links, its license and
// NOTICE files into a module cache laid out as the go command lays it,
// and returns the cache and the directory of each module in it.
func fakeCache(t *testing.T, info *buildinfo.BuildInfo) (string, map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	src, fake := strings.TrimSpace(string(out)), t.TempDir()
	dirs := map[string]string{}
	for _, d := range info.Deps {
		from, err := cacheDir(src, d.Path, d.Version)
		if err != nil {
			t.Fatal(err)
		}
		to, _ := cacheDir(fake, d.Path, d.Version)
		if err := os.MkdirAll(to, 0o755); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if licenseName.MatchString(e.Name()) || noticeName.MatchString(e.Name()) {
				b, err := os.ReadFile(filepath.Join(from, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		dirs[d.Path] = to
	}
	return fake, dirs
}

// A linked module whose license cannot be identified, or that has no
// license file, stops the generator with an error that names the module,
// and no notice is written.
func TestNotice_FailsOnAModuleWithoutAKnownLicense(t *testing.T) {
	bin, info := mustBuild(t)
	root := moduleRoot(t)
	victim := "github.com/spf13/cobra"
	for _, tc := range []struct {
		name, want string
		// spoil changes the module's files in the cache.
		spoil func(t *testing.T, dir string)
	}{
		{"an unknown license", "cannot identify the license", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "LICENSE"), []byte("Copyright 2026 Example Corp. All rights reserved.\nYou may not copy, modify or distribute this software.\n"), 0o644)
		}},
		{"MIT with the Commons Clause", "commons clause", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "LICENSE"), []byte(`"Commons Clause" License Condition v1.0
The Software is provided to you by the Licensor under the License, as defined below, subject to the following condition.
`+mitText), 0o644)
		}},
		{"no license file", "has no license file", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "README.md"), []byte("# cobra\n"), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, dirs := fakeCache(t, info)
			if dirs[victim] == "" {
				t.Fatalf("the binary does not link %s any more: pick another module for this test", victim)
			}
			// The untouched copy passes: the failure below is the spoiled
			// module's.
			if err := run([]string{"-apache", filepath.Join(root, "LICENSE"), "-modcache", cache, bin}, io.Discard); err != nil {
				t.Fatalf("with the license files as they are: %v", err)
			}
			tc.spoil(t, dirs[victim])
			out := filepath.Join(t.TempDir(), "THIRD-PARTY-LICENSES")
			err := run([]string{"-apache", filepath.Join(root, "LICENSE"), "-modcache", cache, "-o", out, bin}, io.Discard)
			if err == nil {
				t.Fatal("the generator succeeded")
			}
			if msg := strings.ToLower(err.Error()); !strings.Contains(msg, victim) || !strings.Contains(msg, tc.want) {
				t.Errorf("the error does not name %s and say %q: %v", victim, tc.want, err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed run left %s (%v)", out, err)
			}
		})
	}
}

const mitText = `MIT License

Copyright (c) 2026 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
`

const bsdText = `Copyright (c) 2026 Someone. All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice,
   this list of conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.
`

const bsd3Clause = `3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
`

const bsd4Clause = `3. All advertising materials mentioning features or use of this software
   must display the following acknowledgement.
`

const apacheHeader = `Copyright 2026 Someone

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
`

// identify names the licenses the project accepts by their words, however
// they are wrapped, and refuses the rest.
func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // nil: refused
		refersOnly []string
	}{
		{"MIT", mitText, []string{"MIT"}, nil},
		{"MIT rewrapped in Markdown", "# License\n\n" + strings.ReplaceAll(strings.ReplaceAll(mitText, "\n", " "), ",", " ,"), []string{"MIT"}, nil},
		{"BSD-2-Clause", bsdText, []string{"BSD-2-Clause"}, nil},
		{"BSD-3-Clause", bsdText + bsd3Clause, []string{"BSD-3-Clause"}, nil},
		{"BSD with the advertising clause", bsdText + bsd4Clause + bsd3Clause, nil, nil},
		{"ISC", "Permission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee is hereby granted, provided that the above\ncopyright notice and this permission notice appear in all copies.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\" AND THE AUTHOR DISCLAIMS ALL WARRANTIES", []string{"ISC"}, nil},
		{"the Apache header alone", apacheHeader, []string{"Apache-2.0"}, []string{"Apache-2.0"}},
		{"MIT then the Apache header", mitText + "\n" + apacheHeader, []string{"MIT", "Apache-2.0"}, []string{"Apache-2.0"}},
		{"MIT or the GPL", mitText + "\nAlternatively, under the GNU General Public License version 3.\n", nil, nil},
		{"all rights reserved", "Copyright 2026 Example Corp. All rights reserved.", nil, nil},
		{"empty", "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := identify(tc.text)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("identified as %v, want refused", id.spdx)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(id.spdx, tc.want) || !slices.Equal(id.refersOnly, tc.refersOnly) {
				t.Errorf("identified as %v (refers only to %v), want %v (refers only to %v)", id.spdx, id.refersOnly, tc.want, tc.refersOnly)
			}
		})
	}
}

// The module cache's case encoding: capitals become '!' and lower case.
func TestCacheDir(t *testing.T) {
	got, err := cacheDir("/c", "github.com/AlekSi/pointer", "v1.2.0")
	if want := filepath.FromSlash("/c/github.com/!alek!si/pointer@v1.2.0"); err != nil || got != want {
		t.Errorf("cacheDir = %q, %v; want %q", got, err, want)
	}
	if _, err := cacheDir("/c", "example.com/a!b", "v1.0.0"); err == nil {
		t.Error("a path with '!' was accepted")
	}
}
