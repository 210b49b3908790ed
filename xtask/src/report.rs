//! `BENCHMARKS.md`: the machine, every median with its ratios and peak memory, the charts, and
//! each issue target marked met or missed. Everything in it comes from one run of the command.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::measure::Cell;
use crate::spec::{self, Per, Target};

/// The runtimes that appear as columns, in order.
pub const RUNTIMES: &[&str] = &["gort", "tokio", "crossbeam", "flume"];

/// Everything one sitting measured.
#[derive(Default)]
pub struct Results {
    /// `(label, value)` lines describing the machine and toolchains.
    pub machine: Vec<(String, String)>,
    pub quick: bool,
    /// group -> runtime -> result.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
    /// Go figures by key, with the peak RSS (KiB) of the run that printed each.
    pub go: BTreeMap<String, (f64, u64)>,
    /// Why Go figures are missing, when they are.
    pub go_missing: Option<String>,
    /// `(goroutines parked, RSS bytes per goroutine)` from the memory probe.
    pub mem_probe: Vec<(u64, f64)>,
    /// Raw output of the liveness bench and of Go's hog anchor.
    pub liveness: Option<String>,
    pub go_hog: Option<String>,
    /// Measurements that failed, named in the report.
    pub failures: Vec<String>,
    /// binary-trees (issue 6): gort's run and Go's `bintree` anchor.
    pub bintree: Option<BinTree>,
    pub go_bintree: Option<BinTree>,
    /// `scripts/bench_net.sh`'s table: label -> (gort, tokio).
    pub net: BTreeMap<String, (f64, f64)>,
}

/// The rows of `scripts/bench_net.sh`'s closing table (`label  gort  tokio  ratio`).
pub fn parse_net_table(output: &str) -> BTreeMap<String, (f64, f64)> {
    const LABELS: &[&str] = &[
        "http plaintext req/s",
        "http plaintext p99 (us)",
        "echo msgs/s",
        "echo p99 (us)",
    ];
    let mut out = BTreeMap::new();
    for line in output.lines() {
        for &label in LABELS {
            if let Some(rest) = line.strip_prefix(label) {
                let nums: Vec<f64> = rest
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                if let [g, t, ..] = nums[..] {
                    out.insert(label.to_string(), (g, t));
                }
            }
        }
    }
    out
}

/// One binary-trees run: `binary_trees_D_ms T gc_cycles N max_pause_us P` as both programs print it.
#[derive(Clone, Debug, PartialEq)]
pub struct BinTree {
    pub depth: u32,
    pub ms: f64,
    pub gc_cycles: u64,
    pub max_pause_us: f64,
    pub peak_rss_kib: u64,
    /// How many runs this summarizes (`BinTree::median`), and their fastest and slowest times.
    pub runs: usize,
    pub ms_range: (f64, f64),
}

impl BinTree {
    /// Parses the summary line out of a binary-trees program's output (gort prefixes it with
    /// `gort `); `peak_rss_kib` comes from the run.
    pub fn parse(output: &str, peak_rss_kib: u64) -> Option<BinTree> {
        let line = output
            .lines()
            .find(|l| l.trim_start_matches("gort ").starts_with("binary_trees_"))?;
        let mut words = line.trim_start_matches("gort ").split_whitespace();
        let key = words.next()?;
        let depth = key
            .strip_prefix("binary_trees_")?
            .strip_suffix("_ms")?
            .parse()
            .ok()?;
        let ms = words.next()?.parse().ok()?;
        let rest: Vec<&str> = words.collect();
        let field = |name: &str| {
            rest.iter()
                .position(|w| *w == name)
                .and_then(|i| rest.get(i + 1)?.parse::<f64>().ok())
        };
        Some(BinTree {
            depth,
            ms,
            gc_cycles: field("gc_cycles")? as u64,
            max_pause_us: field("max_pause_us")?,
            peak_rss_kib,
            runs: 1,
            ms_range: (ms, ms),
        })
    }

