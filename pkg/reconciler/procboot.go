package reconciler

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's starttime: 100 on every Linux port.
const clockTicks = 100

// pid1Start reads when PID 1 started: /proc/stat's btime plus /proc/1/stat's starttime. In a
// container (its own PID namespace) that is the container's boot. Zero when /proc says nothing.
func pid1Start() time.Time {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	var btime int64 = -1
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	one, err := os.ReadFile("/proc/1/stat")
	if err != nil || btime < 0 {
		return time.Time{}
	}
	// The command name is in parentheses and may hold spaces: fields count from the last ')'.
	i := bytes.LastIndexByte(one, ')')
	if i < 0 {
		return time.Time{}
	}
	fields := strings.Fields(string(one[i+1:]))
	const starttime = 22 - 3 // field 22, counted after pid, (comm) and the ')' split
	if len(fields) <= starttime {
		return time.Time{}
	}
	ticks, err := strconv.ParseInt(fields[starttime], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(btime, 0).Add(time.Duration(ticks) * time.Second / clockTicks)
}
