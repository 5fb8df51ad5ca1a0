// Package controller is the controller mode: it watches LoadBalancer
// Services and the config ConfigMap, asks the pure allocator for addresses,
// and writes them to status.loadBalancer.ingress, with Events and metrics.
//
// The allocator is guarded by one mutex held only while deciding; status
// writes happen outside it, from several workers, so the API server's
// latency is paid in parallel. On start (and on the first valid config) every
// existing assignment is re-learnt from Service status before anything new is
// assigned, so a restart moves no address and never hands one out twice.
package controller