    /// Several runs of one program as one: the median time (with that run's collections), the
    /// median peak RSS, and the worst pause of any run. On a shared 2-core
    /// machine a single run of either program can be off by half; DESIGN.md's figures are medians.
    pub fn median(mut runs: Vec<BinTree>) -> Option<BinTree> {
        if runs.is_empty() {
            return None;
        }
        let mid = runs.len() / 2;
        let mut rss: Vec<u64> = runs.iter().map(|r| r.peak_rss_kib).collect();
        rss.sort_unstable();
        let max_pause_us = runs.iter().map(|r| r.max_pause_us).fold(0.0, f64::max);
        runs.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        let ms_range = (runs[0].ms, runs[runs.len() - 1].ms);
        let n = runs.len();
        let mut m = runs.swap_remove(mid);
        m.peak_rss_kib = rss[mid];
        m.max_pause_us = max_pause_us;
        m.runs = n;
        m.ms_range = ms_range;
        Some(m)
    }
}

/// Formats nanoseconds with a unit a reader takes in at a glance.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn fmt_mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

impl Results {
    /// gort's, tokio's, ... median for `group` in the spec's unit.
    pub fn value(&self, group: &str, runtime: &str) -> Option<f64> {
        let per = spec::spec(group).map_or(Per::Element, |s| s.per);
        self.cells.get(group)?.get(runtime).map(|c| c.per(per))
    }

    /// Go's figure for a named workload, in ns.
    pub fn go_value(&self, group: &str) -> Option<(f64, u64)> {
        let anchor = spec::spec(group)?.go?;
        let &(v, rss) = self.go.get(anchor.key)?;
        Some((if anchor.millis { v * 1e6 } else { v }, rss))
    }

