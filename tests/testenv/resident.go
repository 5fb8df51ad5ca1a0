package testenv

import (
	"bufio"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Resident says which bytes of a binary a process holds in memory as
// file-backed pages (its RssFile): by ELF section, and by the package
// whose code or data lies in those pages.
type Resident struct {
	Total    int64
	Sections map[string]int64
	Packages map[string]int64
}

// ResidentBinary reads /proc/PID/maps and /proc/PID/pagemap (as root) and
// attributes every resident, still file-backed page of the mappings of exe
// (a binary with its symbol table) to the section and the symbols it
// holds. A page shared by several symbols is split by their bytes in it;
// bytes no symbol covers (pclntab, padding) count for their section.
func ResidentBinary(pid int, exe string) (Resident, error) {
	r := Resident{Sections: map[string]int64{}, Packages: map[string]int64{}}
	exe, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return r, err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return r, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return r, fmt.Errorf("%s has no symbol table (build it without -s): %w", exe, err)
	}
	syms = slices.DeleteFunc(syms, func(s elf.Symbol) bool { return s.Size == 0 || s.Value == 0 })
	slices.SortFunc(syms, func(a, b elf.Symbol) int { return cmp.Compare(a.Value, b.Value) })

	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return r, err
	}
	defer maps.Close()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return r, err
	}
	defer pm.Close()
	const page = 4096
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		entries := make([]byte, (end-start)/page*8)
		if _, err := pm.ReadAt(entries, int64(start/page*8)); err != nil {
			return r, fmt.Errorf("pagemap of %d: %w", pid, err)
		}
		for i := range (end - start) / page {
			e := binary.LittleEndian.Uint64(entries[i*8:])
			// Bit 63: present; bit 61: a file page (not a private copy).
			if e&(1<<63) == 0 || e&(1<<61) == 0 {
				continue
			}
			addr := start + i*page
			r.Total += page
			r.attribute(f, syms, addr, addr+page)
		}
	}
	return r, sc.Err()
}

// attribute splits the page [lo, hi) among the symbols and sections in it.
func (r *Resident) attribute(f *elf.File, syms []elf.Symbol, lo, hi uint64) {
	covered := uint64(0)
	i, _ := slices.BinarySearchFunc(syms, lo, func(s elf.Symbol, a uint64) int { return cmp.Compare(s.Value, a) })
	if i > 0 {
		i--
	}
	for ; i < len(syms) && syms[i].Value < hi; i++ {
		s := syms[i]
		a, b := max(s.Value, lo), min(s.Value+s.Size, hi)
		if b <= a {
			continue
		}
		r.Packages[symbolPackage(s.Name)] += int64(b - a)
		covered += b - a
	}
	sec := "other"
	for _, s := range f.Sections {
		if s.Addr <= lo && lo < s.Addr+s.Size {
			sec = s.Name
			break
		}
	}
	r.Sections[sec] += int64(hi - lo)
	if covered < hi-lo {
		r.Packages["("+sec+", no symbol)"] += int64(hi - lo - covered)
	}
}

// symbolPackage is the package of a Go symbol: "k8s.io/api/core/v1" for
// "k8s.io/api/core/v1.(*Pod).Marshal", a prefix such as "type:" or "go:"
// for the linker's own.
func symbolPackage(name string) string {
	for _, p := range []string{"type:", "go:"} {
		if strings.HasPrefix(name, p) {
			return p
		}
	}
	if i := strings.IndexAny(name, "[("); i >= 0 {
		name = name[:i]
	}
	slash := strings.LastIndex(name, "/") + 1
	if dot := strings.Index(name[slash:], "."); dot >= 0 {
		return name[:slash+dot]
	}
	return name
}

// Top returns the n packages with the most resident bytes, largest first.
func (r Resident) Top(n int) []string {
	names := make([]string, 0, len(r.Packages))
	for p := range r.Packages {
		names = append(names, p)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(r.Packages[b], r.Packages[a]) })
	return names[:min(n, len(names))]
}

// String is the sections and the top packages, in MiB.
func (r Resident) String() string {
	var b strings.Builder
	mib := func(x int64) float64 { return float64(x) / (1 << 20) }
	fmt.Fprintf(&b, "%.1f MiB of the binary resident:", mib(r.Total))
	secs := make([]string, 0, len(r.Sections))
	for s := range r.Sections {
		secs = append(secs, s)
	}
	slices.SortFunc(secs, func(a, b string) int { return cmp.Compare(r.Sections[b], r.Sections[a]) })
	for _, s := range secs {
		fmt.Fprintf(&b, " %s %.1f", s, mib(r.Sections[s]))
	}
	groups := Resident{Packages: map[string]int64{}}
	for p, n := range r.Packages {
		groups.Packages[packageGroup(p)] += n
	}
	b.WriteString("; by package:")
	for _, p := range groups.Top(20) {
		fmt.Fprintf(&b, " %s %.2f", p, mib(groups.Packages[p]))
	}
	return b.String()
}

// packageGroup is a package's first three path elements for a domain
// path ("k8s.io/api/core" for "k8s.io/api/core/v1"), its first otherwise
// ("crypto" for "crypto/tls").
func packageGroup(p string) string {
	parts := strings.Split(p, "/")
	if strings.Contains(parts[0], ".") {
		return strings.Join(parts[:min(3, len(parts))], "/")
	}
	return parts[0]
}
