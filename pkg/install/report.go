package install

import (
	"fmt"
	"io"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// reporter is the one place enable speaks: what it does (steps and
// progress) on out, what it finds (checks, notes, suggestions) on err.
// With --dry-run stdout holds the manifests alone, so out is err too.
type reporter struct {
	out, err io.Writer
	tty      bool // out is a terminal: progress lines rewrite themselves
}

// step says what enable does next, or did.
func (r reporter) step(format string, a ...any) { fmt.Fprintf(r.out, format+"\n", a...) }

// note says something the operator should know, without asking.
func (r reporter) note(format string, a ...any) { fmt.Fprintf(r.err, "note: "+format+"\n", a...) }

// finding prints one check's result ("error: ..." or "warning: ...").
func (r reporter) finding(f netcheck.Finding) { fmt.Fprintln(r.err, f) }

// suggestion offers the one range that passes every check.
func (r reporter) suggestion(s iprange.Range) { fmt.Fprintln(r.err, suggestionText(s)) }

// suggestionText is how a suggested range is said, printed or at the prompt.
func suggestionText(s iprange.Range) string {
	return fmt.Sprintf("suggestion: %s passes every check", s)
}

// progress returns the callback of a long step that counts: on a terminal
// the step's line shows the count and rewrites itself, and end finishes
// it; elsewhere the line is printed whole at once (findings go to another
// stream, and must not land in the middle of it).
func (r reporter) progress(line string) (update func(done, total int), end func()) {
	if !r.tty {
		fmt.Fprintln(r.out, line)
		return func(int, int) {}, func() {}
	}
	fmt.Fprint(r.out, line)
	update = func(done, total int) {
		if done%16 == 0 || done == total {
			fmt.Fprintf(r.out, "\r%s: %d/%d", line, done, total)
		}
	}
	return update, func() { fmt.Fprintln(r.out) }
}

// waiting is the Progress of the wait for the workloads.
func (r reporter) waiting() Progress { return NewProgress(r.out, r.tty) }
