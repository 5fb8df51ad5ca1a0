package k8s

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TokenAuthorizer checks the bearer token of a metrics request the way the
// API server would (TokenReview), then whether its user may get that
// non-resource URL (SubjectAccessReview), as kube-rbac-proxy and
// controller-runtime's secure metrics do. Verdicts are cached (a minute
// when allowed, 10 s when not, 2 s when the API server could not tell), so
// a scraper costs two small API requests a minute, and none of them is
// stored.
//
// Anyone who reaches the port can send tokens, so reviews must never take
// the API budget the component lives on (leader election, the speaker's
// isolation check): they go through a client of their own (ReviewClient),
// at most MaxReviews at a time; a request that finds them all busy is
// answered 503 at once instead of waiting.
type TokenAuthorizer struct {
	c     kubernetes.Interface
	now   func() time.Time
	slots chan struct{}
	mu    sync.Mutex
	cache map[[sha256.Size]byte]verdict
}

// Review budget: reviews in flight, and the review client's rate.
const (
	MaxReviews   = 4
	ReviewQPS    = 10
	ReviewBurst  = 20
	cacheEntries = 4096
)

type verdict struct {
	code  int
	why   string
	until time.Time
}

// NewTokenAuthorizer returns an authorizer that asks the API server
// through c, which should be a client of its own (ReviewClient).
func NewTokenAuthorizer(c kubernetes.Interface) *TokenAuthorizer {
	return &TokenAuthorizer{c: c, now: time.Now, slots: make(chan struct{}, MaxReviews), cache: map[[sha256.Size]byte]verdict{}}
}

// ReviewClient returns a client for token reviews: cfg's server and
// credentials with a rate limit of its own (ReviewQPS), so that a flood
// of callers cannot starve cfg's other users.
func ReviewClient(cfg *rest.Config) (kubernetes.Interface, error) {
	rc := rest.CopyConfig(cfg)
	rc.QPS, rc.Burst = ReviewQPS, ReviewBurst
	rc.RateLimiter = nil
	rc.UserAgent += "/metrics-auth"
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("build the token review client: %w", err)
	}
	return c, nil
}

// Authorize implements metrics.Authorizer.
func (a *TokenAuthorizer) Authorize(ctx context.Context, token, path string) (int, string) {
	key := sha256.Sum256([]byte(path + "\x00" + token))
	now := a.now()
	a.mu.Lock()
	v, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.code, v.why
	}
	select {
	case a.slots <- struct{}{}:
	default:
		return http.StatusServiceUnavailable, "too many token reviews in progress; retry in a few seconds"
	}
	code, why, cacheable := a.review(ctx, token, path)
	<-a.slots
	ttl := 2 * time.Second // the API server could not tell: ask again soon, not at once
	switch {
	case code == http.StatusOK:
		ttl = time.Minute
	case cacheable:
		ttl = 10 * time.Second
	}
	a.remember(key, verdict{code: code, why: why, until: now.Add(ttl)}, now)
	return code, why
}

// remember caches v, keeping the cache bounded: expired entries go first,
// then every refusal (a flood of random tokens must not grow it).
func (a *TokenAuthorizer) remember(key [sha256.Size]byte, v verdict, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= cacheEntries {
		for k, e := range a.cache {
			if now.After(e.until) {
				delete(a.cache, k)
			}
		}
	}
	if len(a.cache) >= cacheEntries {
		for k, e := range a.cache {
			if e.code != http.StatusOK {
				delete(a.cache, k)
			}
		}
	}
	a.cache[key] = v
}

func (a *TokenAuthorizer) review(ctx context.Context, token, path string) (int, string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tr, err := a.c.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusServiceUnavailable, "cannot review the token: " + err.Error(), false
	}
	if !tr.Status.Authenticated {
		why := "the token is not valid"
		if tr.Status.Error != "" {
			why += ": " + tr.Status.Error
		}
		return http.StatusUnauthorized, why, true
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: "get"},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusServiceUnavailable, "cannot review the access: " + err.Error(), false
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, u.Username + " may not get " + path + " (give it a ClusterRole with nonResourceURLs: [" + path + "], verbs: [get])", true
	}
	return http.StatusOK, "", true
}
