package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Path is where the webhook answers.
const Path = "/validate"

const (
	maxBody        = 4 << 20 // an AdmissionReview carries at most two objects of the API server's 1.5 MiB limit
	maxConcurrent  = 4       // reviews judged at once; the rest wait (a flood costs no more CPU)
	maxWarning     = 256     // the API server's limit for one warning
	checkEvery     = time.Minute
	readHeaderTime = 5 * time.Second
)

// Request is one edit the API server asks about.
type Request struct {
	Operation string // CREATE or UPDATE
	Kind      string // ConfigMap, or a metallb.io kind
	Namespace string
	Name      string
	Object    *unstructured.Unstructured // as it would be stored
}

// Verdict is the answer: refused with the reason, or allowed with
// warnings for kubectl to print.
type Verdict struct {
	Refused  error
	Warnings []string
}

// Reviewer judges an edit as the controller would.
type Reviewer interface {
	Review(ctx context.Context, r Request) Verdict
}

// Options configure Run.
type Options struct {
	Addr          string       // listen address, e.g. :9443
	Listener      net.Listener // when set, served instead of listening on Addr
	Service       string       // the webhook's Service, named in the certificate
	Namespace     string
	Configuration string // the ValidatingWebhookConfiguration whose caBundle it keeps
	Client        kubernetes.Interface
	Reviewer      Reviewer
	Log           *slog.Logger
	Now           func() time.Time // default time.Now
	// Ready, when set, is closed once the server listens and the caBundle
	// was written once (or found missing).
	Ready chan<- struct{}
}

// Run serves the webhook until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	names := []string{o.Service + "." + o.Namespace + ".svc", o.Service + "." + o.Namespace + ".svc.cluster.local", "localhost"}
	cur, err := newKeyPair(o.Now(), names)
	if err != nil {
		return err
	}
	var serving atomic.Pointer[tls.Certificate]
	serving.Store(&cur.serving)
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.Addr); err != nil {
			return fmt.Errorf("webhook: listen on %s: %w", o.Addr, err)
		}
	}
	srv := &http.Server{
		Handler:           Handler(o.Reviewer, o.Log),
		ReadHeaderTimeout: readHeaderTime,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serving.Load(), nil },
		},
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Log.Error("webhook server stopped", "error", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	o.Log.Info("validating webhook serving", "addr", ln.Addr().String(), "configuration", o.Configuration)

	var prev, next *keyPair
	missing := false
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		now := o.Now()
		switch {
		case next != nil:
			// The API server has had a round to learn the new authority.
			prev, cur, next = cur, next, nil
			serving.Store(&cur.serving)
			o.Log.Info("webhook certificate rotated", "until", cur.notAfter.UTC().Format(time.RFC3339))
		case now.After(cur.notAfter.Add(-rotateBefore)):
			if next, err = newKeyPair(now, names); err != nil {
				o.Log.Error("cannot make the webhook's next certificate", "error", err)
				next = nil
			}
		}
		want := bundle(cur, prev, now)
		if next != nil {
			want = append(bundle(next, nil, now), cur.caPEM...)
		}
		err := injectBundle(ctx, o.Client, o.Configuration, want)
		switch {
		case err == nil:
			missing = false
		case apierrors.IsNotFound(err):
			if !missing {
				o.Log.Info("no ValidatingWebhookConfiguration to serve: edits are judged once stored", "configuration", o.Configuration)
			}
			missing = true
		default:
			o.Log.Warn("cannot write the webhook's caBundle: edits are judged once stored until it is", "configuration", o.Configuration, "error", err)
		}
		if o.Ready != nil {
			close(o.Ready)
			o.Ready = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// injectBundle sets the caBundle of every webhook of the configuration
// name to ca, when it differs.
func injectBundle(ctx context.Context, c kubernetes.Interface, name string, ca []byte) error {
	vwc, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var hooks []map[string]any
	for _, h := range vwc.Webhooks {
		if string(h.ClientConfig.CABundle) != string(ca) {
			hooks = append(hooks, map[string]any{"name": h.Name, "clientConfig": map[string]any{"caBundle": ca}})
		}
	}
	if len(hooks) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": vwc.ResourceVersion}, "webhooks": hooks})
	if err != nil {
		return err
	}
	_, err = c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	return err
}

// Handler answers AdmissionReviews with r's verdicts.
func Handler(r Reviewer, log *slog.Logger) http.Handler {
	sem := make(chan struct{}, maxConcurrent)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, func(w http.ResponseWriter, req *http.Request) {
		var review admissionv1.AdmissionReview
		body := http.MaxBytesReader(w, req.Body, maxBody)
		if err := json.NewDecoder(body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "want an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
			return
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-req.Context().Done():
			return
		}
		resp := answer(req.Context(), r, review.Request, log)
		review.Request = nil
		review.Response = resp
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	})
	return mux
}

func answer(ctx context.Context, r Reviewer, req *admissionv1.AdmissionRequest, log *slog.Logger) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	op := string(req.Operation)
	if op != string(admissionv1.Create) && op != string(admissionv1.Update) {
		return resp // deletions are the finalizer's to hold, never the webhook's
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(req.Object.Raw); err != nil {
		resp.Warnings = []string{"metallb: cannot read the object, not judged: " + err.Error()}
		return resp
	}
	v := r.Review(ctx, Request{Operation: op, Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name, Object: obj})
	for _, w := range v.Warnings {
		if len(w) > maxWarning {
			w = w[:maxWarning-3] + "..."
		}
		resp.Warnings = append(resp.Warnings, w)
	}
	if v.Refused != nil {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
			Reason: metav1.StatusReasonInvalid, Message: v.Refused.Error()}
		log.Info("edit refused by the webhook", "kind", req.Kind.Kind, "object", req.Namespace+"/"+req.Name, "user", req.UserInfo.Username, "error", v.Refused.Error())
	}
	return resp
}
