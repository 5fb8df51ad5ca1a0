package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    slog.Level
		wantErr string
	}{
		{name: "debug", in: "debug", want: slog.LevelDebug},
		{name: "default", in: "", want: slog.LevelInfo},
		{name: "upper", in: "WARN", want: slog.LevelWarn},
		{name: "warning alias", in: "warning", want: slog.LevelWarn},
		{name: "error", in: "error", want: slog.LevelError},
		{name: "bad", in: "loud", wantErr: `log level "loud": want one of debug, info, warn, error`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseLevel(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseLevel(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestNewFormats(t *testing.T) {
	var lv slog.LevelVar
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := New(&buf, &lv, format)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello", KeyPool, "default")
		if !strings.Contains(buf.String(), "default") {
			t.Errorf("%s: output %q lacks the attribute", format, buf.String())
		}
	}
	if _, err := New(&bytes.Buffer{}, &lv, "xml"); err == nil {
		t.Error("New(xml) succeeded, want an error")
	}
}

func TestThrottle(t *testing.T) {
	now := time.Unix(0, 0)
	th := NewThrottle(time.Second, func() time.Time { return now })
	type step struct {
		After      time.Duration
		Key        string
		OK         bool
		Suppressed int
	}
	steps := []step{
		{0, "forged", true, 0},
		{100 * time.Millisecond, "forged", false, 0},
		{100 * time.Millisecond, "forged", false, 0},
		{0, "replay", true, 0}, // keys are counted apart
		{time.Second, "forged", true, 2},
		{time.Second, "forged", true, 0},
	}
	for i, s := range steps {
		now = now.Add(s.After)
		ok, n := th.Allow(s.Key)
		if diff := cmp.Diff(s, step{s.After, s.Key, ok, n}); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i, diff)
		}
	}
}
