package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"
)

// The .deb and .rpm as `make package` builds them, installed, upgraded,
// removed and purged the way an operator would, in hosts that run real
// systemd. The hosts boot from the development machine's root with an
// overlay (package lab), so "clean" means: redis-server and adduser are
// there (the machine's own packages, as on a Debian host where apt would
// fetch them), redis-appliance is not.

// pkgDir is where the packages are bound inside a host.
const pkgDir = "/var/cache/redis-appliance-e2e"

// policyRCD is Debian's hook that lets an administrator forbid maintainer
// scripts to start services (invoke-rc.d, deb-systemd-invoke).
const policyRCD = "/usr/sbin/policy-rc.d"

// builtPackages are the packages of the source under test, in two versions
// so that an upgrade can be tested.
type builtPackages struct {
	// dir holds one directory per version, each with a .deb and an .rpm.
	dir string
	// v1 is the version scripts/pkg-version gives this checkout; v2 the
	// same source packaged under a higher version.
	v1, v2     string
	deb1, deb2 string
	rpm1, rpm2 string
}

// packages builds both versions once per test binary with scripts/package,
// the script `make package` runs, into dist/e2e (make clean removes it).
var packages = sync.OnceValues(func() (*builtPackages, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	p := &builtPackages{dir: filepath.Join(root, "dist", "e2e")}
	if err := os.RemoveAll(p.dir); err != nil {
		return nil, err
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "pkg-version")).Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/pkg-version: %w", err)
	}
	p.v1 = strings.TrimSpace(string(out))
	p.v2 = p.v1 + "+e2e.newer"
	for _, b := range []struct {
		version  string
		deb, rpm *string
	}{{p.v1, &p.deb1, &p.rpm1}, {p.v2, &p.deb2, &p.rpm2}} {
		dist := filepath.Join(p.dir, b.version)
		cmd := exec.Command(filepath.Join(root, "scripts", "package"))
		cmd.Env = append(os.Environ(), "PKG_VERSION="+b.version, "DIST="+dist)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("scripts/package (PKG_VERSION=%s): %w\n%s", b.version, err, out)
		}
		fmt.Fprintf(os.Stderr, "e2e: packages of %s built in %s\n", b.version, time.Since(start).Round(time.Second))
		*b.deb = filepath.Join(dist, "redis-appliance_"+b.version+"_amd64.deb")
		*b.rpm = filepath.Join(dist, "redis-appliance-"+b.version+"-1.x86_64.rpm")
		for _, f := range []string{*b.deb, *b.rpm} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("scripts/package did not write the conventional file name: %w", err)
			}
		}
	}
	return p, nil
})

func mustPackages(t *testing.T) *builtPackages {
	t.Helper()
	p, err := packages()
	if err != nil {
		t.Fatalf("building the packages: %v", err)
	}
	return p
}

// inHost is where file (under p.dir on the machine) is inside a host.
func (p *builtPackages) inHost(file string) string {
	rel, _ := filepath.Rel(p.dir, file)
	return pkgDir + "/" + rel
}

// bootPackageHost boots a host that can see the packages, without the
// agent: the package is what installs it.
func bootPackageHost(t *testing.T, p *builtPackages, persistent bool) *node {
	t.Helper()
	h := lab.Boot(t, lab.Options{Persistent: persistent, Binds: []lab.Bind{{Host: p.dir, Container: pkgDir}}})
	n := &node{Host: h, t: t}
	t.Cleanup(func() {
		if t.Failed() && n.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, _, _ := n.Exec(ctx, "journalctl", "-u", agentName, "-u", "redis-appliance-db-*", "--no-pager", "-n", "120", "-o", "short-monotonic")
			t.Logf("journal of the agent and instances on %s:\n%s", n.Name(), out)
		}
	})
	ctx := timeout(t, time.Minute)
	if out, _, err := n.Exec(ctx, "dpkg-query", "-W", "-f", "${Status}", "redis-appliance"); err == nil && strings.Contains(out, "installed") {
		t.Fatalf("redis-appliance is already installed on this machine (%q), so the host is not clean: apt-get purge redis-appliance on the machine first", out)
	}
	// The package must be what creates the user and the groups; a
	// machine that had the package once and purged it keeps them.
	for _, e := range [][2]string{{"passwd", instanceUser}, {"group", instanceUser}, {"group", adminGroup}} {
		if n.getent(ctx, e[0], e[1]) != nil {
			t.Fatalf("%s %s already exists on this machine, so the host is not clean (a purge keeps it): userdel/groupdel it on the machine first", e[0], e[1])
		}
	}
	// A machine that is a container image (Docker's Debian images, CI)
	// has a policy-rc.d that forbids maintainer scripts to start services
	// (exit 101), and the host inherits it; a real host has none.
	if n.exists(ctx, policyRCD) {
		t.Logf("removing %s inherited from the machine (it forbids starting services on install)", policyRCD)
		n.MustExec(ctx, "rm", "-f", policyRCD)
	}
	return n
}

