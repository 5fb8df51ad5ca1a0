package k8s

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestTokenAuthorizerBounded: a flood of distinct tokens never has more
// than MaxReviews reviews in flight; the callers beyond get 503 at once,
// and a refusal is cached, so the same token costs no second review.
func TestTokenAuthorizerBounded(t *testing.T) {
	c := fake.NewClientset()
	var inFlight, most, reviews atomic.Int32
	release := make(chan struct{})
	c.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		reviews.Add(1)
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return true, &authenticationv1.TokenReview{Status: authenticationv1.TokenReviewStatus{Error: "bad"}}, nil
	})
	a := NewTokenAuthorizer(c)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := a.Authorize(context.Background(), "t"+strconv.Itoa(i), "/metrics")
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for func() bool {
		mu.Lock()
		defer mu.Unlock()
		return codes[http.StatusServiceUnavailable] < 200-MaxReviews
	}() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	want := map[int]int{http.StatusServiceUnavailable: 200 - MaxReviews, http.StatusUnauthorized: MaxReviews}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if most.Load() > MaxReviews {
		t.Errorf("%d reviews in flight, want at most %d", most.Load(), MaxReviews)
	}
	// The refused tokens are remembered.
	before := reviews.Load()
	for i := range 200 {
		a.Authorize(context.Background(), "t"+strconv.Itoa(i), "/metrics")
	}
	if got := reviews.Load() - before; got != 200-MaxReviews {
		t.Errorf("%d reviews for 200 tokens of which %d were reviewed already, want %d", got, MaxReviews, 200-MaxReviews)
	}
}

// TestTokenAuthorizerCacheBounded: random tokens do not grow the cache
// past its bound.
func TestTokenAuthorizerCacheBounded(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authenticationv1.TokenReview{}, nil
	})
	a := NewTokenAuthorizer(c)
	for i := range 3 * cacheEntries {
		a.Authorize(context.Background(), strconv.Itoa(i), "/metrics")
	}
	if n := len(a.cache); n > cacheEntries {
		t.Fatalf("cache holds %d verdicts, want at most %d", n, cacheEntries)
	}
}
