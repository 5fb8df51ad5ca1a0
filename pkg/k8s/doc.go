// Package k8s is the thin layer between the pure packages and the Kubernetes
// API: building a client from a kubeconfig (MicroK8s paths included),
// recording Events, and watching the config ConfigMap with reload semantics
// (a valid edit takes effect, an invalid one is refused and the last good
// config stays in force).
package k8s
