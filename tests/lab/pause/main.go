// Command pause is the lab's CRI sandbox image (no registry is reachable to
// pull one): it holds a pod's namespaces and exits on SIGTERM or SIGINT.
// With "serve", it is the lab's hello image instead: a TCP server on :8080
// that answers each connection with "hello from $NODE_NAME".
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		ln, err := net.Listen("tcp", ":8080")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hello from %s\n", os.Getenv("NODE_NAME"))
				c.Close()
			}
		}()
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
