// Package tui will hold the bubbletea terminal UI (`redis-appliance tui`),
// one package per component, talking to the agent only through the API
// client in appliance/api. It is empty until the terminal UI is built.
package tui