// apt runs apt-get inside the host as an unattended operator would, and
// returns its output.
func (n *node) apt(ctx context.Context, args ...string) string {
	n.t.Helper()
	start := time.Now()
	out, stderr, err := n.ExecEnv(ctx, []string{"DEBIAN_FRONTEND=noninteractive"}, append([]string{"apt-get", "-y"}, args...)...)
	if err != nil {
		n.t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	n.t.Logf("apt-get %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out + stderr
}

// dpkgStatus is the package's dpkg state: "ii" installed, "rc" removed
// with its configuration left, "" unknown (purged).
func (n *node) dpkgStatus(ctx context.Context) (status, version string) {
	out, _, err := n.Exec(ctx, "dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", "redis-appliance")
	if err != nil {
		return "", ""
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return strings.TrimSpace(out), ""
	}
	return f[0], f[1]
}

// clusterStatus is `cluster status -o json` with the root CLI.
func (n *node) clusterStatus(ctx context.Context) (bootstrapped bool, err error) {
	out, stderr, err := n.cli(ctx, "cluster", "status", "-o", "json")
	if err != nil {
		return false, fmt.Errorf("%w %s", err, stderr)
	}
	var s struct {
		Bootstrapped *bool  `json:"bootstrapped"`
		RaftState    string `json:"raft_state"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Bootstrapped == nil {
		return false, fmt.Errorf("cluster status -o json: %v: %q", err, out)
	}
	return *s.Bootstrapped, nil
}

// waitClusterStatus polls until the agent unit is active and `cluster
// status` answers (with or without a cluster).
func (n *node) waitClusterStatus(ctx context.Context) bool {
	n.t.Helper()
	var bootstrapped bool
	wctx, cancel := context.WithTimeout(ctx, agentReadyTimeout)
	defer cancel()
	waitFor(n.t, wctx, "the agent to be active and answer `cluster status`", func() (bool, string) {
		state, _, _ := n.Exec(wctx, "systemctl", "is-active", agentName)
		if strings.TrimSpace(state) != "active" {
			return false, "agent unit is " + strings.TrimSpace(state)
		}
		b, err := n.clusterStatus(wctx)
		if err != nil {
			return false, err.Error()
		}
		bootstrapped = b
		return true, ""
	})
	return bootstrapped
}

// isEnabled is `systemctl is-enabled unit`'s answer.
func (n *node) isEnabled(ctx context.Context, unit string) string {
	out, _, _ := n.Exec(ctx, "systemctl", "is-enabled", unit)
	return strings.TrimSpace(out)
}

// Install, upgrade, remove, reinstall and purge the .deb on one host, as
// an operator would with apt-get, checking at each step what the operator
// relies on: the agent runs under systemd as shipped, its databases and
// their data survive upgrade and remove, a local config edit survives the
// upgrade, and only purge deletes the state.
func TestPackage_DebInstallUpgradeRemovePurgeKeepsDataUntilPurge(t *testing.T) {
	t.Parallel()
	p := mustPackages(t)
	n := bootPackageHost(t, p, true)
	ctx := timeout(t, 8*time.Minute)

	// Install.
	out := n.apt(ctx, "install", p.inHost(p.deb1))
	if !strings.Contains(out, "redis-appliance cluster init") || !strings.Contains(out, "cluster join") {
		t.Errorf("the install does not tell the operator the next step (cluster init / cluster join):\n%s", out)
	}
	if !strings.Contains(out, "usermod -aG "+adminGroup+" USER") {
		t.Errorf("the install does not say how to use the CLI without root (usermod -aG %s USER):\n%s", adminGroup, out)
	}
	if st, v := n.dpkgStatus(ctx); st != "ii" || v != p.v1 {
		t.Fatalf("after install dpkg says %q %q, want ii %s", st, v, p.v1)
	}
	if n.waitClusterStatus(ctx) {
		t.Errorf("a freshly installed host says it is bootstrapped: the packaged config must say bootstrap: manual")
	}
	if got := n.isEnabled(ctx, agentName); got != "enabled" {
		t.Errorf("after install %s is %q, want enabled", agentName, got)
	}
	n.checkInstalledFiles(ctx, p.v1)
	n.checkAgentUnit(ctx)
	n.checkSystemUser(ctx, "/usr/sbin/nologin")
	n.checkSocketGroup(ctx)

	// A cluster of one, and a database with data.
	if out := n.mustCLI(ctx, "cluster", "init"); !strings.Contains(out, "join token") {
		t.Errorf("cluster init printed no join token:\n%s", out)
	}
	if !n.waitClusterStatus(ctx) {
		t.Fatal("cluster status says not bootstrapped after cluster init")
	}
	db := n.createDB(ctx, "cache", "aof", "64mb")
	e := n.url(ctx, "cache")
	unit := unitName("cache")
	n.mustRedis(ctx, e, "set", "greeting", "hello")
	n.fill(ctx, e, 300)
	n.checkRunsAsInstanceUser(ctx, "cache")
	n.waitAOFDurable(ctx, e)

	// The operator edits the config (a conffile): upgrades keep it. The
	// new port range takes effect when the upgrade restarts the agent.
	n.MustExec(ctx, "sed", "-i", "s/^port_range: 6400-6999$/port_range: 6500-6999/", configPath)
	n.MustExec(ctx, "sh", "-c", "echo '# edited by the operator' >> "+configPath)
	edited := n.MustExec(ctx, "cat", configPath)
	if !strings.Contains(edited, "\nport_range: 6500-6999\n") {
		t.Fatalf("could not edit %s (no port_range: 6400-6999 line?):\n%s", configPath, edited)
	}

	// Upgrade: the agent restarts on the new version; the database does
	// not even restart.
	agentPID, serverPID := n.mainPID(ctx, agentName), n.mainPID(ctx, unit)
	n.apt(ctx, "install", p.inHost(p.deb2))
	if st, v := n.dpkgStatus(ctx); st != "ii" || v != p.v2 {
		t.Fatalf("after the upgrade dpkg says %q %q, want ii %s", st, v, p.v2)
	}
	if got := n.MustExec(ctx, "cat", configPath); got != edited {
		t.Errorf("the upgrade changed the operator's %s:\nbefore:\n%s\nafter:\n%s", configPath, edited, got)
	}
	if left, _, _ := n.Exec(ctx, "sh", "-c", "ls /etc/redis-appliance/*.dpkg-* 2>/dev/null"); strings.TrimSpace(left) != "" {
		t.Errorf("the upgrade left %s: dpkg treated the config as changed", strings.TrimSpace(left))
	}
	if !n.waitClusterStatus(ctx) {
		t.Error("after the upgrade the node is no longer bootstrapped")
	}
	// Fails unless the agent runs again under a new PID: restarted.
	n.waitActive(ctx, agentName, agentPID)
	if got := strings.TrimSpace(n.mustCLI(ctx, "--version")); !strings.Contains(got, p.v2) {
		t.Errorf("after the upgrade redis-appliance --version says %q, want %s", got, p.v2)
	}
	if pid := n.mainPID(ctx, unit); pid != serverPID {
		t.Errorf("the upgrade restarted the database: redis-server pid %d, was %d", pid, serverPID)
	}
	if got := n.list(ctx); !slices.Equal(got, []string{"cache"}) {
		t.Errorf("after the upgrade db list shows %v, want [cache]", got)
	}
	if got := n.show(ctx, "cache"); got.Port != db.Port {
		t.Errorf("after the upgrade the port is %d, was %d", got.Port, db.Port)
	}
	n.checkFilled(ctx, e, 300)
	// The edited config is the one the restarted agent runs with.
	if second := n.createDB(ctx, "second", "nordb", "64mb"); second.Port < 6500 {
		t.Errorf("after the upgrade a new database got port %d: the agent does not run with the operator's port_range 6500-6999", second.Port)
	}

	// Remove: the agent stops and stays off; the configuration, the state
	// and the database stay, and the database keeps serving.
	n.apt(ctx, "remove", "redis-appliance")
	if st, _ := n.dpkgStatus(ctx); st != "rc" {
		t.Errorf("after remove dpkg says %q, want rc (removed, configuration kept)", st)
	}
	n.checkRemoved(ctx, edited)
	if got := n.prop(ctx, unit, "ActiveState"); got != "active" {
		t.Errorf("after remove the database unit is %s, want active (remove never stops a database)", got)
	}
	n.checkFilled(ctx, e, 300)

	// A reboot: the agent stays off, the database comes back by itself.
	n.Shutdown()
	n.Boot()
	n.waitActive(ctx, unit, 0)
	n.waitPong(ctx, e)
	n.checkFilled(ctx, e, 300)
	if got := n.prop(ctx, agentName, "ActiveState"); got == "active" || got == "activating" {
		t.Errorf("after remove and a reboot the agent is %s", got)
	}

	// Reinstall: the agent comes back enabled, with the same cluster and
	// database, the operator's config untouched.
	n.apt(ctx, "install", p.inHost(p.deb2))
	if !n.waitClusterStatus(ctx) {
		t.Error("after reinstalling, the node is not bootstrapped: the state was not kept")
	}
	if got := n.isEnabled(ctx, agentName); got != "enabled" {
		t.Errorf("after reinstalling %s is %q, want enabled", agentName, got)
	}
	if got := n.MustExec(ctx, "cat", configPath); got != edited {
		t.Errorf("reinstalling changed the operator's %s", configPath)
	}
	if got := n.list(ctx); !slices.Equal(got, []string{"cache", "second"}) {
		t.Errorf("after reinstalling db list shows %v, want [cache second]", got)
	}
	if e2 := n.url(ctx, "cache"); e2.Password != e.Password || e2.Port != e.Port {
		t.Errorf("after reinstalling db url changed")
	}
	n.checkFilled(ctx, e, 300)

	// Purge: the databases, their units and all the state go.
	n.apt(ctx, "purge", "redis-appliance")
	n.checkPurged(ctx, e, unit)
}

// checkInstalledFiles checks what the package put on the host.
func (n *node) checkInstalledFiles(ctx context.Context, version string) {
	n.t.Helper()
	if got := strings.TrimSpace(n.mustCLI(ctx, "--version")); !strings.Contains(got, version) {
		n.t.Errorf("redis-appliance --version says %q, want %s", got, version)
	}
	for path, want := range map[string]string{
		"/usr/bin/redis-appliance":                                  "755 root root",
		"/var/lib/redis-appliance":                                  "711 root root",
		"/run/redis-appliance":                                      "755 root root",
		"/run/redis-appliance/api.sock":                             "660 root redis-appliance-admin",
		configPath:                                                  "644 root root",
		"/lib/systemd/system/" + agentName:                          "644 root root",
		"/usr/share/man/man1/redis-appliance.1.gz":                  "644 root root",
		"/usr/share/man/man1/redis-appliance-db-create.1.gz":        "644 root root",
		"/usr/share/bash-completion/completions/redis-appliance":    "644 root root",
		"/usr/share/zsh/vendor-completions/_redis-appliance":        "644 root root",
		"/usr/share/fish/vendor_completions.d/redis-appliance.fish": "644 root root",
		"/usr/share/doc/redis-appliance/copyright":                  "644 root root",
		"/usr/share/doc/redis-appliance/THIRD-PARTY-LICENSES":       "644 root root",
	} {
		got, _, err := n.Exec(ctx, "stat", "-c", "%a %U %G", path)
		if err != nil {
			n.t.Errorf("%s is missing after install: %v", path, err)
		} else if strings.TrimSpace(got) != want {
			n.t.Errorf("%s: mode and owner %q, want %q", path, strings.TrimSpace(got), want)
		}
	}
	// The project's license as Debian policy wants it stated, and the
	// generated notice of the linked modules' licenses (packaging/notice).
	copyright := n.MustExec(ctx, "cat", "/usr/share/doc/redis-appliance/copyright")
	for _, want := range []string{"\nFiles: *\n", "\nLicense: Apache-2.0\n", "/usr/share/common-licenses/Apache-2.0"} {
		if !strings.Contains(copyright, want) {
			n.t.Errorf("/usr/share/doc/redis-appliance/copyright has no %q:\n%s", want, copyright)
		}
	}
	if notice := n.MustExec(ctx, "cat", "/usr/share/doc/redis-appliance/THIRD-PARTY-LICENSES"); !strings.Contains(notice, "\nModule: std\n") || strings.Count(notice, "\nModule: ") < 10 {
		n.t.Errorf("THIRD-PARTY-LICENSES does not list the standard library and the linked modules:\n%.2000s", notice)
	}
	conf := n.MustExec(ctx, "cat", configPath)
	for _, want := range []string{"\nbootstrap: manual\n", "\nsocket_group: redis-appliance-admin\n", "\nport_range: 6400-6999\n", "\ninstance_user: redis-appliance\n"} {
		if !strings.Contains(conf, want) {
			n.t.Errorf("the packaged %s has no line %q", configPath, strings.TrimSpace(want))
		}
	}
	if out, _, err := n.Exec(ctx, "dpkg-query", "-W", "-f", "${Conffiles}", "redis-appliance"); err != nil || !strings.Contains(out, configPath) {
		n.t.Errorf("%s is not a conffile of the package (%q %v)", configPath, out, err)
	}
	// The man page renders, and bash completes the CLI's verbs.
	if out, _, err := n.Exec(ctx, "sh", "-c", "zcat /usr/share/man/man1/redis-appliance-db-create.1.gz | MANWIDTH=80 man -l - 2>/dev/null | col -b"); err != nil || !strings.Contains(out, "--memory") {
		n.t.Errorf("man redis-appliance-db-create does not render the --memory option: %v\n%s", err, out)
	}
	// Bash completion: the script parses, and the binary's completion
	// hook it calls offers the CLI's verbs. Sourced for real when the host
	// has bash-completion (the script needs its helpers).
	if _, stderr, err := n.Exec(ctx, "bash", "-n", "/usr/share/bash-completion/completions/redis-appliance"); err != nil {
		n.t.Errorf("the bash completion script does not parse: %v %s", err, stderr)
	}
	if out, _, err := n.cli(ctx, "__complete", "d"); err != nil || !strings.Contains(out, "db") {
		n.t.Errorf("completing `redis-appliance d` does not offer db: %v\n%s", err, out)
	}
	if n.exists(ctx, "/usr/share/bash-completion/bash_completion") {
		if out, _, err := n.Exec(ctx, "bash", "-c", `source /usr/share/bash-completion/bash_completion
source /usr/share/bash-completion/completions/redis-appliance
COMP_WORDS=(redis-appliance d); COMP_CWORD=1; COMP_LINE="redis-appliance d"; COMP_POINT=${#COMP_LINE}
__start_redis-appliance redis-appliance d redis-appliance; printf '%s\n' "${COMPREPLY[@]}"`); err != nil || !strings.Contains(out, "db") {
			n.t.Errorf("bash completion of `redis-appliance d` does not offer db: %v\n%s", err, out)
		}
	}
}

// checkAgentUnit checks the agent's unit as systemd loaded it.
func (n *node) checkAgentUnit(ctx context.Context) {
	n.t.Helper()
	out := n.MustExec(ctx, "systemctl", "show", agentName, "-p",
		"Type,Restart,WatchdogUSec,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,FragmentPath,User")
	props := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		props[k] = v
	}
	for k, want := range map[string]string{
		"Type":            "notify",
		"Restart":         "on-failure",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"ProtectHome":     "yes",
		"PrivateTmp":      "yes",
		"FragmentPath":    "/lib/systemd/system/" + agentName,
	} {
		if props[k] != want {
			n.t.Errorf("%s: %s=%q, want %q", agentName, k, props[k], want)
		}
	}
	if props["WatchdogUSec"] == "" || props["WatchdogUSec"] == "0" || props["WatchdogUSec"] == "infinity" {
		n.t.Errorf("%s has no watchdog (WatchdogUSec=%q)", agentName, props["WatchdogUSec"])
	}
}

// instanceUser is the system user the package creates for the databases,
// with a group of the same name; adminGroup is the group of the API socket.
const (
	instanceUser = "redis-appliance"
	adminGroup   = "redis-appliance-admin"
)

// getent returns the fields of one entry of a database of getent(1)
// (passwd, group), nil when there is none.
func (n *node) getent(ctx context.Context, db, key string) []string {
	n.t.Helper()
	out, _, err := n.Exec(ctx, "getent", db, key)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(out), ":")
}

// checkSystemUser checks the user and the groups the package creates: a
// system user redis-appliance whose primary (and only) group is the
// system group redis-appliance, who cannot log in and whose home is the
// state directory (left to root), and a separate system group
// redis-appliance-admin for the API socket that the user is not in.
func (n *node) checkSystemUser(ctx context.Context, nologin string) {
	n.t.Helper()
	pw := n.getent(ctx, "passwd", instanceUser)
	if len(pw) != 7 {
		n.t.Errorf("the package created no %s user (getent passwd: %q)", instanceUser, pw)
		return
	}
	gr := n.getent(ctx, "group", instanceUser)
	if len(gr) != 4 {
		n.t.Errorf("the package created no %s group (getent group: %q)", instanceUser, gr)
		return
	}
	admin := n.getent(ctx, "group", adminGroup)
	if len(admin) != 4 {
		n.t.Errorf("the package created no %s group (getent group: %q)", adminGroup, admin)
		return
	}
	uid, _ := strconv.Atoi(pw[2])
	sysMax := 999
	if out, _, err := n.Exec(ctx, "awk", "$1 == \"SYS_UID_MAX\" { print $2 }", "/etc/login.defs"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(out)); err == nil {
			sysMax = v
		}
	}
	if uid <= 0 || uid > sysMax {
		n.t.Errorf("user %s has uid %d, want a system uid (1-%d)", instanceUser, uid, sysMax)
	}
	for _, g := range [][]string{gr, admin} {
		if gid, _ := strconv.Atoi(g[2]); gid <= 0 || gid > sysMax {
			n.t.Errorf("group %s has gid %d, want a system gid (1-%d)", g[0], gid, sysMax)
		}
	}
	if pw[3] != gr[2] {
		n.t.Errorf("user %s has primary gid %s, want %s (group %s)", instanceUser, pw[3], gr[2], instanceUser)
	}
	if pw[5] != dataDir {
		n.t.Errorf("user %s has home %q, want %s", instanceUser, pw[5], dataDir)
	}
	if pw[6] != nologin {
		n.t.Errorf("user %s has shell %q, want %s (no login)", instanceUser, pw[6], nologin)
	}
	if got := strings.TrimSpace(n.MustExec(ctx, "id", "-nG", instanceUser)); got != instanceUser {
		n.t.Errorf("user %s is in the groups %q, want only %s (never %s)", instanceUser, got, instanceUser, adminGroup)
	}
	if admin[2] == gr[2] {
		n.t.Errorf("groups %s and %s share gid %s", instanceUser, adminGroup, gr[2])
	}
	// Its home is not its own: the state directory stays root:root 0711.
	if got := strings.TrimSpace(n.MustExec(ctx, "stat", "-c", "%a %U %G", dataDir)); got != "711 root root" {
		n.t.Errorf("%s (the home of %s): %q, want 711 root root", dataDir, instanceUser, got)
	}
}

// checkRunsAsInstanceUser checks that database db's unit runs redis-server
// as the package's user redis-appliance (not Debian's redis) with no other
// group than its own: neither the admin group nor root's.
func (n *node) checkRunsAsInstanceUser(ctx context.Context, db string) {
	n.t.Helper()
	unit := unitName(db)
	if got := n.prop(ctx, unit, "User"); got != instanceUser {
		n.t.Errorf("%s: User=%q, want %s", unit, got, instanceUser)
	}
	if got := n.prop(ctx, unit, "Group"); got != instanceUser {
		n.t.Errorf("%s: Group=%q, want %s", unit, got, instanceUser)
	}
	uid := strings.TrimSpace(n.MustExec(ctx, "id", "-u", instanceUser))
	gid := strings.TrimSpace(n.MustExec(ctx, "id", "-g", instanceUser))
	pid := n.mainPID(ctx, unit)
	if pid == 0 {
		n.t.Errorf("%s has no main process", unit)
		return
	}
	status := n.MustExec(ctx, "cat", fmt.Sprintf("/proc/%d/status", pid))
	comm := strings.TrimSpace(n.MustExec(ctx, "cat", fmt.Sprintf("/proc/%d/comm", pid)))
	if comm != "redis-server" {
		n.t.Errorf("the main process of %s is %q, want redis-server", unit, comm)
	}
	fields := map[string][]string{}
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[k] = strings.Fields(v)
		}
	}
	// Real, effective, saved and file-system ids, all four.
	if got := fields["Uid"]; len(got) != 4 || slices.ContainsFunc(got, func(v string) bool { return v != uid }) {
		n.t.Errorf("redis-server (pid %d) of %s runs with uids %v, want %s (%s) for all", pid, unit, got, uid, instanceUser)
	}
	if got := fields["Gid"]; len(got) != 4 || slices.ContainsFunc(got, func(v string) bool { return v != gid }) {
		n.t.Errorf("redis-server (pid %d) of %s runs with gids %v, want %s (%s) for all", pid, unit, got, gid, instanceUser)
	}
	if got := fields["Groups"]; slices.ContainsFunc(got, func(v string) bool { return v != gid }) {
		n.t.Errorf("redis-server (pid %d) of %s has the supplementary groups %v, want none but %s (%s)", pid, unit, got, gid, instanceUser)
	}
	if got := strings.TrimSpace(n.MustExec(ctx, "stat", "-c", "%a %U %G", instanceDir(db))); got != "700 "+instanceUser+" "+instanceUser {
		n.t.Errorf("%s: %q, want 700 %s %s", instanceDir(db), got, instanceUser, instanceUser)
	}
}

