package main

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// A license the generator recognises, by phrases that its text always
// carries. Phrases are compared after normalize, so line breaks, case,
// punctuation and Markdown or comment markers do not matter.
type license struct {
	// spdx is the license's SPDX identifier.
	spdx string
	// all must each be in the text.
	all []string
	// full is set when all shows the complete terms, not only a notice
	// that refers to them (as Apache's boilerplate header does).
	full bool
	// without must not be in the text (it tells a variant apart).
	without []string
}

// known are the licenses a dependency may have. Adding one is a decision
// about what the project may link, taken by editing this list: a module
// under any other license stops the packaging.
var known = []license{
	{spdx: "Apache-2.0", full: true, all: []string{
		"apache license version 2.0 january 2004",
		"terms and conditions for use reproduction and distribution",
	}},
	// The notice Apache asks projects to put in their files; the full
	// terms then come from the appendix of the generated file.
	{spdx: "Apache-2.0", all: []string{
		"licensed under the apache license version 2.0",
	}},
	{spdx: "MIT", full: true, all: []string{
		"permission is hereby granted free of charge to any person obtaining a copy of this software",
		"the above copyright notice and this permission notice shall be included in all copies or substantial portions of the software",
	}},
	{spdx: "BSD-3-Clause", full: true, all: []string{
		"redistribution and use in source and binary forms with or without modification are permitted provided that",
		"redistributions of source code must retain the above copyright notice",
		"redistributions in binary form must reproduce the above copyright notice",
		"endorse or promote products derived from this software",
	}, without: []string{"all advertising materials mentioning features or use of this software"}},
	{spdx: "BSD-2-Clause", full: true, all: []string{
		"redistribution and use in source and binary forms with or without modification are permitted provided that",
		"redistributions of source code must retain the above copyright notice",
		"redistributions in binary form must reproduce the above copyright notice",
	}, without: []string{
		"endorse or promote products derived from this software",
		"all advertising materials mentioning features or use of this software",
	}},
	{spdx: "MPL-2.0", full: true, all: []string{
		"mozilla public license version 2.0",
		"exhibit a source code form license notice",
	}},
	{spdx: "ISC", full: true, all: []string{
		"distribute this software for any purpose with or without fee is hereby granted",
		"the software is provided as is and the author disclaims all warranties",
	}},
}

// refused are phrases of licenses the project does not accept, or of
// additions that change a known license. A text that carries one is not
// identified even if it also carries a known license's phrases.
var refused = []string{
	"gnu general public license",
	"gnu lesser general public license",
	"gnu library general public license",
	"gnu affero general public license",
	"commons clause",
	"server side public license",
	"business source license",
	"elastic license",
	"creative commons",
	"shall be used for good not evil",
}

// mplMentionsGNU are the GNU licenses that the MPL 2.0 itself names
// (its "Secondary License" definition): refused does not apply to them in
// a text identified as the MPL 2.0.
var mplMentionsGNU = []string{
	"gnu general public license",
	"gnu lesser general public license",
	"gnu affero general public license",
}

// identification is what identify found in one license file.
type identification struct {
	// spdx lists the licenses found, in the order the text has them.
	spdx []string
	// refersOnly holds the licenses whose terms the text refers to
	// without carrying them.
	refersOnly []string
}

// identify names the licenses in a license file's text. A text may carry
// several (gopkg.in/yaml.v3: MIT for the files ported from libyaml,
// Apache-2.0 for the rest); each one found is listed. It fails when it
// finds none, or a phrase of refused.
func identify(text string) (identification, error) {
	norm := normalize(text)
	type found struct {
		spdx string
		at   int
		full bool
	}
	var hits []found
	for _, l := range known {
		at, ok := matchAll(norm, l.all)
		if !ok || slices.ContainsFunc(l.without, func(p string) bool { return strings.Contains(norm, normalize(p)) }) {
			continue
		}
		i := slices.IndexFunc(hits, func(f found) bool { return f.spdx == l.spdx })
		switch {
		case i < 0:
			hits = append(hits, found{l.spdx, at, l.full})
		case l.full:
			hits[i].full = true
		}
	}
	mpl := slices.ContainsFunc(hits, func(f found) bool { return f.spdx == "MPL-2.0" })
	for _, p := range refused {
		if mpl && slices.Contains(mplMentionsGNU, p) {
			continue
		}
		if strings.Contains(norm, normalize(p)) {
			return identification{}, fmt.Errorf("it mentions %q, which is not a license this project accepts (packaging/notice/licenses.go)", p)
		}
	}
	if len(hits) == 0 {
		return identification{}, fmt.Errorf("its text matches none of the licenses this project accepts (%s)", strings.Join(knownIDs(), ", "))
	}
	slices.SortStableFunc(hits, func(a, b found) int { return a.at - b.at })
	var id identification
	for _, h := range hits {
		id.spdx = append(id.spdx, h.spdx)
		if !h.full {
			id.refersOnly = append(id.refersOnly, h.spdx)
		}
	}
	return id, nil
}

// matchAll reports whether text holds every phrase, and where the first
// one starts.
func matchAll(text string, phrases []string) (int, bool) {
	first := -1
	for i, p := range phrases {
		at := strings.Index(text, normalize(p))
		if at < 0 {
			return 0, false
		}
		if i == 0 {
			first = at
		}
	}
	return first, true
}

// normalize lowercases text and turns every run of characters other than
// letters, digits and dots into one space, so that line wrapping,
// punctuation and markup do not hide a phrase. A dot is kept only between
// two digits (version numbers); elsewhere it ends a sentence.
func normalize(text string) string {
	var b strings.Builder
	runes := []rune(strings.ToLower(text))
	space := true
	for i, r := range runes {
		keep := unicode.IsLetter(r) || unicode.IsDigit(r)
		if r == '.' && i > 0 && i+1 < len(runes) && unicode.IsDigit(runes[i-1]) && unicode.IsDigit(runes[i+1]) {
			keep = true
		}
		if keep {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimSpace(b.String())
}

// knownIDs lists the SPDX identifiers of known, once each.
func knownIDs() []string {
	var ids []string
	for _, l := range known {
		if !slices.Contains(ids, l.spdx) {
			ids = append(ids, l.spdx)
		}
	}
	return ids
}
