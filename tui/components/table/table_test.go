package table_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/tui/components/table"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/layout"
)

var cols = []table.Column{
	{Title: "NAME", Width: 10, Flex: true},
	{Title: "STATE", Width: 8},
	{Title: "NODE", Width: 8, Drop: 1},
	{Title: "PORT", Width: 6, Right: true, Drop: 2},
}

func cells(i int) []string {
	return []string{fmt.Sprintf("row-%02d", i), "running", "n1", fmt.Sprint(6400 + i)}
}

// TestNarrowScreenDropsColumnsInOrder: on a narrow screen the columns
// marked to go first go first, the others stay, and no line is wider than
// the screen.
func TestNarrowScreenDropsColumnsInOrder(t *testing.T) {
	for _, tc := range []struct {
		width int
		want  []string
		gone  []string
	}{
		{60, []string{"NAME", "STATE", "NODE", "PORT"}, nil},
		{38, []string{"NAME", "STATE", "NODE"}, []string{"PORT"}},
		{28, []string{"NAME", "STATE"}, []string{"PORT", "NODE"}},
	} {
		m := table.New(tuitest.Context(tc.width, 10), cols)
		m.SetSize(tc.width, 5)
		m.SetRows(3)
		v := m.View(cells, "")
		header := strings.Split(v, "\n")[0]
		for _, w := range tc.want {
			if !strings.Contains(header, w) {
				t.Errorf("width %d: header %q lacks %s", tc.width, header, w)
			}
		}
		for _, g := range tc.gone {
			if strings.Contains(header, g) {
				t.Errorf("width %d: header %q still has %s", tc.width, header, g)
			}
		}
		for _, l := range strings.Split(v, "\n") {
			if layout.Width(l) > tc.width {
				t.Errorf("width %d: line %q is %d wide", tc.width, l, layout.Width(l))
			}
		}
	}
}

// TestCursorStaysInTheWindow: moving by lines and pages and to the ends
// always keeps the cursor's row on screen, and the window never runs past
// the last row.
func TestCursorStaysInTheWindow(t *testing.T) {
	m := table.New(tuitest.Context(40, 10), cols)
	m.SetSize(40, 11) // a header and 10 rows
	m.SetRows(100)
	check := func(step string, wantCursor, wantFrom int) {
		t.Helper()
		from, to := m.Window()
		if m.Cursor() != wantCursor || from != wantFrom || m.Cursor() < from || m.Cursor() >= to {
			t.Fatalf("after %s: cursor %d window [%d,%d); want cursor %d from %d", step, m.Cursor(), from, to, wantCursor, wantFrom)
		}
	}
	for _, s := range []struct {
		key          string
		cursor, from int
	}{
		{"down", 1, 0}, {"pgdown", 11, 10}, {"pgdown", 21, 20}, {"end", 99, 90},
		{"pgdown", 99, 90}, {"up", 98, 90}, {"home", 0, 0}, {"up", 0, 0}, {"pgup", 0, 0},
	} {
		m, _ = m.Update(tuitest.Key(s.key))
		check(s.key, s.cursor, s.from)
	}
	if got := m.Position(); got != "1-10 of 100" {
		t.Errorf("Position() = %q", got)
	}
	// Rows going away pull the cursor and the window back.
	m.SetCursor(99)
	m.SetRows(5)
	check("SetRows(5)", 4, 0)
	if got := m.Position(); got != "" {
		t.Errorf("Position() with every row on screen = %q, want empty", got)
	}
}

// TestPin: rows added above the cursor move neither the cursor's row nor
// what is on screen; near the ends the window stays within the rows.
func TestPin(t *testing.T) {
	m := table.New(tuitest.Context(40, 10), cols)
	m.SetSize(40, 11) // a header and 10 rows
	m.SetRows(100)
	for _, c := range []struct{ row, line, wantFrom int }{
		{25, 3, 22},  // three rows above it on screen
		{2, 5, 0},    // cannot scroll above the first row
		{98, 1, 90},  // nor past the last
		{50, 20, 41}, // a line off the window: the cursor stays on screen
	} {
		m.Pin(c.row, c.line)
		if from, _ := m.Window(); m.Cursor() != c.row || from != c.wantFrom {
			t.Errorf("Pin(%d, %d): cursor %d from %d, want from %d", c.row, c.line, m.Cursor(), from, c.wantFrom)
		}
	}
}

// TestSelectedRowIsMarkedWithoutColours: the cursor's row carries a
// marker, so it shows where colours are off.
func TestSelectedRowIsMarkedWithoutColours(t *testing.T) {
	m := table.New(tuitest.Context(40, 10), cols)
	m.SetSize(40, 5)
	m.SetRows(3)
	m.SetCursor(1)
	lines := strings.Split(m.View(cells, ""), "\n")
	if !strings.HasPrefix(lines[2], "▸ row-01") || strings.HasPrefix(lines[1], "▸") {
		t.Fatalf("rows:\n%s", strings.Join(lines, "\n"))
	}
	if m.Rows() != 3 {
		t.Fatal("Rows")
	}
	m.SetRows(0)
	if got := m.View(cells, "nothing here"); !strings.Contains(got, "nothing here") {
		t.Fatalf("empty table: %q", got)
	}
}
