package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Via values of BackfillRun.
const (
	viaCLI    = "tapline funnels backfill"
	viaHelper = "bench/cmd/funnelbackfill"
)

// hasBackfillCommand reports whether the tapline binary has the
// "funnels backfill" command.
func hasBackfillCommand(tapline string) bool {
	out, _ := exec.Command(tapline, "funnels", "backfill", "-h").CombinedOutput()
	return strings.Contains(string(out), "funnels backfill") && strings.Contains(string(out), "-workers")
}

// waitPeak waits for the started cmd and returns its peak RSS in KiB,
// VmHWM read every 10 ms while it runs. The rusage of a waited-for child
// will not do: its maxrss starts at the bench's own high-water mark, as
// the child runs on the bench's memory between fork and exec.
func waitPeak(cmd *exec.Cmd) (int64, error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		peak = max(peak, PeakRSS(cmd.Process.Pid))
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
		}
	}
}

// execBackfill runs backfills as separate processes: "tapline funnels
// backfill ID" from binDir when the binary has it, else (or when profile
// names a CPU profile to write) the funnelbackfill helper.
func execBackfill(binDir string, workDir func() string, profile string) BackfillRunner {
	return func(ctx context.Context, dbURL, dataDir string, funnelID int64) (BackfillRun, error) {
		id := strconv.FormatInt(funnelID, 10)
		bin, via := filepath.Join(binDir, "tapline"), viaCLI
		args := []string{"funnels", "backfill", id, "-database-url", dbURL, "-data-dir", dataDir}
		if profile != "" || !hasBackfillCommand(bin) {
			bin, via = filepath.Join(binDir, "funnelbackfill"), viaHelper
			args = []string{"-database-url", dbURL, "-data-dir", dataDir}
			if profile != "" {
				args = append(args, "-cpuprofile", fmt.Sprintf("%s.%s", profile, id))
			}
			args = append(args, id)
		}
		log, err := os.Create(filepath.Join(workDir(), "funnel-backfill-"+id+".log"))
		if err != nil {
			return BackfillRun{}, err
		}
		defer log.Close()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = log, log
		start := time.Now()
		var peak int64
		if err = cmd.Start(); err == nil {
			peak, err = waitPeak(cmd)
		}
		run := BackfillRun{Seconds: time.Since(start).Seconds(), Via: via, PeakKB: peak}
		if cmd.ProcessState == nil {
			return run, fmt.Errorf("%s: %w", via, err)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
			run.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
		if err != nil {
			return run, fmt.Errorf("%s: %w (log %s)", via, err, log.Name())
		}
		return run, nil
	}
}
