// Package terminal makes text that comes from the cluster or the network
// (Service and node names, Event messages, an agent's answer) safe to print
// on a person's terminal: control characters, escape sequences and
// invisible format characters (bidirectional overrides) are written as Go
// escapes, so they can be read but never act on the terminal.
package terminal

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Safe returns s with every rune that is not printable (and not a plain
// space) escaped as \xNN, \uNNNN or \UNNNNNNNN, and invalid UTF-8 bytes as
// \xNN. Printable text, accents and scripts of every language included,
// comes back unchanged.
func Safe(s string) string {
	if isSafe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

func isSafe(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (r != ' ' && !unicode.IsPrint(r)) {
			return false
		}
		i += n
	}
	return true
}