// checkSocketGroup checks that members of the redis-appliance-admin group
// use the CLI without root, and that other users cannot: neither one
// without a group, nor the instance user redis-appliance (what a
// redis-server process runs as), nor another member of its group.
func (n *node) checkSocketGroup(ctx context.Context) {
	n.t.Helper()
	if _, _, err := n.Exec(ctx, "getent", "group", adminGroup); err != nil {
		n.t.Errorf("the package created no %s group: %v", adminGroup, err)
		return
	}
	n.MustExec(ctx, "useradd", "--no-create-home", "--groups", adminGroup, "alice")
	n.MustExec(ctx, "useradd", "--no-create-home", "bob")
	n.MustExec(ctx, "useradd", "--no-create-home", "--groups", instanceUser, "carol")
	env := []string{"REDIS_APPLIANCE_SOCKET=/run/redis-appliance/api.sock"}
	if out, stderr, err := n.ExecEnv(ctx, env, "runuser", "-u", "alice", "--", "redis-appliance", "cluster", "status"); err != nil {
		n.t.Errorf("alice (in group %s) cannot use the CLI: %v %s %s", adminGroup, err, out, stderr)
	}
	refused := func(who string, args ...string) {
		n.t.Helper()
		_, stderr, err := n.ExecEnv(ctx, env, append(args, "redis-appliance", "cluster", "status")...)
		var ee *lab.ExecError
		if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
			n.t.Errorf("%s used the CLI: %v", who, err)
		} else if !strings.Contains(strings.ToLower(stderr), "permission denied") {
			n.t.Errorf("%s is refused with %q, want a message that says permission denied", who, strings.TrimSpace(stderr))
		}
	}
	refused("bob (in no group)", "runuser", "-u", "bob", "--")
	refused("carol (in group "+instanceUser+")", "runuser", "-u", "carol", "--")
	// The instance user has no login shell: setpriv switches to it (and
	// its groups, as systemd's User= does) without one.
	refused("the instance user "+instanceUser, "setpriv", "--reuid="+instanceUser, "--regid="+instanceUser, "--init-groups", "--")
}

