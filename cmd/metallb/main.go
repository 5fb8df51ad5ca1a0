// Command metallb is the one binary of this project: it runs as the controller
// (a Deployment), the speaker (a DaemonSet), or the installer behind the
// MicroK8s enable/disable hooks. Each mode is a cobra subcommand that turns its
// flags into options and calls Run in a package under pkg/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr})
	stop()
	os.Exit(code)
}
