// Command metallb is the one binary of this project: it runs as the controller
// (a Deployment), the speaker (a DaemonSet), or the installer behind the
// MicroK8s enable/disable hooks. Each mode is a cobra subcommand that turns its
// flags into options and calls Run in a package under pkg/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// stopGrace is how long a command may take to stop after SIGTERM or Ctrl-C
// (withdrawing announcements, closing BGP sessions) before the process exits
// anyway: work that does not watch its context (a huge config being parsed)
// must not keep it alive.
// It covers a speaker's hand-off (speaker.HandOffTimeout) and stays under a
// second.
const stopGrace = 900 * time.Millisecond

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel()
		select {
		case <-sigs: // a second signal: stop now
		case <-time.After(stopGrace):
			fmt.Fprintf(os.Stderr, "metallb: stopped by %v before finishing\n", sig)
		}
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	cancel()
	os.Exit(code)
}
