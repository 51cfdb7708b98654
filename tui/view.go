package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/tui/components/dblist"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// MinWidth and MinHeight are the smallest terminal the UI draws in.
const (
	MinWidth  = 60
	MinHeight = 16
)

// maxBannerLines caps the banner so the content keeps most of the screen.
const maxBannerLines = 2

// chrome is the lines around the content: header, tabs, keys; the
// message lines come on top.
const chrome = 3

// maxMessageLines caps the messages: an error from the agent can be long,
// and is worth two lines, not the screen.
const maxMessageLines = 3

func formatSize(n int64) string { return sizing.FormatSize(n) }

// secs converts the API's float seconds.
func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// contentHeight is what is left for the current view.
func (m Model) contentHeight() int {
	return max(m.ctx.Height-chrome-m.bannerLines()-layout.Lines(m.messageView()), 1)
}

// layout gives every component its area; Update calls it after each
// message, so Views only draw.
func (m *Model) layout() {
	w, h := m.ctx.Width, m.contentHeight()
	m.cluster.SetSize(w, h)
	m.dbs.SetSize(w, h)
	m.events.SetSize(w, h)
	m.detail.SetSize(w, h)
	m.form.SetSize(w, h)
	m.confirm.SetSize(w, h)
	m.userForm.SetSize(w, h)
	for i := range m.secrets {
		m.secrets[i].SetSize(w, h)
	}
}

// View draws the whole screen: exactly the terminal's size, never more,
// so nothing wraps or scrolls.
func (m Model) View() string {
	w, h := m.ctx.Width, m.ctx.Height
	if w == 0 || h == 0 {
		return ""
	}
	if w < MinWidth || h < MinHeight {
		msg := fmt.Sprintf("The terminal is %dx%d.\nredis-appliance tui needs at least %dx%d.\nEnlarge it, or press q to quit.", w, h, MinWidth, MinHeight)
		return layout.Center(msg, w, h)
	}
	parts := []string{m.headerView(), m.tabsView()}
	if b := m.bannerView(); b != "" {
		parts = append(parts, b)
	}
	parts = append(parts, layout.Fit(m.contentView(), w, m.contentHeight()), m.messageView(), m.footerView())
	return layout.Fit(strings.Join(parts, "\n"), w, h)
}

func (m Model) headerView() string {
	st := m.ctx.Styles
	left := st.App.Render("redis-appliance")
	if m.hasStatus {
		s := m.status
		left += " " + s.Node + st.Faint.Render(" · "+s.RaftState)
	}
	var right string
	switch {
	case m.ctx.DataAt.IsZero():
		right = st.Warn.Render("○ connecting")
	case m.ctx.Stale:
		right = st.Err.Render("○ STALE") + st.Faint.Render(" data from "+uictx.FormatAge(m.ctx.Age())+" ago")
	default:
		right = st.OK.Render("● live") + st.Faint.Render(" updated "+uictx.FormatAge(m.ctx.Age())+" ago")
	}
	return layout.Spread(left, right, m.ctx.Width)
}

func (m Model) tabsView() string {
	st := m.ctx.Styles
	var b strings.Builder
	for t := range nTabs {
		label := fmt.Sprintf("%d %s", t+1, tabNames[t])
		if t == TabDatabases && m.dbsLoaded {
			label += fmt.Sprintf(" %d", len(m.dbs.Databases()))
		}
		if t == m.tab {
			// The brackets mark the tab where colours are off.
			b.WriteString(st.TabActive.Render("[" + label + "]"))
		} else {
			b.WriteString(st.TabInactive.Render(" " + label + " "))
		}
		b.WriteString(" ")
	}
	crumb := ""
	switch {
	case len(m.secrets) > 0:
		crumb = "password, shown once"
	case m.inHelp:
		crumb = "keys"
	case m.inConfirm:
		crumb = "confirm"
	case m.inForm && m.form.Source() != "":
		crumb = "new linked replica of " + m.form.Source()
	case m.inForm:
		crumb = "new database"
	case m.inUserForm:
		crumb = "new user of " + m.userForm.Database()
	case m.tab == TabDatabases && m.inDetail:
		crumb = m.detail.Name()
	}
	if crumb != "" {
		b.WriteString(st.Faint.Render("› " + crumb))
	}
	return b.String()
}

