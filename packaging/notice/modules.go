package main

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Module is one body of code linked into the binary, with its licenses.
type Module struct {
	// Path and Version name it as go.mod does ("std" and the Go
	// release for the standard library and runtime).
	Path, Version string
	// Dir is where its files were read.
	Dir string
	// SPDX is its license as an SPDX expression ("MIT",
	// "MIT AND Apache-2.0").
	SPDX string
	// Files are its license files, then its NOTICE files, by name.
	Files []File
	// refersOnly are licenses a file names without their full terms.
	refersOnly []string
}

// File is one license or NOTICE file of a module.
type File struct {
	// Name is the file's name in the module's root.
	Name string
	// SPDX is what the file was identified as; empty for a NOTICE.
	SPDX string
	// Text is the file's whole text.
	Text string
}

// licenseName and noticeName match the names of the files read in a
// module's root: LICENSE, LICENSE.txt, LICENSE-MIT, COPYING, and NOTICE
// (Apache 2.0 §4(d) asks for a NOTICE to be passed on).
var (
	licenseName = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([.\-_].*)?$`)
	noticeName  = regexp.MustCompile(`(?i)^notice([.\-_].*)?$`)
)

// linked reads the build information of the binary at bin and returns
// what is linked into it: the standard library and runtime first, then
// every module the binary lists (the main module is not a dependency and
// is left out), each with its license files read from goroot or modcache.
func linked(bin, goroot, modcache string) ([]Module, *buildinfo.BuildInfo, error) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the build information of %s (is it a Go binary?): %w", bin, err)
	}
	goVersion, _, _ := strings.Cut(info.GoVersion, " ")
	if v, err := os.ReadFile(filepath.Join(goroot, "VERSION")); err == nil {
		if first, _, _ := strings.Cut(string(v), "\n"); strings.TrimSpace(first) != goVersion {
			return nil, nil, fmt.Errorf("%s was built with %s but GOROOT %s is %s: run the generator with the go command that built the binary", bin, goVersion, goroot, strings.TrimSpace(first))
		}
	}
	mods := []Module{{Path: "std", Version: goVersion, Dir: goroot}}
	for _, d := range info.Deps {
		m := Module{Path: d.Path, Version: d.Version}
		switch r := d.Replace; {
		case r == nil:
			m.Dir, err = cacheDir(modcache, d.Path, d.Version)
		case r.Version == "":
			// Replaced by a directory: go.mod's path, relative to the
			// main module's root, where scripts/package runs the generator.
			m.Dir = r.Path
		default:
			m.Path, m.Version = r.Path, r.Version
			m.Dir, err = cacheDir(modcache, r.Path, r.Version)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("module %s %s: %w", m.Path, m.Version, err)
		}
		mods = append(mods, m)
	}
	var errs []error
	for i := range mods {
		if err := mods[i].readLicenses(); err != nil {
			errs = append(errs, err)
		}
	}
	return mods, info, errors.Join(errs...)
}

// readLicenses reads and identifies the license and NOTICE files in the
// module's root.
func (m *Module) readLicenses() error {
	name := m.Path + " " + m.Version
	entries, err := os.ReadDir(m.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("module %s is not in %s: run `go mod download %s@%s`", name, m.Dir, m.Path, m.Version)
	}
	if err != nil {
		return fmt.Errorf("module %s: %w", name, err)
	}
	var notices []File
	var ids, full, refs []string
	for _, e := range entries {
		isLicense, isNotice := licenseName.MatchString(e.Name()), noticeName.MatchString(e.Name())
		if !e.Type().IsRegular() || !isLicense && !isNotice {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.Dir, e.Name()))
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		f := File{Name: e.Name(), Text: cleanText(string(b))}
		if f.Text == "" {
			return fmt.Errorf("module %s: its %s is empty", name, f.Name)
		}
		if isNotice {
			notices = append(notices, f)
			continue
		}
		id, err := identify(f.Text)
		if err != nil {
			return fmt.Errorf("module %s: cannot identify the license in %s: %w; read it, then teach packaging/notice/licenses.go its phrases if the project accepts it, or drop the dependency", name, filepath.Join(m.Dir, f.Name), err)
		}
		f.SPDX = strings.Join(id.spdx, " AND ")
		for _, s := range id.spdx {
			if !slices.Contains(ids, s) {
				ids = append(ids, s)
			}
			if slices.Contains(id.refersOnly, s) {
				refs = append(refs, s)
			} else {
				full = append(full, s)
			}
		}
		m.Files = append(m.Files, f)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("module %s has no license file (LICENSE, COPYING...) in %s: find out its license before linking it", name, m.Dir)
	}
	// A reference is answered when another file of the module carries
	// the full terms.
	m.refersOnly = slices.DeleteFunc(refs, func(s string) bool { return slices.Contains(full, s) })
	m.SPDX = strings.Join(ids, " AND ")
	m.Files = append(m.Files, notices...)
	return nil
}

// cacheDir is where the module cache keeps the files of path at version.
func cacheDir(modcache, path, version string) (string, error) {
	p, err := escape(path)
	if err != nil {
		return "", err
	}
	v, err := escape(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(modcache, filepath.FromSlash(p+"@"+v)), nil
}

// escape is the module cache's case encoding (golang.org/x/mod/module's
// EscapePath): an upper-case letter becomes '!' and its lower case, so
// that paths differing only in case stay apart on any file system.
func escape(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '!' || r > unicode.MaxASCII:
			return "", fmt.Errorf("%q is not a valid module path or version", s)
		case 'A' <= r && r <= 'Z':
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// cleanText gives a license text Unix line ends and no trailing blanks.
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}
