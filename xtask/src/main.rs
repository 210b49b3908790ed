//! gort's project tasks. One so far:
//!
//! `cargo run --release -p xtask -- bench-report [--quick] [--out DIR]` runs every criterion
//! benchmark of the workspace (each in a process of its own, so its peak RSS is its own), the Go
//! programs of `../shared/anchors/go` when Go is installed (it says how to install Go when it is
//! not), the memory probe and the liveness bench, and writes `BENCHMARKS.md` with SVG charts under
//! `docs/bench/`. It is the only writer of the numbers in that file.
//!
//! `--quick` (or `GORT_BENCH_QUICK=1`) shrinks every workload, as CI's smoke run does, and writes to
//! `target/bench-report-quick/` instead, so quick figures never land in `BENCHMARKS.md`.

mod chart;
mod measure;
mod report;
mod spec;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

use report::Results;

const USAGE: &str = "usage: cargo run --release -p xtask -- bench-report [--quick] [--out DIR]";
/// binary-trees runs of each program in a full report; the report keeps the medians.
const BINTREE_RUNS: usize = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench-report") => match bench_report(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn bench_report(args: &[String]) -> Result<(), String> {
    let mut quick = std::env::var_os("GORT_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => {
                out = Some(PathBuf::from(it.next().ok_or_else(|| {
                    format!("xtask: --out needs a directory\n{USAGE}")
                })?))
            }
            other => return Err(format!("xtask: unknown argument {other:?}\n{USAGE}")),
        }
    }
    let root = workspace_root();
    let target = target_dir(&root)?;
    let out = out.unwrap_or_else(|| {
        if quick {
            target.join("bench-report-quick")
        } else {
            root.clone()
        }
    });
    let mut r = Results {
        quick,
        machine: machine(&root),
        ..Results::default()
    };

    // Criterion benches, one process per benchmark.
    let since = SystemTime::now();
    let criterion_dir = target.join("criterion");
    for (name, exe) in measure::bench_executables(&root)? {
        if name == "liveness" {
            let mut cmd = Command::new(&exe);
            if quick {
                cmd.arg("--test");
            }
            match measure::run_measured(&mut cmd) {
                Ok(run) if run.success => r.liveness = Some(run.stdout),
                Ok(_) => r.failures.push("the liveness bench failed".into()),
                Err(e) => r.failures.push(e),
            }
            continue;
        }
        if name == "gc" {
            // binary-trees is not a criterion group: the bench's own main runs it when the filter
            // names it, in a process of its own (so the peak RSS is its own). Several runs, and
            // their median (so is Go's, below).
            let mut runs = Vec::new();
            for _ in 0..if quick { 1 } else { BINTREE_RUNS } {
                let mut cmd = Command::new(&exe);
                cmd.args(["--bench", "binary_trees"]);
                if quick {
                    cmd.env("GORT_BENCH_QUICK", "1");
                }
                match measure::run_measured(&mut cmd) {
                    Ok(run) if run.success => {
                        match report::BinTree::parse(&run.stdout, run.peak_rss_kib) {
                            Some(b) => runs.push(b),
                            None => r
                                .failures
                                .push("binary-trees printed no summary line".into()),
                        }
                    }
                    Ok(_) => r.failures.push("the binary-trees run failed".into()),
                    Err(e) => r.failures.push(e),
                }
            }
            r.bintree = report::BinTree::median(runs);
        }
        for id in measure::list_benchmarks(&exe)? {
            eprintln!("xtask: {name}: {id}");
            let Some((group, runtime)) = id.rsplit_once('/') else {
                continue;
            };
            match measure::run_benchmark(&exe, &id, quick, &criterion_dir, since) {
                Ok(cell) => {
                    r.cells
                        .entry(group.to_string())
                        .or_default()
                        .insert(runtime.to_string(), cell);
                }
                Err(e) => r.failures.push(e),
            }
        }
    }

    // The network script (wrk against the HTTP servers, our load client against the echo
    // servers); too long for a quick run.
    let net_script = root.join("scripts/bench_net.sh");
    if !quick && net_script.exists() {
        match measure::run_measured(Command::new("bash").arg(&net_script).arg("5")) {
            Ok(run) if run.success => r.net = report::parse_net_table(&run.stdout),
            Ok(_) => r.failures.push("scripts/bench_net.sh failed".into()),
            Err(e) => r.failures.push(e),
        }
    }

    match measure::run_mem_probe(&root, quick) {
        Ok(m) => r.mem_probe = m,
        Err(e) => r.failures.push(e),
    }

    // Go, same sitting.
    let anchors = root.join("../shared/anchors/go");
    match (measure::go_binary(), anchors.join("main.go").exists()) {
        (None, _) => {
            let why =
                "Go is not installed: `apt-get update && apt-get install -y golang-1.19-go`, \
                       then run this command again";
            eprintln!("xtask: {why}");
            r.go_missing = Some(why.into());
        }
        (Some(_), false) => {
            r.go_missing = Some(format!("no Go anchors at {}", anchors.display()));
        }
        (Some(go), true) => {
            let work = target.join("go-anchors");
            run_go_anchors(&go, &anchors, &work, quick, &mut r);
        }
    }

    // Charts and the report.
    std::fs::create_dir_all(out.join("docs/bench"))
        .map_err(|e| format!("xtask: {}: {e}", out.display()))?;
    let mut charts = Vec::new();
    let anchor_rows: Vec<chart::Row> = spec::SPECS
        .iter()
        .filter_map(|s| {
            let g = r.value(s.group, "gort")?;
            let mut bars = vec![("gort", 1.0)];
            if let Some(t) = r.value(s.group, "tokio") {
                bars.push(("tokio", t / g));
            }
            if let Some((go, _)) = r.go_value(s.group) {
                bars.push(("Go", go / g));
            }
            Some(chart::Row {
                label: s.group.to_string(),
                bars,
            })
        })
        .collect();
    let mut emit = |file: &str, title: &str, rows: &[chart::Row]| -> Result<(), String> {
        if !rows.is_empty() {
            let rel = format!("docs/bench/{file}");
            chart::write(&out.join(&rel), title, rows)?;
            charts.push((title.to_string(), rel));
        }
        Ok(())
    };
    emit(
        "anchors.svg",
        "gort vs tokio vs Go: Go-anchored workloads",
        &anchor_rows,
    )?;
    let matrix_rows: Vec<chart::Row> = r
        .cells
        .iter()
        .filter(|(g, _)| spec::is_matrix(g))
        .filter_map(|(group, cells)| {
            let g = cells.get("gort")?.per(spec::Per::Element);
            let bars = report::RUNTIMES
                .iter()
                .filter_map(|&rt| Some((rt, cells.get(rt)?.per(spec::Per::Element) / g)))
                .collect();
            Some(chart::Row {
                label: group.clone(),
                bars,
            })
        })
        .collect();
    emit(
        "matrix.svg",
        "channel matrix: gort vs crossbeam vs flume vs tokio",
        &matrix_rows,
    )?;
    let path = out.join("BENCHMARKS.md");
    std::fs::write(&path, r.markdown(&charts))
        .map_err(|e| format!("xtask: writing {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    if !r.failures.is_empty() {
        return Err(format!(
            "xtask: {} measurement(s) failed (listed in the report)",
            r.failures.len()
        ));
    }
    Ok(())
}

