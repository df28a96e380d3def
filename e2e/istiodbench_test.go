package e2e

import (
	"fmt"
	"math"
)

// kbVersusIstiod prints, per xDS mode that ran against both, the ratios
// mizzen/istiod of the kube bench's figures (issue 12: the same load on the
// same apiserver, alternating) and whether each acceptance bound of the issue
// holds. `make bench-istiod` runs it (MIZZEN_BENCH_CONTROL_PLANES="mizzen istiod").
func kbVersusIstiod(env *kubeBenchEnv, rs []*kubeBenchResult) {
	for _, mode := range []string{"sotw", "delta"} {
		var mz, is *kubeBenchResult
		for _, r := range rs {
			if r.Mode != mode {
				continue
			}
			switch r.ControlPlane {
			case "mizzen":
				mz = r
			case "istiod":
				is = r
			}
		}
		if mz == nil || is == nil {
			continue
		}
		fmt.Printf("kube-bench mizzen vs istiod (%s): %d services, %d proxies (%d workloads, %d namespaces), %d round(s) per change kind; load average %s / %s\n",
			mode, env.services, env.proxies, env.workloads, env.namespaces, env.rounds, mz.LoadAvg, is.LoadAvg)
		fmt.Printf("kube-bench   %-34s %16s %16s %10s\n", "", "mizzen", "istiod", "ratio")
		row := func(name, unit string, m, i float64) {
			fmt.Printf("kube-bench   %-34s %16s %16s %10s\n", name, kbVal(m, unit), kbVal(i, unit), kbRatio(m, i))
		}
		row("warm-up (all proxies full config)", "ms", mz.InitialMS, is.InitialMS)
		row("warm-up per-proxy p99", "ms", mz.InitialP99MS, is.InitialP99MS)
		row("warm-up cpu", "s", mz.CPUSecondsInitial, is.CPUSecondsInitial)
		row("warm-up stream errors (refused)", "", float64(mz.InitialStreamErrors), float64(is.InitialStreamErrors))
		row("rss after warm-up", "MiB", kbMiB(mz.RSSInitial), kbMiB(is.RSSInitial))
		row("rss peak", "MiB", kbMiB(mz.RSSPeak), kbMiB(is.RSSPeak))
		row("rss final (after the changes)", "MiB", kbMiB(mz.RSSFinal), kbMiB(is.RSSFinal))
		row("rss per proxy (warm - ready) / N", "KiB", mz.RSSPerProxy/1024, is.RSSPerProxy/1024)
		row("eds change p50", "ms", mz.EDSP50MS, is.EDSP50MS)
		row("eds change p99", "ms", mz.EDSP99MS, is.EDSP99MS)
		row("eds cpu per change", "s", mz.EDSCPUPerChange, is.EDSCPUPerChange)
		row("eds bytes per change", "KiB", mz.EDSBytesPerChange/1024, is.EDSBytesPerChange/1024)
		row("vs change p50", "ms", mz.VSP50MS, is.VSP50MS)
		row("vs change p99", "ms", mz.VSP99MS, is.VSP99MS)
		row("vs cpu per change", "s", mz.VSCPUPerChange, is.VSCPUPerChange)
		row("vs bytes per change", "KiB", mz.VSBytesPerChange/1024, is.VSBytesPerChange/1024)
		row("cpu total", "s", mz.CPUSeconds, is.CPUSeconds)
		row("load client cpu", "s", mz.ClientCPUSeconds, is.ClientCPUSeconds)

		check := func(ok bool, format string, args ...any) {
			verdict := "MET"
			if !ok {
				verdict = "NOT MET"
			}
			fmt.Printf("kube-bench   acceptance %-8s "+format+"\n", append([]any{verdict}, args...)...)
		}
		rss := float64(max(mz.RSSPeak, mz.RSSFinal)) / float64(max(is.RSSPeak, is.RSSFinal))
		check(rss <= 0.25, "mizzen rss ≤ 1/4 of istiod's (peak): %.2f", rss)
		check(mz.InitialMS <= 5000 && mz.InitialStreamErrors == 0, "mizzen warm-up ≤ 5 s, no refused connections: %.1f s, %d", mz.InitialMS/1000, mz.InitialStreamErrors)
		check(is.EDSP99MS > 0 && mz.EDSP99MS/is.EDSP99MS <= 0.2, "eds change p99 ≤ 1/5 of istiod's: %s", kbRatio(mz.EDSP99MS, is.EDSP99MS))
		check(is.VSP99MS > 0 && mz.VSP99MS/is.VSP99MS <= 0.05, "vs change p99 ≤ 1/20 of istiod's: %s", kbRatio(mz.VSP99MS, is.VSP99MS))
		check(is.VSCPUPerChange > 0 && mz.VSCPUPerChange/is.VSCPUPerChange <= 0.1, "vs cpu per change ≤ 1/10 of istiod's: %s", kbRatio(mz.VSCPUPerChange, is.VSCPUPerChange))
	}
}

func kbVal(v float64, unit string) string {
	switch {
	case unit == "":
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.3f %s", v, unit)
}

// kbRatio is m/i as "0.27×", or "-" when istiod's figure is 0.
func kbRatio(m, i float64) string {
	if i == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3g×", m/i)
}