    /// Each target: (issue, workload, target text, figures, met?). `None` verdict: not measured.
    pub fn verdicts(&self) -> Vec<(u32, String, String, String, Option<bool>)> {
        let mut out = Vec::new();
        for s in spec::SPECS {
            let gort = self.value(s.group, "gort");
            for t in s.targets {
                let (text, against) = match *t {
                    Target::GoRatio(r) => (
                        format!("<= {r}x Go"),
                        self.go_value(s.group).map(|(v, _)| ("Go", v * r, v)),
                    ),
                    Target::TokioRatio(r) => (
                        if r == 1.0 {
                            "ahead of tokio".to_string()
                        } else {
                            format!("<= {r}x tokio")
                        },
                        self.value(s.group, "tokio").map(|v| ("tokio", v * r, v)),
                    ),
                    Target::AtMostNs(ns) => (format!("<= {}", fmt_ns(ns)), Some(("limit", ns, ns))),
                };
                let (figures, met) = match (gort, against) {
                    (Some(g), Some((who, bound, theirs))) => (
                        format!(
                            "gort {} vs {who} {} ({:.2}x)",
                            fmt_ns(g),
                            fmt_ns(theirs),
                            g / theirs
                        ),
                        Some(g <= bound),
                    ),
                    (Some(g), None) => {
                        (format!("gort {}; no comparison measured", fmt_ns(g)), None)
                    }
                    (None, _) => ("not measured".to_string(), None),
                };
                out.push((s.issue, s.group.to_string(), text, figures, met));
            }
        }
        // Issue 3: ahead of tokio on every matrix cell it can run.
        for (group, cells) in &self.cells {
            if !spec::is_matrix(group) {
                continue;
            }
            if let (Some(g), Some(t)) = (cells.get("gort"), cells.get("tokio")) {
                let (g, t) = (g.per(Per::Element), t.per(Per::Element));
                out.push((
                    3,
                    group.clone(),
                    "ahead of tokio".to_string(),
                    format!("gort {} vs tokio {} ({:.2}x)", fmt_ns(g), fmt_ns(t), g / t),
                    Some(g <= t),
                ));
            }
        }
        // Issue 4: liveness beside hogs and blocking calls (the liveness bench's `key gort value`
        // lines).
        for line in self.liveness.iter().flat_map(|l| l.lines()) {
            let mut words = line.split_whitespace();
            let (Some(key), Some("gort"), Some(value)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let note = line
                .split_once('(')
                .map_or("", |(_, n)| n.trim_end_matches(')'));
            match key {
                "hog_ticker_worst_late_ms" => out.push((
                    4,
                    "10 ms ticker beside 2xP CPU hogs: worst lateness".to_string(),
                    "<= 25 ms".to_string(),
                    format!("gort {v:.1} ms ({note})"),
                    Some(v <= 25.0),
                )),
                "progress_during_blocking_calls_yields_per_s" => out.push((
                    4,
                    format!("yields beside blocked threads ({note})"),
                    "> 1M/s".to_string(),
                    format!("gort {:.2}M/s", v / 1e6),
                    Some(v > 1e6),
                )),
                _ => {}
            }
        }
        // Issue 6: binary-trees against Go's, and handle clone+drop against Arc's.
        if let Some(b) = &self.bintree {
            let go = self.go_bintree.as_ref().filter(|g| g.depth == b.depth);
            let what = format!("binary-trees depth {}", b.depth);
            match go {
                Some(g) => {
                    out.push((
                        6,
                        what.clone(),
                        "time <= Go".to_string(),
                        format!(
                            "gort {:.0} ms vs Go {:.0} ms ({:.2}x)",
                            b.ms,
                            g.ms,
                            b.ms / g.ms
                        ),
                        Some(b.ms <= g.ms),
                    ));
                    out.push((
                        6,
                        what.clone(),
                        "peak RSS <= Go".to_string(),
                        format!(
                            "gort {} MiB vs Go {} MiB",
                            fmt_mib(b.peak_rss_kib),
                            fmt_mib(g.peak_rss_kib)
                        ),
                        Some(b.peak_rss_kib <= g.peak_rss_kib),
                    ));
                }
                None => out.push((
                    6,
                    what.clone(),
                    "time and peak RSS <= Go".to_string(),
                    format!("gort {:.0} ms; Go not measured at this depth", b.ms),
                    None,
                )),
            }
            out.push((
                6,
                what,
                "max pause <= 1 ms".to_string(),
                format!(
                    "gort {:.0} us over {} collections{}",
                    b.max_pause_us,
                    b.gc_cycles,
                    go.map_or(String::new(), |g| format!(" (Go {:.0} us)", g.max_pause_us))
                ),
                Some(b.max_pause_us <= 1000.0),
            ));
        }
        if let Some(cells) = self.cells.get("gc_handles/clone_drop") {
            if let (Some(g), Some(a)) = (cells.get("gort_gc"), cells.get("arc")) {
                out.push((
                    6,
                    "Gc clone + drop".to_string(),
                    "<= 1.5x Arc".to_string(),
                    format!(
                        "Gc {} vs Arc {} ({:.2}x)",
                        fmt_ns(g.median_ns),
                        fmt_ns(a.median_ns),
                        g.median_ns / a.median_ns
                    ),
                    Some(g.median_ns <= 1.5 * a.median_ns),
                ));
            }
        }
        // Issue 5: HTTP/1.1 plaintext under wrk against the same server on tokio.
        if let Some(&(g, t)) = self.net.get("http plaintext req/s") {
            out.push((
                5,
                "HTTP/1.1 plaintext, wrk -t1 -c100".to_string(),
                ">= 1.1x tokio req/s".to_string(),
                format!("gort {g:.0} vs tokio {t:.0} req/s ({:.2}x)", g / t),
                Some(g >= 1.1 * t),
            ));
        }
        if let Some(&(g, t)) = self.net.get("http plaintext p99 (us)") {
            out.push((
                5,
                "HTTP/1.1 plaintext, wrk -t1 -c100".to_string(),
                "p99 <= tokio".to_string(),
                format!("gort {g:.0} us vs tokio {t:.0} us"),
                Some(g <= t),
            ));
        }
        // Issue 2: memory per parked goroutine at 1M.
        if let Some(&(n, per)) = self.mem_probe.iter().max_by_key(|(n, _)| *n) {
            out.push((
                2,
                format!("RSS per parked goroutine ({n} parked)"),
                "<= 4.5 KiB".to_string(),
                format!("gort {per:.0} B"),
                Some(per <= 4.5 * 1024.0),
            ));
        }
        out
    }

    /// The markdown report; `charts` are `(title, relative path)` of the SVGs written beside it.
    pub fn markdown(&self, charts: &[(String, String)]) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# gort benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `cargo run --release -p xtask -- bench-report`; every number below comes \
             from that one run{}. Do not edit by hand: run the command again.\n",
            if self.quick {
                " in **quick mode** (shrunken workloads: a smoke test, not figures to quote)"
            } else {
                ""
            }
        );
        let _ = writeln!(md, "## Machine and toolchains\n");
        for (k, v) in &self.machine {
            let _ = writeln!(md, "- {k}: {v}");
        }
        if let Some(why) = &self.go_missing {
            let _ = writeln!(md, "- Go: not measured ({why})");
        }
        if !self.failures.is_empty() {
            let _ = writeln!(md, "\n**Measurements that failed:**\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {f}");
            }
        }

        let _ = writeln!(md, "\n## Targets\n");
        if self.quick {
            let _ = writeln!(
                md,
                "Quick mode shrinks gort's and tokio's workloads but not Go's: these verdicts only \
                 show that the report works.\n"
            );
        }
        let _ = writeln!(md, "| issue | workload | target | figures | verdict |");
        let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
        for (issue, what, target, figures, met) in self.verdicts() {
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(
                md,
                "| {issue} | {what} | {target} | {figures} | {verdict} |"
            );
        }

        let _ = writeln!(
            md,
            "\n## Workloads with a Go anchor (`shared/anchors/go`)\n"
        );
        let _ = writeln!(
            md,
            "Medians; ratios are gort's time over the other's (below 1: gort is faster). Peak RSS \
             is each process's maximum resident set, in MiB (criterion runs each benchmark in a \
             process of its own, repeating the workload).\n"
        );
        let _ = writeln!(
            md,
            "| workload | gort | tokio | Go | gort/Go | gort/tokio | peak RSS MiB gort / tokio / Go |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
        for s in spec::SPECS {
            if !self.cells.contains_key(s.group) {
                continue;
            }
            let g = self.value(s.group, "gort");
            let t = self.value(s.group, "tokio");
            let go = self.go_value(s.group);
            let rss = |rt: &str| {
                self.cells[s.group]
                    .get(rt)
                    .map_or("-".to_string(), |c| fmt_mib(c.peak_rss_kib))
            };
            let _ = writeln!(
                md,
                "| `{}` {} | {} | {} | {} | {} | {} | {} / {} / {} |",
                s.group,
                s.what,
                g.map_or("-".into(), fmt_ns),
                t.map_or("-".into(), fmt_ns),
                go.map_or("-".into(), |(v, _)| fmt_ns(v)),
                ratio(g, go.map(|(v, _)| v)),
                ratio(g, t),
                rss("gort"),
                rss("tokio"),
                go.map_or("-".into(), |(_, kib)| fmt_mib(kib)),
            );
        }
        for (title, path) in charts.iter().filter(|(t, _)| t.contains("Go-anchored")) {
            let _ = writeln!(md, "\n![{title}]({path})");
        }

        let _ = writeln!(
            md,
            "\n## Channel matrix (crossbeam-channel's benchmarks, per message)\n"
        );
        let _ = writeln!(
            md,
            "| cell | gort | crossbeam | flume | tokio | gort/tokio | peak RSS MiB gort / tokio |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
        for (group, cells) in self.cells.iter().filter(|(g, _)| spec::is_matrix(g)) {
            let v = |rt: &str| cells.get(rt).map(|c| c.per(Per::Element));
            let rss = |rt: &str| {
                cells
                    .get(rt)
                    .map_or("-".to_string(), |c| fmt_mib(c.peak_rss_kib))
            };
            let _ = writeln!(
                md,
                "| `{group}` | {} | {} | {} | {} | {} | {} / {} |",
                v("gort").map_or("-".into(), fmt_ns),
                v("crossbeam").map_or("-".into(), fmt_ns),
                v("flume").map_or("-".into(), fmt_ns),
                v("tokio").map_or("-".into(), fmt_ns),
                ratio(v("gort"), v("tokio")),
                rss("gort"),
                rss("tokio"),
            );
        }
        for (title, path) in charts.iter().filter(|(t, _)| t.contains("matrix")) {
            let _ = writeln!(md, "\n![{title}]({path})");
        }

        let others: Vec<_> = self
            .cells
            .iter()
            .filter(|(g, _)| spec::spec(g).is_none() && !spec::is_matrix(g))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                md,
                "\n## Other benches (per element where the group has a throughput)\n"
            );
            let _ = writeln!(md, "| group | runtime | median | peak RSS MiB |");
            let _ = writeln!(md, "| --- | --- | --- | --- |");
            for (group, cells) in others {
                for (rt, c) in cells {
                    let _ = writeln!(
                        md,
                        "| `{group}` | {rt} | {} | {} |",
                        fmt_ns(c.per(Per::Element)),
                        fmt_mib(c.peak_rss_kib)
                    );
                }
            }
        }

        if !self.net.is_empty() {
            let _ = writeln!(md, "\n## Network on loopback (`scripts/bench_net.sh`)\n");
            let _ = writeln!(md, "| workload | gort | tokio | gort/tokio |");
            let _ = writeln!(md, "| --- | --- | --- | --- |");
            for (label, (g, t)) in &self.net {
                let _ = writeln!(md, "| {label} | {g:.0} | {t:.0} | {:.2} |", g / t);
            }
        }
        if let Some(b) = &self.bintree {
            let _ = writeln!(
                md,
                "\n## binary-trees (`benches/gc.rs` against `shared/anchors/go/bintree`)\n"
            );
            let _ = writeln!(
                md,
                "| program | depth | runs | time (median) | fastest - slowest | collections | max pause | peak RSS MiB (median) |"
            );
            let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
            for (who, t) in [("gort", Some(b)), ("Go", self.go_bintree.as_ref())] {
                if let Some(t) = t {
                    let _ = writeln!(
                        md,
                        "| {who} | {} | {} | {:.0} ms | {:.0} - {:.0} ms | {} | {:.0} µs | {} |",
                        t.depth,
                        t.runs,
                        t.ms,
                        t.ms_range.0,
                        t.ms_range.1,
                        t.gc_cycles,
                        t.max_pause_us,
                        fmt_mib(t.peak_rss_kib)
                    );
                }
            }
        }
        if !self.mem_probe.is_empty() {
            let _ = writeln!(
                md,
                "\n## Memory per parked goroutine (`examples/mem_probe.rs`)\n"
            );
            for (n, per) in &self.mem_probe {
                let _ = writeln!(md, "- {n} goroutines parked: {per:.0} B of RSS each");
            }
            if let Some(&(go, _)) = self.go.get("parked_goroutine_bytes") {
                let _ = writeln!(
                    md,
                    "- Go, 100000 parked: {go:.0} B each (`runtime.MemStats.Sys`)"
                );
            }
        }
        if self.liveness.is_some() || self.go_hog.is_some() {
            let _ = writeln!(
                md,
                "\n## Liveness beside CPU hogs and blocking calls (issue 4)\n"
            );
            let _ = writeln!(md, "```");
            if let Some(l) = &self.liveness {
                let _ = write!(md, "{l}");
            }
            if let Some(h) = &self.go_hog {
                let _ = writeln!(md, "Go (shared/anchors/go/hog):");
                let _ = write!(md, "{h}");
            }
            let _ = writeln!(md, "```");
        }
        md
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(ns: f64, elements: Option<u64>) -> Cell {
        Cell {
            median_ns: ns,
            elements,
            peak_rss_kib: 2048,
        }
    }

    #[test]
    fn targets_are_judged_against_the_same_run() {
        let mut r = Results::default();
        r.cells.insert(
            "spawn_1m".into(),
            [
                ("gort".to_string(), cell(100e6, Some(1_000_000))),
                ("tokio".to_string(), cell(500e6, Some(1_000_000))),
            ]
            .into(),
        );
        r.go.insert("spawn_1m_ns_per_goroutine".into(), (250.0, 4096));
        r.cells.insert(
            "select_rx/unbounded".into(),
            [
                ("gort".to_string(), cell(7e6, Some(100_000))),
                ("tokio".to_string(), cell(5e6, Some(100_000))),
            ]
            .into(),
        );
        let v = r.verdicts();
        let spawn = v.iter().find(|x| x.1 == "spawn_1m").unwrap();
        assert_eq!(spawn.4, Some(true), "100 ns <= 0.7 x 250 ns: {spawn:?}");
        let rx = v.iter().find(|x| x.1 == "select_rx/unbounded").unwrap();
        assert_eq!(rx.4, Some(false), "70 ns vs tokio's 50 ns: {rx:?}");
        let skynet = v.iter().find(|x| x.1 == "skynet_1m").unwrap();
        assert_eq!(skynet.4, None, "not measured");
        r.liveness = Some(
            "hog_ticker_worst_late_ms gort 5.2 (hogs 4, 50 ticks)\n\
             hog_ticker_worst_late_ms tokio starved: 0 of 50 ticks in 3000 ms\n\
             progress_during_blocking_calls_yields_per_s gort 900000 (unmarked std::thread::sleep)\n"
                .into(),
        );
        let v = r.verdicts();
        let hog = v.iter().find(|x| x.1.contains("hogs")).unwrap();
        assert_eq!(hog.4, Some(true), "{hog:?}");
        let slow = v.iter().find(|x| x.1.contains("unmarked")).unwrap();
        assert_eq!(slow.4, Some(false), "0.9M/s is not over 1M/s: {slow:?}");
        assert_eq!(
            v.iter().filter(|x| x.0 == 4).count(),
            2,
            "tokio lines are not gort's"
        );
        let md = r.markdown(&[]);
        assert!(
            md.contains(
                "| 2 | spawn_1m | <= 0.7x Go | gort 100.0 ns vs Go 250.0 ns (0.40x) | met |"
            ),
            "{md}"
        );
        assert!(md.contains("**missed**"));
    }

    #[test]
    fn binary_trees_lines_of_both_programs_parse() {
        let gort = "stretch tree of depth 22\t check: 8388607\n\
                    gort binary_trees_21_ms 9876 gc_cycles 40 max_pause_us 310 peak_rss_mib 200 \
                    assists 3 span_assists 12\n";
        assert_eq!(
            BinTree::parse(gort, 204_800),
            Some(BinTree {
                depth: 21,
                ms: 9876.0,
                gc_cycles: 40,
                max_pause_us: 310.0,
                peak_rss_kib: 204_800,
                runs: 1,
                ms_range: (9876.0, 9876.0),
            })
        );
        let go = "binary_trees_21_ms 11900 gc_cycles 120 max_pause_us 370\n";
        assert_eq!(BinTree::parse(go, 1).map(|b| b.ms), Some(11900.0));
        assert_eq!(BinTree::parse("no summary here", 1), None);
    }

    #[test]
    fn binary_trees_runs_summarize_as_medians_and_worst_pauses() {
        let run = |ms: f64, pause: f64, rss: u64| {
            BinTree::parse(
                &format!("binary_trees_21_ms {ms} gc_cycles 7 max_pause_us {pause}\n"),
                rss,
            )
            .unwrap()
        };
        let m = BinTree::median(vec![
            run(30.0, 5.0, 300),
            run(10.0, 900.0, 100),
            run(20.0, 1.0, 200),
        ])
        .unwrap();
        assert_eq!((m.ms, m.peak_rss_kib, m.max_pause_us), (20.0, 200, 900.0));
        assert_eq!((m.runs, m.ms_range), (3, (10.0, 30.0)));
        assert_eq!(BinTree::median(Vec::new()), None);
    }

    #[test]
    fn the_network_table_parses() {
        let out = "== HTTP ==\n\nworkload   gort   tokio   gort/tokio\n\
                   http plaintext req/s          250000         229000      1.09x\n\
                   http plaintext p99 (us)          500            570      0.88x\n\
                   echo msgs/s                  900000         800000      1.12x\n";
        let t = parse_net_table(out);
        assert_eq!(t.get("http plaintext req/s"), Some(&(250000.0, 229000.0)));
        assert_eq!(t.get("http plaintext p99 (us)"), Some(&(500.0, 570.0)));
        assert_eq!(t.len(), 3);
        let r = Results {
            net: t,
            ..Results::default()
        };
        let v = r.verdicts();
        let rps = v.iter().find(|x| x.2.contains("req/s")).unwrap();
        assert_eq!(rps.4, Some(false), "1.09x is short of 1.1x: {rps:?}");
        let p99 = v.iter().find(|x| x.2.contains("p99")).unwrap();
        assert_eq!(p99.4, Some(true));
    }

    #[test]
    fn units_read_at_a_glance() {
        assert_eq!(fmt_ns(12.34), "12.3 ns");
        assert_eq!(fmt_ns(56_700.0), "56.7 µs");
        assert_eq!(fmt_ns(197_600_000.0), "197.6 ms");
        assert_eq!(fmt_ns(11.9e9), "11.90 s");
    }
}