// checkRemoved checks the host after apt-get remove.
func (n *node) checkRemoved(ctx context.Context, config string) {
	n.t.Helper()
	if got := n.prop(ctx, agentName, "ActiveState"); got != "inactive" && got != "failed" {
		n.t.Errorf("after remove the agent is %s, want stopped", got)
	}
	if got := n.isEnabled(ctx, agentName); got == "enabled" {
		n.t.Errorf("after remove %s is still enabled", agentName)
	}
	if n.exists(ctx, "/usr/bin/redis-appliance") {
		n.t.Error("after remove /usr/bin/redis-appliance is still there")
	}
	if got, _, _ := n.Exec(ctx, "cat", configPath); got != config {
		n.t.Errorf("remove changed or deleted %s", configPath)
	}
	for _, path := range []string{raftDir, dataDir + "/cluster.key", instanceDir("cache") + "/redis.conf", unitDir + "/" + unitName("cache")} {
		if !n.exists(ctx, path) {
			n.t.Errorf("remove deleted %s", path)
		}
	}
}

// checkPurged checks the host after apt-get purge: nothing of the agent is
// left but the redis-appliance user and the redis-appliance and
// redis-appliance-admin groups (Debian leaves system users and groups).
func (n *node) checkPurged(ctx context.Context, e endpoint, unit string) {
	n.t.Helper()
	if st, v := n.dpkgStatus(ctx); st != "" && !strings.HasPrefix(st, "un") && !strings.HasPrefix(st, "pn") {
		n.t.Errorf("after purge dpkg says %q %q, want not installed", st, v)
	}
	for _, path := range []string{dataDir, "/etc/redis-appliance", "/run/redis-appliance", unitDir + "/" + unit} {
		if n.exists(ctx, path) {
			n.t.Errorf("after purge %s is still there", path)
		}
	}
	if left, _, _ := n.Exec(ctx, "find", "/etc/systemd", "-name", "redis-appliance*"); strings.TrimSpace(left) != "" {
		n.t.Errorf("after purge these are left in /etc/systemd:\n%s", left)
	}
	if got := n.prop(ctx, unit, "LoadState"); got != "not-found" {
		n.t.Errorf("after purge %s is %s, want not-found", unit, got)
	}
	if out, err := n.redis(ctx, e, "ping"); err == nil && out == "PONG" {
		n.t.Error("after purge the database still answers PING")
	}
	if servers := n.redisServers(ctx); len(servers) != 0 {
		n.t.Errorf("after purge redis-server processes are left: %q", servers)
	}
	if pw := n.getent(ctx, "passwd", instanceUser); pw == nil {
		n.t.Errorf("purge deleted the system user %s (Debian keeps system users)", instanceUser)
	}
	for _, g := range []string{instanceUser, adminGroup} {
		if gr := n.getent(ctx, "group", g); gr == nil {
			n.t.Errorf("purge deleted the system group %s (Debian keeps system groups)", g)
		}
	}
}

