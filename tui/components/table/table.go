// Package table is the list component every view of the terminal UI uses:
// columns that fit the screen, a cursor, and a window that scrolls.
//
// It renders only the rows in its window, asking the caller for their
// cells, so a list of thousands costs no more to draw than a screenful.
// The cursor is always marked with "▸" as well as highlighted, so it stays
// visible without colours.
package table

import (
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/charmbracelet/bubbles/key"

	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// Column describes one column.
type Column struct {
	Title string
	// Width is the column's width in cells; for the Flex column, its
	// minimum.
	Width int
	// Flex makes the column take the width the others leave (at most one
	// column should).
	Flex bool
	// Right aligns the cells on the right (numbers).
	Right bool
	// Drop orders which columns go first on a narrow screen: the highest
	// Drop goes first; 0 is never dropped.
	Drop int
}

// gap is the space between columns; marker the width of the cursor mark.
const (
	gap    = 2
	marker = 2
)

// Model is a table. The zero value is not usable: use New.
type Model struct {
	ctx    *uictx.Context
	cols   []Column
	n      int
	cursor int
	offset int
	width  int
	height int
	// Focused shows the cursor; an unfocused table shows none.
	Focused bool
}

// New returns a focused table with the given columns.
func New(ctx *uictx.Context, cols []Column) Model {
	return Model{ctx: ctx, cols: cols, Focused: true}
}

// SetColumns replaces the columns (to change a title, say).
func (m *Model) SetColumns(cols []Column) { m.cols = cols }

// Columns returns the columns.
func (m Model) Columns() []Column { return m.cols }

// SetSize sets the area the table draws in: w cells wide, h lines high
// including the header line.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, max(h, 2)
	m.clamp()
}

// SetRows sets how many rows there are, keeping the cursor in range.
func (m *Model) SetRows(n int) {
	m.n = n
	m.clamp()
}

// Rows returns how many rows there are.
func (m Model) Rows() int { return m.n }

// Cursor returns the row under the cursor (0 when there are none).
func (m Model) Cursor() int { return m.cursor }

// SetCursor moves the cursor to row i and scrolls it into view.
func (m *Model) SetCursor(i int) {
	m.cursor = i
	m.clamp()
}

// Pin moves the cursor to row i and scrolls so that it is on line `line`
// of the window (0 is the first row), as far as the rows allow: when rows
// are added above the cursor, what is on screen stays where it was.
func (m *Model) Pin(i, line int) {
	m.cursor = i
	m.offset = i - line
	m.clamp()
}

// page is how many rows the window shows.
func (m Model) page() int { return max(1, m.height-1) }

func (m *Model) clamp() {
	m.cursor = min(max(m.cursor, 0), max(m.n-1, 0))
	page := m.page()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+page {
		m.offset = m.cursor - page + 1
	}
	// Do not leave empty lines under the last row when rows go away.
	m.offset = min(max(m.offset, 0), max(m.n-page, 0))
}

// Window returns the rows on screen: [from, to).
func (m Model) Window() (from, to int) {
	return m.offset, min(m.offset+m.page(), m.n)
}

// Position describes the window for a title: "1-15 of 200", or "" when
// every row is on screen.
func (m Model) Position() string {
	from, to := m.Window()
	if from == 0 && to == m.n {
		return ""
	}
	return fmt.Sprintf("%d-%d of %d", from+1, to, m.n)
}

// Update moves the cursor on the list keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok || !m.Focused {
		return m, nil
	}
	km := m.ctx.Keys
	switch {
	case key.Matches(k, km.Up):
		m.cursor--
	case key.Matches(k, km.Down):
		m.cursor++
	case key.Matches(k, km.PageUp):
		m.cursor -= m.page()
		m.offset -= m.page()
	case key.Matches(k, km.PageDown):
		m.cursor += m.page()
		m.offset += m.page()
	case key.Matches(k, km.Top):
		m.cursor = 0
	case key.Matches(k, km.Bottom):
		m.cursor = m.n - 1
	default:
		return m, nil
	}
	m.clamp()
	return m, nil
}

// layout returns the indexes of the columns that fit and their widths.
func (m Model) layout() ([]int, []int) {
	shown := make([]int, 0, len(m.cols))
	for i := range m.cols {
		shown = append(shown, i)
	}
	avail := m.width - marker
	total := func() int {
		t := 0
		for _, i := range shown {
			t += m.cols[i].Width
		}
		return t + gap*max(len(shown)-1, 0)
	}
	for total() > avail {
		drop, worst := -1, 0
		for j, i := range shown {
			if d := m.cols[i].Drop; d > worst || (d == worst && d > 0) {
				drop, worst = j, d
			}
		}
		if drop < 0 {
			break
		}
		shown = append(shown[:drop], shown[drop+1:]...)
	}
	widths := make([]int, len(shown))
	extra := max(avail-total(), 0)
	for j, i := range shown {
		widths[j] = m.cols[i].Width
		if m.cols[i].Flex {
			widths[j] += extra
			extra = 0
		}
	}
	return shown, widths
}

// Dropped says the width left some columns out.
func (m Model) Dropped() bool {
	shown, _ := m.layout()
	return len(shown) < len(m.cols)
}

// View draws the header and the rows in the window; cells(i) returns the
// cells of row i, one per column (styled or not). empty is shown when
// there are no rows.
func (m Model) View(cells func(i int) []string, empty string) string {
	shown, widths := m.layout()
	st := m.ctx.Styles
	var b strings.Builder
	hdr := make([]string, len(shown))
	for j, i := range shown {
		hdr[j] = m.cell(m.cols[i], m.cols[i].Title, widths[j])
	}
	b.WriteString(strings.Repeat(" ", marker) + st.Header.Render(strings.Join(hdr, strings.Repeat(" ", gap))))
	if m.n == 0 {
		b.WriteString("\n" + strings.Repeat(" ", marker) + st.Faint.Render(empty))
		return b.String()
	}
	from, to := m.Window()
	for r := from; r < to; r++ {
		row := cells(r)
		out := make([]string, len(shown))
		sel := m.Focused && r == m.cursor
		for j, i := range shown {
			c := ""
			if i < len(row) {
				c = row[i]
			}
			if sel {
				// The highlight must span the whole row: styles inside
				// a cell would end it early.
				c = layout.Plain(c)
			}
			out[j] = m.cell(m.cols[i], c, widths[j])
		}
		line := strings.Join(out, strings.Repeat(" ", gap))
		b.WriteByte('\n')
		if sel {
			b.WriteString("▸ " + st.Selected.Render(line))
		} else {
			b.WriteString("  " + line)
		}
	}
	return b.String()
}

func (m Model) cell(c Column, s string, w int) string {
	if c.Right {
		return layout.PadLeft(s, w)
	}
	return layout.Pad(s, w)
}
