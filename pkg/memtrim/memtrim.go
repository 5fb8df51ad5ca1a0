// Package memtrim gives back the pages of the running binary that only
// start-up needed. A Go binary's package initialisers are spread over its
// whole text, and the kernel maps the page cache around every fault (fault
// around, 64 KiB), so once started a process holds most of its binary as
// file-backed RSS although it runs a small part of it afterwards.
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Segment is one read-only mapping of the binary.
type Segment struct {
	Start, End uint64
	Perms      string
}

// BinarySegments returns the read-only, private mappings of exe in a
// /proc/PID/maps text: the binary's text, read-only data and pclntab,
// never its writable data.
func BinarySegments(maps, exe string) []Segment {
	var segs []Segment
	sc := bufio.NewScanner(strings.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.TrimSuffix(strings.Join(f[5:], " "), " (deleted)") != exe {
			continue
		}
		if f[1] != "r-xp" && f[1] != "r--p" {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		segs = append(segs, Segment{Start: start, End: end, Perms: f[1]})
	}
	return segs
}

// ReleaseBinaryPages unmaps from this process every page of the running
// binary's read-only segments (madvise MADV_DONTNEED): they are clean
// copies of the file, so they stay in the page cache, shared with every
// other process of the image, and those touched again come back as minor
// faults. It returns the bytes of the segments released.
func ReleaseBinaryPages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the running binary: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("reading the process's mappings: %w", err)
	}
	var n int64
	for _, s := range BinarySegments(string(maps), exe) {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(s.Start), uintptr(s.End-s.Start), syscall.MADV_DONTNEED); e != 0 {
			return n, fmt.Errorf("releasing %x-%x of %s: %w", s.Start, s.End, exe, e)
		}
		n += int64(s.End - s.Start)
	}
	return n, nil
}
