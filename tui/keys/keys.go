// Package keys is the terminal UI's key map: every binding, with the help
// text that `?` and the footer show, so that what the UI does and what it
// says it does come from one place.
package keys

import "github.com/charmbracelet/bubbles/key"

// KeyMap holds every binding of the UI.
type KeyMap struct {
	// Global.
	Quit      key.Binding
	ForceQuit key.Binding
	Help      key.Binding
	NextTab   key.Binding
	PrevTab   key.Binding
	Cluster   key.Binding
	Databases key.Binding
	Events    key.Binding
	Back      key.Binding

	// Moving in a list.
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Top      key.Binding
	Bottom   key.Binding

	// Databases.
	Open    key.Binding
	Filter  key.Binding
	Sort    key.Binding
	Reverse key.Binding
	New     key.Binding
	Restart key.Binding
	Delete  key.Binding
	Reveal  key.Binding

	// Replication of a database.
	Failover  key.Binding
	Promote   key.Binding
	Unlink    key.Binding
	Replicate key.Binding

	// Application users of a database, in its detail.
	NewUser    key.Binding
	RotateUser key.Binding

	// Nodes.
	Drain key.Binding

	// Forms and dialogs.
	NextField key.Binding
	PrevField key.Binding
	Left      key.Binding
	Right     key.Binding
	Submit    key.Binding
	Yes       key.Binding
	No        key.Binding
}

// Default returns the key map.
func Default() KeyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return KeyMap{
		Quit:      b("q", "quit", "q"),
		ForceQuit: b("ctrl+c", "quit", "ctrl+c"),
		Help:      b("?", "keys", "?"),
		NextTab:   b("tab", "next view", "tab"),
		PrevTab:   b("shift+tab", "previous view", "shift+tab"),
		Cluster:   b("1", "cluster", "1"),
		Databases: b("2", "databases", "2"),
		Events:    b("3", "events", "3"),
		Back:      b("esc", "back", "esc"),

		Up:       b("↑/k", "up", "up", "k"),
		Down:     b("↓/j", "down", "down", "j"),
		PageUp:   b("pgup", "page up", "pgup", "ctrl+b"),
		PageDown: b("pgdn", "page down", "pgdown", "ctrl+f"),
		Top:      b("g/home", "first", "home", "g"),
		Bottom:   b("G/end", "last", "end", "G"),

		Open:    b("enter", "open", "enter"),
		Filter:  b("/", "filter", "/"),
		Sort:    b("s", "sort", "s"),
		Reverse: b("S", "reverse sort", "S"),
		New:     b("n", "new", "n"),
		Restart: b("R", "restart", "R"),
		Delete:  b("D", "delete", "D"),
		Reveal:  b("r", "password", "r"),

		// Capitals, as restart and delete: they change the cluster.
		Failover:  b("F", "failover", "F"),
		Promote:   b("P", "promote", "P"),
		Unlink:    b("U", "unlink", "U"),
		Replicate: b("L", "replicate", "L"),

		// Lowercase, as new: each opens a form or a dialog first.
		NewUser:    b("a", "add user", "a"),
		RotateUser: b("p", "rotate user", "p"),

		Drain: b("d", "drain", "d"),

		NextField: b("tab/↓", "next field", "tab", "down"),
		PrevField: b("shift+tab/↑", "previous field", "shift+tab", "up"),
		Left:      b("←/→", "change choice", "left", "h"),
		Right:     b("→", "next choice", "right", "l", " "),
		Submit:    b("ctrl+s", "create", "ctrl+s"),
		Yes:       b("y", "confirm", "y"),
		No:        b("n/esc", "cancel", "n", "esc"),
	}
}

// Group is one section of the full key help.
type Group struct {
	Title    string
	Bindings []key.Binding
}

// Groups returns every binding, in sections, for the `?` screen. Keys
// that belong together share a line.
func (k KeyMap) Groups() []Group {
	h := func(keys, desc string) key.Binding { return key.NewBinding(key.WithHelp(keys, desc)) }
	return []Group{
		{"Everywhere", []key.Binding{h("1 2 3", "switch view"), h("tab", "next view"), h("?", "these keys"),
			h("esc", "back, close"), h("q", "quit"), h("ctrl+c", "quit anywhere")}},
		{"Lists", []key.Binding{h("↑↓ j k", "move"), h("pgup pgdn", "page"), h("g G", "first, last")}},
		{"Cluster", []key.Binding{h("d", "drain node")}},
		{"Events", []key.Binding{h("/", "filter")}},
		{"Database detail", []key.Binding{h("r", "show password"), h("F L P U", "as in the list"), h("R D", "restart, delete"), h("esc", "back to list")}},
		{"Databases", []key.Binding{h("enter", "open detail"), h("/", "filter"), h("s S", "sort, reverse"), h("", "e.g. by ops/s"),
			h("n", "new database"), h("L", "linked replica"), h("F", "planned failover"),
			h("P U", "promote, unlink"), h("R", "restart"), h("D", "delete")}},
		{"Forms, dialogs", []key.Binding{h("tab ↓", "next field"), h("S-tab ↑", "previous field"), h("← →", "choose"),
			h("↑↓", "pick (failover)"), h("enter", "next, create"), h("ctrl+s", "create"), h("y n", "yes, no"), h("esc", "cancel")}},
		{"Users (in the detail)", []key.Binding{h("a", "add a user"), h("p", "new password")}},
	}
}
