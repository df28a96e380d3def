package loadclient

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcStats is what a ProcSampler saw of a process over the measured period.
type ProcStats struct {
	// CPUSeconds is the utime+stime delta since the sampler started.
	CPUSeconds float64
	// RSSPeak is the largest sampled VmRSS, in bytes.
	RSSPeak uint64
	// RSSFinal is the last sampled VmRSS, in bytes.
	RSSFinal uint64
	// VmHWM is the kernel's peak RSS of the process lifetime, in bytes (last read).
	VmHWM uint64
	// Samples counts successful samples; Exited is set when the process went away.
	Samples int
	Exited  bool
}

// ProcSampler samples /proc/<pid>/stat and /proc/<pid>/status of a process.
type ProcSampler struct {
	pid        int
	clkTck     float64
	startTicks uint64

	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	stats ProcStats
	ticks uint64
}

// StartProcSampler reads the process's CPU time now and samples its memory
// every interval until Stop. It fails if the process can't be read.
func StartProcSampler(ctx context.Context, pid int, interval time.Duration) (*ProcSampler, error) {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	ticks, err := readCPUTicks(pid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &ProcSampler{pid: pid, clkTck: ClockTicks(), startTicks: ticks, ticks: ticks, cancel: cancel, done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s, nil
}

func (s *ProcSampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stats.Exited {
		return
	}
	ticks, err := readCPUTicks(s.pid)
	if err != nil {
		s.stats.Exited = true
		return
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		s.stats.Exited = true
		return
	}
	rss, hwm := ParseStatusMemory(string(data))
	s.ticks = ticks
	s.stats.Samples++
	s.stats.RSSFinal = rss
	s.stats.RSSPeak = max(s.stats.RSSPeak, rss)
	if hwm > 0 {
		s.stats.VmHWM = hwm
	}
}

// Current takes a sample now and returns the stats so far, without stopping.
func (s *ProcSampler) Current() ProcStats {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.CPUSeconds = float64(s.ticks-s.startTicks) / s.clkTck
	return st
}

// Stop takes a final sample, stops sampling and returns the stats.
func (s *ProcSampler) Stop() ProcStats {
	st := s.Current()
	s.cancel()
	<-s.done
	return st
}

// CPUNanos returns the CPU time of the process's live threads so far, in
// nanoseconds: the sum of the first field of /proc/<pid>/task/*/schedstat. It
// is exact where utime+stime counts clock ticks (10 ms), so the difference of
// two readings measures short windows such as one config change; threads that
// exit in between are lost (Go's runtime rarely ends one). Without schedstat
// it falls back to utime+stime.
func CPUNanos(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err == nil {
		var sum int64
		n := 0
		for _, t := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				continue // the thread ended
			}
			f := strings.Fields(string(data))
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				continue
			}
			sum += v
			n++
		}
		if n > 0 {
			return sum, nil
		}
	}
	ticks, err := readCPUTicks(pid)
	if err != nil {
		return 0, err
	}
	return int64(float64(ticks) / ClockTicks() * 1e9), nil
}

// CPUSeconds returns the utime+stime of a process so far, in seconds.
func CPUSeconds(pid int) (float64, error) {
	t, err := readCPUTicks(pid)
	return float64(t) / ClockTicks(), err
}

func readCPUTicks(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatCPUTicks(string(data))
}

// ParseStatCPUTicks returns utime+stime (fields 14 and 15) of a /proc/<pid>/stat line.
// The command name (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStatCPUTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat: no ')'")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat: %d fields after comm", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat stime: %w", err)
	}
	return utime + stime, nil
}

// ParseStatusMemory returns VmRSS and VmHWM in bytes from /proc/<pid>/status
// (0 for a missing field, e.g. of a zombie).
func ParseStatusMemory(status string) (rss, hwm uint64) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val) // "12345 kB"
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			n *= 1024
		}
		if key == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm
}

// ClockTicks returns the kernel's USER_HZ (what sysconf(_SC_CLK_TCK) returns),
// read from the AT_CLKTCK entry of /proc/self/auxv; 100 if that can't be read.
func ClockTicks() float64 {
	const atClkTck = 17
	data, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	word := strconv.IntSize / 8
	for off := 0; off+2*word <= len(data); off += 2 * word {
		var k, v uint64
		if word == 8 {
			k = binary.NativeEndian.Uint64(data[off:])
			v = binary.NativeEndian.Uint64(data[off+word:])
		} else {
			k = uint64(binary.NativeEndian.Uint32(data[off:]))
			v = uint64(binary.NativeEndian.Uint32(data[off+word:]))
		}
		if k == 0 {
			break
		}
		if k == atClkTck && v > 0 {
			return float64(v)
		}
	}
	return 100
}
