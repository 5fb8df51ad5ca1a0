package image

import (
	"context"
	"io"
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
	a := &Agents{Port: port, Token: "good"}
	if err := a.Push(context.Background(), exe, "example.org/x:1", []Node{{"a", lo}, {"b", lo}}, report); err != nil {
		t.Fatal(err)
	}
	if got["good"] < 2*1000 {
		t.Errorf("agents received %d bytes", got["good"])
	}
	if diff := cmp.Diff([]string{"a ok", "b ok"}, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}

	reports = nil
	err = (&Agents{Port: port, Token: "bad"}).Push(context.Background(), exe, "example.org/x:1", []Node{{"a", lo}, {"c", netip.Addr{}}}, report)
	if err == nil || !strings.Contains(err.Error(), "did not reach 2 of 2 nodes") || !strings.Contains(err.Error(), "--image REF") {
		t.Errorf("error %v", err)
	}
	want := []string{"a the cluster agent refused the callback token (HTTP 401): the token file is not this cluster's", "c the node has no InternalIP"}
	if diff := cmp.Diff(want, reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}

	reports = nil
	err = (&Agents{Port: deadPort, Token: "good"}).Push(context.Background(), exe, "example.org/x:1", []Node{{"a", lo}}, report)
	if err == nil || !strings.Contains(reports[0], "cluster agent unreachable") || !strings.Contains(err.Error(), "port "+strconv.Itoa(deadPort)+"/tcp") {
		t.Errorf("error %v, reports %v", err, reports)
	}
}
