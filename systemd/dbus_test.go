package systemd

import (
	"testing"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// TestUnitFromPath proves the names of changed units are recovered from
// systemd's escaped object paths, including characters systemd escapes.
func TestUnitFromPath(t *testing.T) {
	for _, name := range []string{UnitPrefix + "cache-0.service", UnitPrefix + "a_b.c@d:e.service", "x.service"} {
		path := godbus.ObjectPath(systemdUnitPaths + "/" + sddbus.PathBusEscape(name))
		got, ok := unitFromPath(path)
		if !ok || got != name {
			t.Errorf("unitFromPath(%s) = %q, %v; want %q", path, got, ok, name)
		}
	}
	if _, ok := unitFromPath("/org/freedesktop/systemd1/job/42"); ok {
		t.Error("a job path was taken for a unit")
	}
}
