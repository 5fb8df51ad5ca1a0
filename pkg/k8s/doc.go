// Package k8s is the thin layer between the pure packages and the Kubernetes
// API, shared by the controller, the speaker, the installer and `metallb
// status`:
//
//   - the client from a kubeconfig, MicroK8s paths included (client.go);
//   - the informer factory both components use, caches trimmed to what
//     the code reads and first lists in trimmed pages (paged.go, trim.go),
//     and the same paged listing for one-shot readers (ListServices);
//   - Events (events.go);
//   - the config ConfigMap: ConfigWatcher, with reload semantics (a valid
//     edit takes effect through an Install hook that may refuse it, an
//     invalid one is refused and the last accepted config stays in force),
//     and the accepted copy the speakers read (accepted.go);
//   - what Services hold, for the allocator's verdicts (holdings.go);
//   - Lease leader election (leader.go);
//   - the /metrics authorizer: TokenReview and SubjectAccessReview, cached
//     and rate-limited (metricsauth.go).
package k8s
