package terminal

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestSafe(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "demo/web", want: "demo/web"},
		{name: "other scripts", in: "café 東京 ñandú", want: "café 東京 ñandú"},
		{name: "colour escape", in: "web\x1b[31mred", want: `web\x1b[31mred`},
		{name: "cursor up and erase line", in: "ok\x1b[1A\x1b[2K", want: `ok\x1b[1A\x1b[2K`},
		{name: "OSC title", in: "\x1b]0;pwned\x07", want: `\x1b]0;pwned\a`},
		{name: "newline and tab", in: "a\nb\tc\r", want: `a\nb\tc\r`},
		{name: "C1 CSI", in: "a\u009b31m", want: `a\u009b31m`},
		{name: "bidi override", in: "gnp.\u202eexe", want: `gnp.\u202eexe`},
		{name: "invalid UTF-8", in: "a\xffb", want: `a\xffb`},
		{name: "DEL", in: "a\x7f", want: `a\x7f`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Safe(tc.in)); diff != "" {
				t.Errorf("Safe(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

// FuzzSafe: what Safe returns is valid UTF-8 with nothing but printable
// runes and spaces, and printable text is left as it is.
func FuzzSafe(f *testing.F) {
	f.Add("demo/web")
	f.Add("\x1b[2J\x1b[H")
	f.Add("a\xff\u202e")
	f.Fuzz(func(t *testing.T, s string) {
		out := Safe(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Safe(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("Safe(%q) = %q holds %U", s, out, r)
			}
		}
		if isSafe(s) && out != s {
			t.Fatalf("Safe(%q) changed printable text to %q", s, out)
		}
		if !strings.ContainsRune(s, '\\') && !isSafe(s) && out == s {
			t.Fatalf("Safe(%q) left it unchanged", s)
		}
	})
}