// banner says what is wrong with the connection or the cluster, worst
// first, and how old the data on screen is.
func (m Model) banner() (text string, isErr bool) {
	age := uictx.FormatAge(m.ctx.Age())
	every := m.ctx.Refresh.String()
	switch {
	case m.statusErr != nil && m.ctx.DataAt.IsZero():
		// The error in full is on the waiting screen below.
		return fmt.Sprintf("Cannot reach the agent; retrying every %s.", every), true
	case m.statusErr != nil:
		return fmt.Sprintf("Agent unreachable; showing data from %s ago, retrying every %s: %v", age, every, m.statusErr), true
	case m.hasStatus && m.status.RaftState == "none":
		return fmt.Sprintf("Node %s is not in a cluster yet: run redis-appliance cluster init, or cluster join.", m.status.Node), false
	case m.hasStatus && m.status.Leader == "":
		s := "No Raft leader"
		if !m.ctx.DataAt.IsZero() {
			s += fmt.Sprintf("; showing data from %s ago", age)
		}
		return s + fmt.Sprintf(": %s is %s and has not heard from a leader for %s. Changes are refused until one is elected.",
			m.status.Node, m.status.RaftState, uictx.FormatAge(secs(m.status.LastContactSeconds))), true
	case m.lastErr != nil && m.ctx.DataAt.IsZero():
		return fmt.Sprintf("Cannot read the cluster; retrying every %s.", every), true
	case m.lastErr != nil:
		return fmt.Sprintf("Refresh failed; showing data from %s ago, retrying every %s: %v", age, every, m.lastErr), true
	case m.ctx.Stale && !m.ctx.DataAt.IsZero():
		return fmt.Sprintf("No answer from the agent for %s; showing the data from then. Still trying.", age), false
	}
	return "", false
}

func (m Model) bannerView() string {
	text, isErr := m.banner()
	if text == "" {
		return ""
	}
	st := m.ctx.Styles
	style := st.BannerWarn
	prefix := "! "
	if isErr {
		style, prefix = st.BannerErr, "!! "
	}
	wrapped := st.Renderer.NewStyle().Width(m.ctx.Width - 1).Render(prefix + text)
	lines := strings.Split(wrapped, "\n")
	if len(lines) > maxBannerLines {
		lines = lines[:maxBannerLines]
		lines[maxBannerLines-1] = layout.Truncate(lines[maxBannerLines-1]+" …", m.ctx.Width-1)
	}
	for i, l := range lines {
		lines[i] = style.Render(layout.Pad(l, m.ctx.Width))
	}
	return strings.Join(lines, "\n")
}

func (m Model) bannerLines() int {
	b := m.bannerView()
	if b == "" {
		return 0
	}
	return layout.Lines(b)
}

func (m Model) contentView() string {
	w, h := m.ctx.Width, m.contentHeight()
	switch {
	case len(m.secrets) > 0:
		return m.secrets[0].View()
	case m.inHelp:
		return m.helpView(w, h)
	case m.inConfirm:
		return m.confirm.View()
	case m.inForm:
		return m.form.View()
	case m.inUserForm:
		return m.userForm.View()
	}
	switch m.tab {
	case TabCluster:
		if !m.hasStatus && !m.nodesLoaded {
			return m.waitingView(w, h)
		}
		return m.cluster.View()
	case TabDatabases:
		if !m.dbsLoaded {
			return m.waitingView(w, h)
		}
		if m.inDetail {
			return m.detail.View()
		}
		return m.dbs.View()
	}
	if !m.events.Loaded() && m.events.Err() == nil {
		return m.waitingView(w, h)
	}
	return m.events.View()
}

// waitingView stands in for a list before its first data: an empty list
// would say there is nothing, which is not known yet.
func (m Model) waitingView(w, h int) string {
	st := m.ctx.Styles
	s := "Waiting for the agent"
	if m.ctx.Endpoint != "" {
		s += " at " + m.ctx.Endpoint
	}
	s += "…"
	if m.lastErr != nil {
		s += "\n" + st.Faint.Width(min(w-4, 70)).Render("Last answer: "+m.lastErr.Error())
	}
	return layout.Center(s, w, h)
}

func (m Model) messageView() string {
	st := m.ctx.Styles
	var parts []string
	for _, p := range m.pending {
		parts = append(parts, st.Info.Render(fmt.Sprintf("⋯ %s %s %s", p.action.Ongoing(), p.subject(), uictx.FormatAge(m.ctx.Now.Sub(p.since)))))
	}
	if f := m.flash; f != nil {
		if f.err {
			parts = append(parts, st.Err.Render("✗ "+f.text)+st.Faint.Render(" (esc dismisses)"))
		} else {
			parts = append(parts, st.OK.Render("✓ "+f.text))
		}
	}
	if len(parts) == 0 && m.ctx.Endpoint != "" {
		parts = append(parts, st.Faint.Render(fmt.Sprintf("agent %s · refresh every %s", m.ctx.Endpoint, m.ctx.Refresh)))
	}
	return wrap(m.ctx, strings.Join(parts, "  "), maxMessageLines)
}

