package e2e

// What the benchmarks measure with: CPU time and memory of processes from
// /proc, CPU affinity, percentiles, and rampartd's runtime profiles.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pinProcess sets the CPU affinity of every thread of process pid to cpus
// (threads it starts later inherit it). Benchmarks use it to give rampartd
// cores of its own, apart from the load generator's.
func pinProcess(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// A thread may have exited since the listing.
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pin thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}

// allCPUs lists every CPU of the machine.
func allCPUs() []int {
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus
}

// procCPU is a process's user+system CPU time (USER_HZ is 100 on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	fatalIf(b, err)
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// systemCPU is the machine's busy CPU time (all cores, from /proc/stat).
func systemCPU(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	fatalIf(b, err)
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy int64
	for i, v := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, iowait, guest
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// procStatusKiB reads a kB field (VmRSS, VmHWM) of /proc/pid/status.
func procStatusKiB(b *testing.B, pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	fatalIf(b, err)
	n, ok := kBField(string(raw), field)
	if !ok {
		b.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	return n
}

// targetPss sums the proportional set size (KiB) of every process in the
// target's namespace.
func targetPss(tg *Target) int64 {
	var sum int64
	for _, pid := range tg.namespacePids() {
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
			n, _ := kBField(string(raw), "Pss")
			sum += n
		}
	}
	return sum
}

// kBField finds "field:   N kB" in a /proc file.
func kBField(text, field string) (int64, bool) {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// mbps is bytes per round over the total time of rounds, in MB/s (10^6).
func mbps(size int64, total time.Duration, rounds float64) float64 {
	return float64(size) * rounds / total.Seconds() / 1e6
}

const benchPprofPort = "6060"

// saveProfiles writes the heap profile and goroutine dump of the rampartd
// on nodeIP to -jump.profile-dir, named after the benchmark part.
func saveProfiles(b *testing.B, nodeIP, part string) {
	hc := &http.Client{Timeout: time.Minute}
	for name, path := range map[string]string{"heap.pb.gz": "heap?gc=1", "goroutines.txt": "goroutine?debug=1", "memstats.txt": "heap?debug=1"} {
		resp, err := hc.Get("http://" + net.JoinHostPort(nodeIP, benchPprofPort) + "/debug/pprof/" + path)
		fatalIf(b, err, "fetch profile "+path)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		fatalIf(b, err)
		out := filepath.Join(*benchProfiles, part+"-"+name)
		fatalIf(b, os.WriteFile(out, body, 0o644))
		b.Logf("%s: wrote %s", part, out)
	}
}

// saveCPUProfile writes a CPU profile of the rampartd on nodeIP over the
// next d to -jump.profile-dir.
func saveCPUProfile(b *testing.B, nodeIP, part string, d time.Duration) {
	hc := &http.Client{Timeout: d + time.Minute}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", net.JoinHostPort(nodeIP, benchPprofPort), int(d.Seconds()))
	resp, err := hc.Get(url)
	if err != nil {
		b.Errorf("CPU profile: %v", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Errorf("CPU profile: %v", err)
		return
	}
	out := filepath.Join(*benchProfiles, part+"-cpu.pb.gz")
	if err := os.WriteFile(out, body, 0o644); err != nil {
		b.Errorf("CPU profile: %v", err)
		return
	}
	b.Logf("%s: wrote %s", part, out)
}
