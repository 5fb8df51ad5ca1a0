package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBinarySegments(t *testing.T) {
	const maps = `00400000-01ed4000 r-xp 00000000 fe:00 1234 /metallb
01ed4000-03d22000 r--p 01ad4000 fe:00 1234 /metallb
03d22000-03de5000 rw-p 03922000 fe:00 1234 /metallb
03de5000-05e40000 rw-p 00000000 00:00 0
c000000000-c000400000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 fe:00 99 /etc/hosts
7ffd8a9e1000-7ffd8aa02000 rw-p 00000000 00:00 0 [stack]
`
	for _, tc := range []struct {
		name, maps, exe string
		want            []Segment
	}{
		{"text and read-only data, never the writable data", maps, "/metallb", []Segment{
			{0x400000, 0x1ed4000, "r-xp"}, {0x1ed4000, 0x3d22000, "r--p"}}},
		{"another file", maps, "/etc/hosts", []Segment{{0x7f0000000000, 0x7f0000001000, "r--p"}}},
		{"a binary replaced on disk", "00400000-00500000 r-xp 00000000 fe:00 1 /usr/bin/metallb (deleted)\n", "/usr/bin/metallb",
			[]Segment{{0x400000, 0x500000, "r-xp"}}},
		{"a path with a space", "00400000-00500000 r-xp 00000000 fe:00 1 /opt/my dir/metallb\n", "/opt/my dir/metallb",
			[]Segment{{0x400000, 0x500000, "r-xp"}}},
		{"not this binary", maps, "/other", nil},
		{"garbage", "zz-yy r-xp 0 0 0 /metallb\n00500000-00400000 r-xp 0 0 0 /metallb\nshort line\n", "/metallb", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, BinarySegments(tc.maps, tc.exe)); d != "" {
				t.Errorf("BinarySegments (-want +got):\n%s", d)
			}
		})
	}
}

func FuzzBinarySegments(f *testing.F) {
	f.Add("00400000-01ed4000 r-xp 00000000 fe:00 1234 /metallb\n", "/metallb")
	f.Add("1-0 r--p 0 0 0 /x (deleted)\n", "/x")
	f.Fuzz(func(t *testing.T, maps, exe string) {
		for _, s := range BinarySegments(maps, exe) {
			if s.End <= s.Start || (s.Perms != "r-xp" && s.Perms != "r--p") {
				t.Fatalf("segment %+v: want a read-only, non-empty range", s)
			}
		}
	})
}

// TestReleaseBinaryPages releases the test binary's own pages: its file
// RSS falls, and it runs on: the code it needs after (reading its
// status again, logging) comes back from the page cache.
func TestReleaseBinaryPages(t *testing.T) {
	before := rssFile(t)
	n, err := ReleaseBinaryPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if n == 0 || after >= before {
		t.Errorf("released %d bytes of mappings: file RSS %d kB before, %d kB after; want it lower", n, before, after)
	}
	t.Logf("file-backed RSS %d kB before, %d kB after releasing %d MiB of mappings", before, after, n>>20)
}

func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssFile:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
