package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	Kernel   string  `json:"kernel"`
	Go       string  `json:"go"`
	Redis    string  `json:"redis"`
	Postgres string  `json:"postgres"`
	HAProxy  string  `json:"haproxy"`
	LoadAvg  string  `json:"load_average_at_start"`
	Virtual  string  `json:"virtualization,omitempty"`
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadAvg: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGB = kb / 1024 / 1024
			}
		}
	}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	m.Kernel = first("uname", "-r")
	m.Virtual = first("systemd-detect-virt")
	m.Redis = first("redis-server", "--version")
	m.HAProxy = first("haproxy", "-v")
	if m.HAProxy == "" {
		m.HAProxy = first("/usr/sbin/haproxy", "-v")
	}
	if dirs, _ := exec.Command("sh", "-c", "ls -d /usr/lib/postgresql/*/bin/postgres | sort -V | tail -1").Output(); len(dirs) > 0 {
		m.Postgres = first(strings.TrimSpace(string(dirs)), "--version")
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuTimes are the machine's CPU counters (/proc/stat), to report the time
// the hypervisor stole from this machine during a phase.
type cpuTimes struct{ total, steal uint64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal
			t.total += n
		}
		if i == 7 {
			t.steal = n
		}
	}
	return t
}

func (t cpuTimes) stealSince(before cpuTimes) float64 {
	if t.total <= before.total {
		return 0
	}
	return 100 * float64(t.steal-before.steal) / float64(t.total-before.total)
}

// peakRSS is a process's peak resident set size (VmHWM) in MB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// procCPU is the CPU time a process has used (user + system), and with
// children, that of its children which have exited (a postmaster's
// backends once their connections close).
func procCPU(pid int, children bool) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	fields := []int{11, 12} // utime, stime (fields 14 and 15 of the whole line)
	if children {
		fields = append(fields, 13, 14) // cutime, cstime
	}
	for _, i := range fields {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks)
}

const clockTicks = 100 // USER_HZ on Linux

// selfCPU is this process's CPU time: the load tool's, while it runs.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU that named processes (and the load tool, in
// this process) spend between start and stop.
type cpuMeter struct {
	pids   map[string][]int
	before map[string]time.Duration
	self   time.Duration
}

func meterCPU(pids map[string][]int) *cpuMeter {
	m := &cpuMeter{pids: pids, before: map[string]time.Duration{}, self: selfCPU()}
	for name, ps := range pids {
		for _, p := range ps {
			m.before[name] += procCPU(p, false)
		}
	}
	return m
}

// perRequest returns µs of CPU per request by process, and the load tool's.
func (m *cpuMeter) perRequest(requests int64) map[string]float64 {
	out := map[string]float64{"load tool": float64(selfCPU()-m.self) / float64(time.Microsecond) / float64(requests)}
	for name, ps := range m.pids {
		var now time.Duration
		for _, p := range ps {
			now += procCPU(p, false)
		}
		out[name] = float64(now-m.before[name]) / float64(time.Microsecond) / float64(requests)
	}
	return out
}

// pressure is the kernel's pressure stall information: the time some task
// waited for the CPU and for I/O, in µs since boot (/proc/pressure).
type pressure struct{ cpu, io uint64 }

func readPressure() pressure {
	read := func(name string) uint64 {
		b, err := os.ReadFile("/proc/pressure/" + name)
		if err != nil {
			return 0
		}
		line, _, _ := strings.Cut(string(b), "\n") // "some avg10=… total=N"
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				n, _ := strconv.ParseUint(v, 10, 64)
				return n
			}
		}
		return 0
	}
	return pressure{cpu: read("cpu"), io: read("io")}
}

// since returns the share of the elapsed time during which some task was
// stalled on the CPU and on I/O, in percent.
func (p pressure) since(before pressure, elapsed time.Duration) (cpu, io float64) {
	us := float64(elapsed / time.Microsecond)
	if us <= 0 {
		return 0, 0
	}
	return 100 * float64(p.cpu-before.cpu) / us, 100 * float64(p.io-before.io) / us
}
