package speaker

// The MD5 keys that BGPPeers keep in Secrets (spec.passwordSecret).

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/microk8s-metallb/metallb/pkg/bgp"
	"github.com/microk8s-metallb/metallb/pkg/config"
)

// ReasonPasswordSecret (on the BGPPeer): the Secret its passwordSecret
// names cannot be used, so this node runs no session with that peer.
const ReasonPasswordSecret = "BGPPasswordSecret"

// secretType is the only type of Secret read, as upstream requires: the
// speaker watches no other Secret of its namespace.
const secretType = corev1.SecretTypeBasicAuth

// secrets watches the basic-auth Secrets of the speaker's namespace, from
// the first plan that has a peer naming one (a cluster without such peers
// has no Secret watched). It belongs to the loop.
type secrets struct {
	inf      cache.SharedIndexInformer // nil until needed
	problems map[string]string         // peer key → the problem last reported
}

// startSecrets starts the Secret informer; ctx and start are Run's.
func (s *Speaker) startSecrets(ctx context.Context, start func(func())) {
	lw := cache.NewFilteredListWatchFromClient(s.o.Client.CoreV1().RESTClient(), "secrets", s.o.Namespace,
		func(o *metav1.ListOptions) { o.FieldSelector = "type=" + string(secretType) })
	inf := cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.inbox.poke() },
		UpdateFunc: func(any, any) { s.inbox.poke() },
		DeleteFunc: func(any) { s.inbox.poke() },
	})
	s.secrets.inf = inf
	start(func() { inf.Run(ctx.Done()) })
	start(func() { // with no Secret at all, nothing else says the list is in
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			s.inbox.poke()
		}
	})
}

// withPasswords returns peers with the keys of those that name a Secret
// filled in; a peer whose Secret cannot be used is left out (its session
// would only fail), with a Warning Event on the BGPPeer and a log line,
// once per problem.
func (s *Speaker) withPasswords(peers []bgp.Peer) []bgp.Peer {
	out := peers[:0:0]
	seen := map[string]bool{}
	for _, p := range peers {
		if p.PasswordSecret == "" {
			out = append(out, p)
			continue
		}
		if s.secrets.inf == nil && s.startSecretWatch != nil {
			s.startSecretWatch()
		}
		seen[p.Key()] = true
		key, problem := s.password(&p)
		if problem == "" && key == "" {
			continue // the Secrets are not listed yet: a poke follows
		}
		if problem != "" {
			s.reportSecret(p, problem)
			continue
		}
		if s.secrets.problems[p.Key()] != "" {
			s.log.Info("BGP peer's password Secret is usable again", "peer", p.String(), "secret", p.PasswordSecret)
			delete(s.secrets.problems, p.Key())
		}
		p.Password = key
		out = append(out, p)
	}
	for k := range s.secrets.problems {
		if !seen[k] {
			delete(s.secrets.problems, k)
		}
	}
	return out
}

// password returns peer p's key from its Secret, or what is wrong with
// the Secret; both empty while the Secrets are not listed yet.
func (s *Speaker) password(p *bgp.Peer) (key, problem string) {
	ns, name, found := strings.Cut(p.PasswordSecret, "/")
	if !found {
		ns, name = s.o.Namespace, p.PasswordSecret
	}
	if ns != s.o.Namespace {
		return "", fmt.Sprintf("spec.passwordSecret names a Secret in namespace %q: only Secrets in %q are read; create it there", ns, s.o.Namespace)
	}
	if s.secrets.inf == nil || !s.secrets.inf.HasSynced() {
		return "", ""
	}
	obj, exists, _ := s.secrets.inf.GetIndexer().GetByKey(ns + "/" + name)
	if !exists {
		return "", fmt.Sprintf("no Secret %s/%s of type %s: create it with the MD5 key under the key \"password\" (kubectl -n %s create secret generic %s --type=%s --from-literal=password=KEY)",
			ns, name, secretType, ns, name, secretType)
	}
	sec := obj.(*corev1.Secret)
	v := string(sec.Data[corev1.BasicAuthPasswordKey])
	switch {
	case v == "":
		return "", fmt.Sprintf("Secret %s/%s has no key %q, or it is empty: put the MD5 key there", ns, name, corev1.BasicAuthPasswordKey)
	case len(v) > config.MaxPasswordLen:
		return "", fmt.Sprintf("the key in Secret %s/%s is %d bytes: TCP MD5 keys are at most %d", ns, name, len(v), config.MaxPasswordLen)
	}
	return v, ""
}

// reportSecret logs and raises the Event about peer p's Secret, once per
// problem.
func (s *Speaker) reportSecret(p bgp.Peer, problem string) {
	if s.secrets.problems == nil {
		s.secrets.problems = map[string]string{}
	}
	if s.secrets.problems[p.Key()] == problem {
		return
	}
	s.secrets.problems[p.Key()] = problem
	s.log.Warn("no BGP session with this peer: its password Secret cannot be used", "peer", p.String(), "problem", problem)
	if p.Name == "" {
		return
	}
	ref := &corev1.ObjectReference{Kind: config.KindBGPPeer, APIVersion: config.Group + "/v1beta2", Namespace: s.o.Namespace, Name: p.Name}
	s.recorder.Eventf(ref, corev1.EventTypeWarning, ReasonPasswordSecret, "node %s runs no session with %s: %s", s.o.NodeName, p.Address, problem)
}