// lintian on the .deb reports no error. Warnings are logged.
func TestPackage_DebHasNoLintianErrors(t *testing.T) {
	t.Parallel()
	p := mustPackages(t)
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatalf("lintian is not installed (apt-get install lintian): %v", err)
	}
	ctx := timeout(t, 3*time.Minute)
	cmd := exec.CommandContext(ctx, "lintian", "--display-info", "--show-overrides", p.deb1)
	out, err := cmd.CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(p.deb1), out)
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		t.Errorf("lintian reports errors:\n%s", strings.Join(errs, "\n"))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("lintian did not run: %v", err)
	}
}

// The .rpm, read with rpm -qp, holds what the .deb holds in the RPM
// family's places, and its scriptlets enable and start on install, restart
// on upgrade, stop and disable on erase, and never delete the state (RPM
// has no purge).
func TestPackage_RPMHasTheFilesAndScriptletsItShould(t *testing.T) {
	t.Parallel()
	p := mustPackages(t)
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatalf("rpm is not installed (apt-get install rpm): %v", err)
	}
	ctx := timeout(t, time.Minute)
	rpmq := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "rpm", append([]string{"-qp"}, append(args, p.rpm1)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Logf("rpm -qp --info --list --scripts:\n%s", rpmq("--info", "--list", "--scripts"))

	info := rpmq("--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}")
	if want := "redis-appliance " + p.v1 + " 1 x86_64"; info != want {
		t.Errorf("rpm name, version, release, arch: %q, want %q", info, want)
	}
	if got := rpmq("--qf", "%{LICENSE}"); got != "Apache-2.0" {
		t.Errorf("rpm License: %q, want Apache-2.0", got)
	}
	requires := strings.Fields(rpmq("--requires"))
	if !slices.Contains(requires, "redis") {
		t.Errorf("the rpm does not require redis (the RHEL family's redis-server): %v", requires)
	}
	files := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(rpmq("--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}|%{FILENAMES}\n]")), "\n") {
		attrs, name, _ := strings.Cut(line, "|")
		files[name] = strings.TrimSpace(attrs)
	}
	for path, want := range map[string]string{
		"/usr/bin/redis-appliance":                                  "-rwxr-xr-x root:root",
		"/usr/lib/systemd/system/" + agentName:                      "-rw-r--r-- root:root",
		configPath:                                                  "-rw-r--r-- root:root cn",
		"/var/lib/redis-appliance":                                  "drwx--x--x root:root",
		"/usr/share/man/man1/redis-appliance-db-create.1.gz":        "-rw-r--r-- root:root",
		"/usr/share/bash-completion/completions/redis-appliance":    "-rw-r--r-- root:root",
		"/usr/share/zsh/site-functions/_redis-appliance":            "-rw-r--r-- root:root",
		"/usr/share/fish/vendor_completions.d/redis-appliance.fish": "-rw-r--r-- root:root",
		"/usr/share/licenses/redis-appliance/LICENSE":               "-rw-r--r-- root:root l",
		"/usr/share/licenses/redis-appliance/THIRD-PARTY-LICENSES":  "-rw-r--r-- root:root l",
	} {
		got, ok := files[path]
		switch {
		case !ok:
			t.Errorf("the rpm has no %s", path)
		case !strings.HasPrefix(got, want):
			t.Errorf("rpm %s: %q, want %q (c: config, n: noreplace, l: license)", path, got, want)
		}
	}

	// The scriptlets, one by one. $1 is the number of instances of the
	// package left: 1 on install, 2 on upgrade in %post; 0 on erase, 1 on
	// upgrade in %preun and %postun.
	scripts := map[string]string{}
	for _, s := range []string{"PREIN", "POSTIN", "PREUN", "POSTUN"} {
		scripts[s] = rpmq("--qf", "%{"+s+"}")
	}
	expect := func(s string, patterns ...string) {
		t.Helper()
		for _, pat := range patterns {
			if !regexp.MustCompile(pat).MatchString(scripts[s]) {
				t.Errorf("%%%s has nothing matching %q:\n%s", strings.ToLower(s), pat, scripts[s])
			}
		}
	}
	expect("PREIN",
		`getent group redis-appliance >/dev/null \|\| groupadd -r redis-appliance\n`,
		`getent passwd redis-appliance >/dev/null \|\|\s+useradd -r -g redis-appliance -d /var/lib/redis-appliance -s /sbin/nologin -M\b[^\n]*(\\\n[^\n]*)*redis-appliance\n`,
		`getent group redis-appliance-admin >/dev/null \|\| groupadd -r redis-appliance-admin\n`,
		// The user's group must exist before useradd -g names it.
		`(?s)groupadd -r redis-appliance\n.*useradd `)
	expect("POSTIN", `systemctl daemon-reload`, `(?s)"\$1" -eq 1 \].*systemctl --no-reload enable redis-appliance\.service.*systemctl start redis-appliance\.service`)
	expect("PREUN", `(?s)"\$1" -eq 0 \].*systemctl --no-reload disable redis-appliance\.service.*systemctl stop redis-appliance\.service`)
	expect("POSTUN", `systemctl daemon-reload`, `(?s)"\$1" -ge 1 \].*systemctl try-restart redis-appliance\.service`)
	for s, body := range scripts {
		for _, line := range strings.Split(body, "\n") {
			code, _, _ := strings.Cut(line, "#")
			if regexp.MustCompile(`\brm\b|/var/lib/redis-appliance/|userdel|groupdel`).MatchString(code) {
				t.Errorf("%%%s deletes something (RPM has no purge; data must survive an erase): %s", strings.ToLower(s), line)
			}
		}
	}
}

