package raftstate

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzCheckName: a name the rule accepts is safe in a unit name, a file
// name and a Sentinel master name: no separator, no dot, no space, at most
// 40 bytes; anything refused is ErrInvalid, never a panic.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"cache", "a", "db-1", "../etc", "Cache", "a b", strings.Repeat("a", 41), "", "-x", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckName("database", s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckName(%q) = %v, not ErrInvalid", s, err)
			}
			return
		}
		if len(s) > 40 || strings.ContainsAny(s, "/\\. \x00") || !filepath.IsLocal(s) || s[0] < 'a' || s[0] > 'z' {
			t.Fatalf("CheckName accepted %q", s)
		}
	})
}

// FuzzCheckInstanceID: an accepted ID is exactly its database's name, a
// hyphen and a number, so it is a plain name inside the instances
// directory.
func FuzzCheckInstanceID(f *testing.F) {
	for _, s := range [][2]string{{"cache", "cache-0"}, {"cache", "cache-999"}, {"cache", "../../etc"}, {"cache", "cache-0/../../x"}, {"cache", "cache-01"}, {"a", "a-1000"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, db, id string) {
		if CheckInstanceID(db, id) != nil {
			return
		}
		n, ok := strings.CutPrefix(id, db+"-")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v < 0 || v > 999 || strconv.Itoa(v) != n || !filepath.IsLocal(id) || filepath.Base(id) != id {
			t.Fatalf("CheckInstanceID(%q, %q) accepted it", db, id)
		}
	})
}

// FuzzCheckHost: an accepted host is an IP address (maybe with a zone) or
// a name of letters, digits, hyphens, dots and underscores, never with a
// space, quote, slash or control character, and joins with a port into an
// address that splits back into the same host.
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "::1", "fd00::1%eth0", "redis-1.example.com", "a/b", "a..b", "-a", "", strings.Repeat("a", 64), "host:6379"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckHost(s); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckHost(%q) = %v, not ErrInvalid", s, err)
			}
			return
		}
		ip, _, _ := strings.Cut(s, "%")
		if net.ParseIP(ip) == nil && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") != "" {
			t.Fatalf("CheckHost accepted %q", s)
		}
		if strings.ContainsAny(s, " \t\r\n\x00\"'/\\#") {
			t.Fatalf("CheckHost accepted %q, which breaks a redis.conf line or a URL", s)
		}
		addr := net.JoinHostPort(s, "6379")
		h, p, err := net.SplitHostPort(addr)
		if err != nil || h != s || p != "6379" {
			t.Fatalf("%q joined with a port does not split back: %q %q %v", s, h, p, err)
		}
		if err := CheckHostPort(addr); err != nil {
			t.Fatalf("CheckHost(%q) ok but CheckHostPort(%q) = %v", s, addr, err)
		}
	})
}