// wrap breaks s into lines of the screen's width, at most n of them.
func wrap(ctx *uictx.Context, s string, n int) string {
	lines := strings.Split(ctx.Styles.Renderer.NewStyle().Width(ctx.Width).Render(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
		lines[n-1] = layout.Truncate(lines[n-1]+"…", ctx.Width)
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// hint is a key in the footer. drop orders which hints give way when the
// line is too narrow, as table columns do: the highest first, 0 never.
// `?` lists them all.
type hint struct {
	b    key.Binding
	drop int
}

// shortHelp returns the keys of the current view for the footer. The
// actions on a database are those it can take: failover with replicas,
// promote and unlink for a replica that follows, replicate for a source
// that can be followed.
func (m Model) shortHelp() []hint {
	km := m.ctx.Keys
	keep := func(bs ...key.Binding) []hint {
		out := make([]hint, len(bs))
		for i, b := range bs {
			out[i] = hint{b: b}
		}
		return out
	}
	switch {
	case len(m.secrets) > 0:
		return keep(key.NewBinding(key.WithHelp("enter/esc", "close, forget the password")), km.ForceQuit)
	case m.inHelp:
		return keep(km.Help, km.Back)
	case m.inConfirm, m.inForm, m.inUserForm:
		return keep(km.Back, km.ForceQuit)
	case m.tab == TabDatabases && m.inDetail:
		hs := []hint{{km.Reveal, 3}}
		if !m.detail.Gone() {
			db := m.detail.Database()
			hs = append(hs, hint{km.NewUser, 3})
			if len(db.Users) > 0 {
				hs = append(hs, hint{km.RotateUser, 4})
			}
			hs = append(hs, m.databaseHints(db)...)
		}
		return append(hs, hint{km.Back, 2}, hint{km.Help, 0}, hint{km.Quit, 5})
	case m.tab == TabDatabases && m.dbs.Capturing(), m.tab == TabEvents && m.events.Capturing():
		return keep(
			key.NewBinding(key.WithHelp("enter", "keep the filter")),
			key.NewBinding(key.WithHelp("esc", "clear it")),
			km.ForceQuit,
		)
	case m.tab == TabDatabases:
		hs := []hint{{km.Open, 0}, {km.Filter, 2}, {km.Sort, 4}, {km.New, 3}}
		if db, ok := m.dbs.Selected(); ok {
			hs = append(hs, m.databaseHints(db)...)
		}
		return append(hs, hint{km.Help, 0}, hint{km.Quit, 5})
	case m.tab == TabCluster:
		return keep(km.Drain, km.New, km.NextTab, km.Help, km.Quit)
	case m.tab == TabEvents:
		return keep(km.Filter, km.NextTab, km.Help, km.Quit)
	}
	return keep(km.NextTab, km.Help, km.Quit)
}

// databaseHints are the actions db can take, for the footer.
func (m Model) databaseHints(db api.Database) []hint {
	km := m.ctx.Keys
	var hs []hint
	if len(dblist.Replicas(db)) > 0 {
		hs = append(hs, hint{km.Failover, 0})
	}
	if db.Follows != "" || db.ReadOnly {
		hs = append(hs, hint{km.Promote, 0})
	}
	if db.Follows != "" {
		hs = append(hs, hint{km.Unlink, 0})
	}
	if db.Follows == "" && !db.ReadOnly {
		hs = append(hs, hint{km.Replicate, 1})
	}
	return append(hs, hint{km.Restart, 0}, hint{km.Delete, 0})
}

func (m Model) footerView() string {
	st := m.ctx.Styles
	hs := m.shortHelp()
	render := func() string {
		parts := make([]string, len(hs))
		for i, h := range hs {
			help := h.b.Help()
			parts[i] = st.Key.Render(help.Key) + " " + st.Faint.Render(help.Desc)
		}
		return strings.Join(parts, "  ")
	}
	line := render()
	for layout.Width(line) > m.ctx.Width {
		drop, worst := -1, 0
		for i, h := range hs {
			if h.drop > worst {
				drop, worst = i, h.drop
			}
		}
		if drop < 0 {
			break
		}
		hs = slices.Delete(hs, drop, drop+1)
		line = render()
	}
	return layout.Truncate(line, m.ctx.Width)
}

// helpView lists every key, in columns filled top to bottom.
func (m Model) helpView(w, h int) string {
	st := m.ctx.Styles
	const keyW, colW = 10, 26
	room := h - 2
	var cols [][]string
	var col []string
	for _, g := range m.ctx.Keys.Groups() {
		block := []string{st.Header.Render(g.Title)}
		for _, b := range g.Bindings {
			block = append(block, st.Key.Render(layout.Pad(b.Help().Key, keyW))+b.Help().Desc)
		}
		if len(col) > 0 && len(col)+1+len(block) > room {
			cols = append(cols, col)
			col = nil
		}
		if len(col) > 0 {
			col = append(col, "")
		}
		col = append(col, block...)
	}
	cols = append(cols, col)
	var b strings.Builder
	b.WriteString(st.Title.Render("KEYS") + st.Faint.Render("   ? or esc closes this") + "\n\n")
	for i := range room {
		var line strings.Builder
		for _, c := range cols {
			cell := ""
			if i < len(c) {
				cell = c[i]
			}
			line.WriteString(layout.Pad(cell, colW))
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return layout.Fit(b.String(), w, h)
}
