package k8s

import (
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TokenAuthorizer checks the bearer token of a metrics request the way the
// API server would (TokenReview), then whether its user may get that
// non-resource URL (SubjectAccessReview), as kube-rbac-proxy and
// controller-runtime's secure metrics do. Verdicts are cached (a minute
// when allowed, 10 s when not), so a scraper costs two small API requests
// a minute, and none of them is stored.
type TokenAuthorizer struct {
	c     kubernetes.Interface
	now   func() time.Time
	mu    sync.Mutex
	cache map[[sha256.Size]byte]verdict
}

type verdict struct {
	code  int
	why   string
	until time.Time
}

// NewTokenAuthorizer returns an authorizer that asks the API server.
func NewTokenAuthorizer(c kubernetes.Interface) *TokenAuthorizer {
	return &TokenAuthorizer{c: c, now: time.Now, cache: map[[sha256.Size]byte]verdict{}}
}

// Authorize implements metrics.Authorizer.
func (a *TokenAuthorizer) Authorize(ctx context.Context, token, path string) (int, string) {
	key := sha256.Sum256([]byte(path + "\x00" + token))
	now := a.now()
	a.mu.Lock()
	v, ok := a.cache[key]
	if len(a.cache) > 1000 { // tokens rotate: forget the old ones now and then
		for k, e := range a.cache {
			if now.After(e.until) {
				delete(a.cache, k)
			}
		}
	}
	a.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.code, v.why
	}
	code, why, cacheable := a.review(ctx, token, path)
	if cacheable {
		ttl := 10 * time.Second
		if code == http.StatusOK {
			ttl = time.Minute
		}
		a.mu.Lock()
		a.cache[key] = verdict{code: code, why: why, until: now.Add(ttl)}
		a.mu.Unlock()
	}
	return code, why
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
