package main

import (
	"log/slog"

	"github.com/microk8s-metallb/metallb/pkg/memtrim"
)

// releaseStartupPages is the Started hook of the controller and the
// speaker: once ready, they give back the pages of the binary that only
// start-up touched (memtrim.ReleaseBinaryPages).
func releaseStartupPages(log *slog.Logger) func() {
	return func() {
		n, err := memtrim.ReleaseBinaryPages()
		if err != nil {
			log.Warn("the binary's start-up pages are kept (its RSS stays higher, nothing else changes)", "error", err)
			return
		}
		log.Debug("released the binary's start-up pages", "mapped", n)
	}
}