// The .rpm's scriptlets do on a real systemd host what they say: Debian's
// rpm installs the package (--nodeps: the host's redis-server comes from
// dpkg), upgrades it and erases it, running them with RPM's own $1.
func TestPackage_RPMScriptletsInstallUpgradeAndEraseOnSystemd(t *testing.T) {
	t.Parallel()
	p := mustPackages(t)
	n := bootPackageHost(t, p, false)
	ctx := timeout(t, 5*time.Minute)
	rpm := func(args ...string) string {
		t.Helper()
		// --force-debian: Debian's rpm refuses to install otherwise.
		out, stderr, err := n.Exec(ctx, append([]string{"rpm", "--nodeps", "--force-debian"}, args...)...)
		if err != nil {
			t.Fatalf("rpm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out + stderr
	}

	if out := rpm("-i", p.inHost(p.rpm1)); !strings.Contains(out, "redis-appliance cluster init") {
		t.Errorf("%%post does not tell the operator the next step:\n%s", out)
	}
	n.waitClusterStatus(ctx)
	if got := n.isEnabled(ctx, agentName); got != "enabled" {
		t.Errorf("after rpm -i %s is %q, want enabled", agentName, got)
	}
	// %pre's useradd; /sbin/nologin is /usr/sbin/nologin on a merged-/usr
	// host.
	n.checkSystemUser(ctx, "/sbin/nologin")
	if got := strings.TrimSpace(n.MustExec(ctx, "stat", "-c", "%a %U %G", "/run/redis-appliance/api.sock")); got != "660 root "+adminGroup {
		t.Errorf("/run/redis-appliance/api.sock: %q, want 660 root %s", got, adminGroup)
	}
	n.mustCLI(ctx, "cluster", "init")
	n.createDB(ctx, "cache", "nordb", "64mb")
	e := n.url(ctx, "cache")
	n.mustRedis(ctx, e, "set", "greeting", "hello")
	n.checkRunsAsInstanceUser(ctx, "cache")

	agentPID := n.mainPID(ctx, agentName)
	rpm("-U", p.inHost(p.rpm2))
	n.waitActive(ctx, agentName, agentPID)
	if got := strings.TrimSpace(n.mustCLI(ctx, "--version")); !strings.Contains(got, p.v2) {
		t.Errorf("after rpm -U redis-appliance --version says %q, want %s", got, p.v2)
	}
	if got := n.mustRedis(ctx, e, "get", "greeting"); got != "hello" {
		t.Errorf("after rpm -U GET greeting = %q", got)
	}

	rpm("-e", "redis-appliance")
	if got := n.prop(ctx, agentName, "ActiveState"); got != "inactive" && got != "failed" {
		t.Errorf("after rpm -e the agent is %s, want stopped", got)
	}
	if got := n.isEnabled(ctx, agentName); got == "enabled" {
		t.Errorf("after rpm -e %s is still enabled", agentName)
	}
	for _, path := range []string{raftDir, dataDir + "/cluster.key", instanceDir("cache")} {
		if !n.exists(ctx, path) {
			t.Errorf("rpm -e deleted %s", path)
		}
	}
	for db, key := range map[string]string{"passwd": instanceUser, "group": adminGroup} {
		if n.getent(ctx, db, key) == nil {
			t.Errorf("rpm -e deleted %s %s", db, key)
		}
	}
	if got := n.mustRedis(ctx, e, "get", "greeting"); got != "hello" {
		t.Errorf("after rpm -e the database answers GET greeting = %q, want hello (erase never stops a database)", got)
	}
}
