// Package logging builds the one structured logger (log/slog) that every mode
// of the metallb binary uses. Library packages receive the logger; none of them
// creates its own.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Keys used across the project so that logs can be filtered consistently.
const (
	KeyService   = "service"
	KeyIP        = "ip"
	KeyPool      = "pool"
	KeyNode      = "node"
	KeyPeer      = "peer"
	KeyInterface = "interface"
	KeyError     = "error"
)

// ParseLevel turns debug|info|warn|error into a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want one of debug, info, warn, error", s)
}

// New returns a logger writing to w in the given format (text or json) at the
// given level. The level is a *slog.LevelVar so it can be changed while running.
func New(w io.Writer, level *slog.LevelVar, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
