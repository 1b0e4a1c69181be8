package main

import (
	"fmt"
	"io"
	"syscall"
	"time"
)

// runOnly sends n requests, one at a time, to one target alone, so that
// an outside tool (time, perf, strace) or -cpuprofile sees that target's
// whole process cost: client, proxy and upstream. It prints the wall time
// and the process CPU time per request.
func runOnly(out io.Writer, name string, o options) error {
	env, err := startTargets()
	if err != nil {
		return err
	}
	defer env.close()
	tg, ok := map[string]target{"direct": env.direct, "bare": env.bare, "tollgate": env.proxied}[name]
	if !ok {
		return fmt.Errorf("-only %q: want direct, bare or tollgate", name)
	}
	if err := env.warm(); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	t0, cpu0 := time.Now(), cpuTime()
	for range o.requests {
		if _, err := tg.do(env.client, chatBody); err != nil {
			return err
		}
	}
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	n := float64(o.requests)
	fmt.Fprintf(out, "%s alone, %d requests at concurrency 1: %.1f µs wall, %.1f µs process CPU per request\n",
		name, o.requests, us(wall)/n, us(cpu)/n)
	return nil
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
