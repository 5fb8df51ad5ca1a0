package image

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// staticExe builds a tiny static program to package.
func staticExe(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", "x", ".")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return filepath.Join(dir, "x")
}

// TestAgentsPush: every node's agent gets the tarball with the token; a
// refused token and an unreachable agent are reported per node, with the
// fix, and do not stop the others.
func TestAgentsPush(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{} // token → bytes received
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != ImportPath {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		tok := r.Header.Get(TokenHeader)
		if tok != "good" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		got[tok] += int(n)
		mu.Unlock()
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	// An agent port with nothing behind it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	exe := staticExe(t)
	lo := netip.MustParseAddr("127.0.0.1")
	var reports []string
	report := func(n Node, _ time.Duration, err error) {
		s := n.Name + " ok"
		if err != nil {
			s = n.Name + " " + err.Error()
		}
		reports = append(reports, s)
	}
	ca := x509.NewCertPool()
	ca.AddCert(srv.Certificate())
	a := &Agents{Port: port, Token: "good", CA: ca}
	if err := a.Push(context.Background(), exe, "example.org/x:1", []Node{{Name: "a", Addr: lo}, {Name: "b", Addr: lo}}, report); err != nil {
		t.Fatal(err)
	}
	if got["good"] < 2*1000 {
		t.Errorf("agents received %d bytes", got["good"])
	}
	if diff := cmp.Diff([]string{"a ok", "b ok"}, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}

	reports = nil
	err = (&Agents{Port: port, Token: "bad", CA: ca}).Push(context.Background(), exe, "example.org/x:1", []Node{{Name: "a", Addr: lo}, {Name: "c"}}, report)
	if err == nil || !strings.Contains(err.Error(), "did not reach 2 of 2 nodes") || !strings.Contains(err.Error(), "--image REF") {
		t.Errorf("error %v", err)
	}
	want := []string{"a the cluster agent refused the callback token (HTTP 401): the token file is not this cluster's", "c the node has no InternalIP"}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}

	reports = nil
	err = (&Agents{Port: deadPort, Token: "good", CA: ca}).Push(context.Background(), exe, "example.org/x:1", []Node{{Name: "a", Addr: lo}}, report)
	if err == nil || !strings.Contains(reports[0], "cluster agent unreachable") || !strings.Contains(err.Error(), "port "+strconv.Itoa(deadPort)+"/tcp") {
		t.Errorf("error %v, reports %v", err, reports)
	}
}

// otherCA makes a CA certificate of another cluster.
func otherCA(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "10.152.183.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAgentsVerify: the token goes only to an agent whose certificate the
// cluster CA signed for the address dialled; otherwise the error says why
// and what to do, and the agent never sees the token.
func TestAgentsVerify(t *testing.T) {
	var mu sync.Mutex
	tokens := 0
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(TokenHeader) != "" {
			mu.Lock()
			tokens++
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "\x1b[2Jnot today", http.StatusInternalServerError)
	})
	srv := httptest.NewTLSServer(handler) // its certificate names 127.0.0.1 and ::1
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	ca := x509.NewCertPool()
	ca.AddCert(srv.Certificate())
	wrongCA := x509.NewCertPool()
	wrongCA.AddCert(otherCA(t))
	exe := staticExe(t)

	var reports []string
	report := func(n Node, _ time.Duration, err error) { reports = append(reports, err.Error()) }
	push := func(a *Agents, addr string) {
		t.Helper()
		reports = nil
		if err := a.Push(context.Background(), exe, "example.org/x:1", []Node{{Name: "a", Addr: netip.MustParseAddr(addr)}}, report); err == nil {
			t.Fatal("pushed")
		}
	}
	push(&Agents{Port: port, Token: "t", CA: wrongCA}, "127.0.0.1")
	if !strings.Contains(reports[0], "does not verify against the cluster CA") || !strings.Contains(reports[0], "refresh-certs") {
		t.Errorf("another CA: %s", reports[0])
	}
	// 127.0.0.2 reaches the same listener on Linux, but the certificate
	// does not name it.
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		l.Close()
		srv2 := httptest.NewUnstartedServer(handler)
		srv2.Listener.Close()
		srv2.Listener, err = net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		srv2.StartTLS()
		defer srv2.Close()
		ca2 := x509.NewCertPool()
		ca2.AddCert(srv2.Certificate())
		push(&Agents{Port: srv2.Listener.Addr().(*net.TCPAddr).Port, Token: "t", CA: ca2}, "127.0.0.2")
		if !strings.Contains(reports[0], "does not name 127.0.0.2") {
			t.Errorf("another address: %s", reports[0])
		}
	}
	push(&Agents{Port: port, Token: "t"}, "127.0.0.1")
	if !strings.Contains(reports[0], "no cluster CA") {
		t.Errorf("no CA: %s", reports[0])
	}
	if tokens != 0 {
		t.Fatalf("an unverified agent got the token %d times", tokens)
	}
	// Verified: the agent's answer is printed with its escapes defused.
	push(&Agents{Port: port, Token: "t", CA: ca}, "127.0.0.1")
	if want := `the cluster agent answered HTTP 500: \x1b[2Jnot today`; reports[0] != want {
		t.Errorf("answer %q, want %q", reports[0], want)
	}
}