fn run_go_anchors(go: &Path, anchors: &Path, work: &Path, quick: bool, r: &mut Results) {
    let bin = match measure::build_go(go, anchors, "", work) {
        Ok(b) => b,
        Err(e) => {
            r.go_missing = Some(e);
            return;
        }
    };
    let mut args: Vec<&str> = spec::SPECS
        .iter()
        .filter_map(|s| s.go.map(|g| g.arg))
        .collect();
    args.dedup();
    args.push("mem");
    for arg in args {
        match measure::run_go(&bin, arg) {
            Ok((kv, rss)) => {
                for (k, v) in kv {
                    r.go.insert(k, (v, rss));
                }
            }
            Err(e) => r.failures.push(e),
        }
    }
    if !quick {
        match measure::build_go(go, anchors, "bintree", work) {
            Ok(bin) => {
                let mut runs = Vec::new();
                for _ in 0..BINTREE_RUNS {
                    match measure::run_measured(&mut Command::new(&bin)) {
                        Ok(run) if run.success => {
                            runs.extend(report::BinTree::parse(&run.stdout, run.peak_rss_kib));
                        }
                        Ok(_) => r.failures.push("Go's bintree anchor failed".into()),
                        Err(e) => r.failures.push(e),
                    }
                }
                r.go_bintree = report::BinTree::median(runs);
            }
            Err(e) => r.failures.push(e),
        }
        match measure::build_go(go, anchors, "hog", work)
            .and_then(|b| measure::run_measured(&mut Command::new(b)))
        {
            Ok(run) if run.success => r.go_hog = Some(run.stdout),
            Ok(_) => r.failures.push("Go's hog anchor failed".into()),
            Err(e) => r.failures.push(e),
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir(root: &Path) -> Result<PathBuf, String> {
    let out = Command::new(measure::cargo())
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("xtask: cannot run cargo metadata: {e}"))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("xtask: cargo metadata: {e}"))?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "xtask: cargo metadata has no target_directory".into())
}

/// What the report says about the machine: CPU, cores, memory, kernel, toolchains, date, commit.
fn machine(root: &Path) -> Vec<(String, String)> {
    let first_line = |cmd: &mut Command| -> Option<String> {
        let out = cmd.output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().next().map(|l| l.trim().to_string())
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".to_string(), |m| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map_or("unknown".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut v = vec![
        (
            "CPU".to_string(),
            format!("{model}, {cores} CPUs available"),
        ),
        ("memory".to_string(), mem),
        (
            "kernel".to_string(),
            first_line(Command::new("uname").arg("-sr")).unwrap_or_default(),
        ),
        (
            "rustc".to_string(),
            first_line(Command::new("rustc").arg("-V")).unwrap_or_default(),
        ),
        (
            "date (UTC)".to_string(),
            first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M"])).unwrap_or_default(),
        ),
        (
            "commit".to_string(),
            first_line(Command::new("git").current_dir(root).args([
                "rev-parse",
                "--short",
                "HEAD",
            ]))
            .unwrap_or_default(),
        ),
    ];
    if let Some(go) = measure::go_binary() {
        v.push((
            "Go".to_string(),
            first_line(Command::new(go).arg("version")).unwrap_or_default(),
        ));
    }
    v
}
