// Package install is the installer behind "microk8s enable lab/metallb" and
// "microk8s disable lab/metallb": it turns the hook's arguments (or the answers
// to a prompt) into checked address ranges, renders the manifests, applies
// them with server-side apply, waits for the workloads, and removes
// everything again on disable.
//
// The network checks themselves live in the pure package netcheck; the facts
// they need come from the host (package hostnet), the API server and an ARP
// probe (package arpprobe).
package install
