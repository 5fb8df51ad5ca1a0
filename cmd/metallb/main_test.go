package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, streams{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestHelpListsModes(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	for _, mode := range []string{"controller", "speaker", "enable", "disable", "version"} {
		if !strings.Contains(out, "\n  "+mode+" ") {
			t.Errorf("--help does not list %q:\n%s", mode, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "metallb ") {
		t.Fatalf("version: code %d, output %q", code, out)
	}
}

func TestBadLogFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "level", args: []string{"--log-level=loud", "version"}, want: `log level "loud"`},
		{name: "format", args: []string{"--log-format=xml", "version"}, want: `log format "xml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("code %d, stderr %q; want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}

// No flag's help holds a back-quoted word: pflag would show it as the
// flag's value name ("--lease-interval metallb status"), not the type.
func TestFlagHelpHasNoBackQuotes(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: back quotes in %q", c.CommandPath(), f.Name, f.Usage)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}))
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := runCLI(t, "version", "-o", "json")
	var v struct {
		Version, GoVersion string
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Version == "" || v.GoVersion == "" {
		t.Errorf("version -o json: exit %d, %v: %q", code, err, out)
	}
	if code, _, _ := runCLI(t, "version", "-o", "xml"); code == 0 {
		t.Error("version -o xml accepted")
	}
}
