package webhook

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

type reviewFunc func(Request) Verdict

func (f reviewFunc) Review(_ context.Context, r Request) Verdict { return f(r) }

func TestHandler(t *testing.T) {
	var seen []Request
	h := Handler(reviewFunc(func(r Request) Verdict {
		seen = append(seen, r)
		if r.Name == "bad" {
			return Verdict{Refused: errors.New("overlaps pool x"), Warnings: []string{strings.Repeat("w", 300)}}
		}
		return Verdict{Warnings: []string{"no advertisement"}}
	}), slog.New(slog.DiscardHandler))
	post := func(body string) (*httptest.ResponseRecorder, *admissionv1.AdmissionResponse) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body)))
		var out admissionv1.AdmissionReview
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec, out.Response
	}
	review := func(op admissionv1.Operation, name string) string {
		b, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: types.UID("u-" + name), Operation: op, Name: name, Namespace: "metallb-system",
				Kind:   metav1.GroupVersionKind{Group: "metallb.io", Version: "v1beta1", Kind: "IPAddressPool"},
				Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"metallb.io/v1beta1","kind":"IPAddressPool","metadata":{"name":"` + name + `"},"spec":{"addresses":["192.0.2.0/24"]}}`)}},
		})
		return string(b)
	}
	tests := []struct {
		name, body   string
		code         int
		allowed      bool
		msg          string
		warnings     []string
		reviewedName string
	}{
		{name: "allowed with a warning", body: review(admissionv1.Create, "good"), code: 200, allowed: true, warnings: []string{"no advertisement"}, reviewedName: "good"},
		{name: "refused, the warning cut to the API server's limit", body: review(admissionv1.Update, "bad"), code: 200, msg: "overlaps pool x",
			warnings: []string{strings.Repeat("w", maxWarning-3) + "..."}, reviewedName: "bad"},
		{name: "a deletion is never asked about", body: review(admissionv1.Delete, "bad"), code: 200, allowed: true},
		{name: "not a review", body: `{"kind":"Pod"}`, code: 400},
		{name: "not JSON", body: `<xml/>`, code: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			rec, resp := post(tc.body)
			if rec.Code != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code != 200 {
				return
			}
			if resp == nil {
				t.Fatalf("no response: %s", rec.Body)
			}
			if resp.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v", resp.Allowed, tc.allowed)
			}
			if tc.msg != "" && (resp.Result == nil || resp.Result.Message != tc.msg || resp.Result.Code != 422) {
				t.Errorf("result %+v, want code 422 and %q", resp.Result, tc.msg)
			}
			if d := cmp.Diff(tc.warnings, resp.Warnings); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
			if !strings.HasPrefix(string(resp.UID), "u-") {
				t.Errorf("UID %q not echoed", resp.UID)
			}
			var names []string
			for _, r := range seen {
				names = append(names, r.Name)
				if r.Object.GetKind() != "IPAddressPool" || r.Kind != "IPAddressPool" || r.Namespace != "metallb-system" {
					t.Errorf("request %+v", r)
				}
			}
			if tc.reviewedName != "" && !cmp.Equal(names, []string{tc.reviewedName}) {
				t.Errorf("reviewed %v, want %s", names, tc.reviewedName)
			}
		})
	}
	// A body past the limit is refused before it is read whole.
	rec, _ := post(`{"request":{"object":"` + strings.Repeat("a", maxBody) + `"}}`)
	if rec.Code != 400 {
		t.Errorf("an oversized body: HTTP %d, want 400", rec.Code)
	}
}

func TestKeyPair(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"metallb-webhook.metallb-system.svc", "localhost"}
	kp, err := newKeyPair(now, names)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(kp.serving.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(kp.caPEM) {
		t.Fatal("the CA does not parse")
	}
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, CurrentTime: now.Add(time.Hour)}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "evil.example", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("the certificate verifies for a name it was not made for")
	}
	// During a rotation the bundle holds both authorities; the old one
	// leaves it once expired.
	next, err := newKeyPair(now.Add(certValidity-rotateBefore), names)
	if err != nil {
		t.Fatal(err)
	}
	if got := bundle(next, kp, now.Add(certValidity-time.Hour)); !bytes.Equal(got, append(bytes.Clone(next.caPEM), kp.caPEM...)) {
		t.Error("the bundle during a rotation lacks an authority")
	}
	if got := bundle(next, kp, now.Add(certValidity+time.Hour)); !bytes.Equal(got, next.caPEM) {
		t.Error("an expired authority stays in the bundle")
	}
	if b, _ := pem.Decode(kp.caPEM); b == nil || b.Type != "CERTIFICATE" {
		t.Error("the CA is not a PEM certificate")
	}
}
