// Package webhook serves the controller's validating admission webhook:
// the API server asks it about each create or update of the configuration
// (the ConfigMap config and the metallb.io resources), and an edit the
// controller would refuse (an invalid configuration, a pool overlapping
// another, an edit that takes addresses Services hold) is refused at
// kubectl apply time, with the same message. The webhook is advice: it is
// registered with failurePolicy Ignore, so nothing is blocked while the
// controller is down, and the controller's own verdict stays the
// authority. Its certificate authority and serving certificate are made in
// memory at start, rotated before they expire, and put into the
// ValidatingWebhookConfiguration's caBundle by the controller itself.
package webhook
