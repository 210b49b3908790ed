//! Running the measurements: every criterion benchmark in a process of its own (so its peak RSS is
//! its own), the Go anchors, the memory probe and the liveness bench; and reading criterion's
//! results back from `target/criterion`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use serde_json::Value;

/// What one process printed, how it ended, and its peak resident set.
pub struct Run {
    pub stdout: String,
    pub success: bool,
    pub peak_rss_kib: u64,
}

/// Runs `cmd` to completion and samples its peak RSS (`VmHWM` in `/proc/PID/status`, every 10 ms).
///
/// Not `ru_maxrss` from `wait4`: a child started by `posix_spawn` (which std uses) inherits the
/// parent's high-water mark at `exec`, so every child would report at least the parent's peak.
/// `VmHWM` belongs to the child's own address space; sampling misses at most the growth of its
/// last 10 ms, and a benchmark reaches its peak again on every iteration.
pub fn run_measured(cmd: &mut Command) -> Result<Run, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("xtask: cannot start {cmd:?}: {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut out, &mut stdout).map(|_| stdout)
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak = peak.max(kib);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(format!("xtask: waiting for {cmd:?}: {e}")),
        }
    };
    let stdout = reader
        .join()
        .expect("the output reader does not panic")
        .map_err(|e| format!("xtask: reading the output of {cmd:?}: {e}"))?;
    Ok(Run {
        stdout,
        success: status.success(),
        peak_rss_kib: peak,
    })
}

/// `VmHWM` (peak RSS, KiB) from the text of `/proc/PID/status`.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One criterion benchmark's result.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Median time per iteration, ns.
    pub median_ns: f64,
    /// Elements per iteration (the group's throughput), if set.
    pub elements: Option<u64>,
    pub peak_rss_kib: u64,
}

impl Cell {
    /// The median per element when the group declares elements, else per iteration.
    pub fn per(&self, per: crate::spec::Per) -> f64 {
        match (per, self.elements) {
            (crate::spec::Per::Element, Some(n)) if n > 0 => self.median_ns / n as f64,
            _ => self.median_ns,
        }
    }
}

/// The workspace's bench executables (name, path), built in release mode.
pub fn bench_executables(root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let out = Command::new(cargo())
        .current_dir(root)
        .args(["bench", "-p", "gort", "--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("xtask: cannot run cargo bench --no-run: {e}"))?;
    if !out.status.success() {
        return Err("xtask: building the benches failed".into());
    }
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_bench = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bench"));
        if let (true, Some(exe), Some(name)) = (
            is_bench,
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
        ) {
            exes.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    exes.sort();
    Ok(exes)
}

/// The benchmark ids (`group/function`) a criterion executable has.
///
/// The filter `.` matches every id but keeps benches with their own `main` (the gc bench's
/// binary-trees run) from running their unfiltered extras.
pub fn list_benchmarks(exe: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(exe)
        .args(["--bench", "--list", "."])
        .output()
        .map_err(|e| format!("xtask: cannot list {}: {e}", exe.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": benchmark"))
        .map(str::to_string)
        .collect())
}

/// Runs one benchmark alone and reads its result (written by criterion after `since`).
pub fn run_benchmark(
    exe: &Path,
    id: &str,
    quick: bool,
    criterion_dir: &Path,
    since: SystemTime,
) -> Result<Cell, String> {
    let mut cmd = Command::new(exe);
    cmd.args(["--bench", &format!("^{}$", regex_escape(id))]);
    if quick {
        cmd.env("GORT_BENCH_QUICK", "1");
    }
    let run = run_measured(&mut cmd)?;
    if !run.success {
        return Err(format!("xtask: benchmark {id} failed"));
    }
    let (median_ns, elements) = read_result(criterion_dir, id, since)?;
    Ok(Cell {
        median_ns,
        elements,
        peak_rss_kib: run.peak_rss_kib,
    })
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Finds the `new/` result directory of benchmark `id` (criterion names directories after group and
/// function with `/` replaced, so the id is matched against each `benchmark.json`'s `full_id`) and
/// reads the median and the throughput. Results older than `since` are stale and refused.
fn read_result(
    criterion_dir: &Path,
    id: &str,
    since: SystemTime,
) -> Result<(f64, Option<u64>), String> {
    let read = |p: &Path| -> Result<Value, String> {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("xtask: {}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("xtask: {}: {e}", p.display()))
    };
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|it| {
                it.filter_map(|e| Some(e.ok()?.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let dir = subdirs(criterion_dir)
        .iter()
        .flat_map(|g| subdirs(g))
        .map(|f| f.join("new"))
        .find(|new| {
            read(&new.join("benchmark.json")).is_ok_and(|b| b["full_id"].as_str() == Some(id))
        })
        .ok_or_else(|| {
            format!(
                "xtask: no result for {id} under {}",
                criterion_dir.display()
            )
        })?;
    let estimates = dir.join("estimates.json");
    let fresh = std::fs::metadata(&estimates)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    if !fresh {
        return Err(format!(
            "xtask: no fresh result for {id} in {}",
            dir.display()
        ));
    }
    let est = read(&estimates)?;
    let median = est["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("xtask: {id}: no median in estimates.json"))?;
    let bench = read(&dir.join("benchmark.json"))?;
    let elements = bench["throughput"]["Elements"].as_u64();
    Ok((median, elements))
}

/// The Go toolchain, if installed.
pub fn go_binary() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/go-1.19/bin/go");
    if debian.exists() {
        return Some(debian);
    }
    let out = Command::new("go").arg("version").output().ok()?;
    out.status.success().then(|| PathBuf::from("go"))
}

/// Builds `shared/anchors/go/<folder>` into `work` and returns the binary.
pub fn build_go(go: &Path, anchors: &Path, folder: &str, work: &Path) -> Result<PathBuf, String> {
    let src = if folder.is_empty() {
        anchors.to_path_buf()
    } else {
        anchors.join(folder)
    };
    let dst = work.join(if folder.is_empty() { "anchors" } else { folder });
    copy_dir(&src, &dst)?;
    let bin = dst.join("anchor");
    let status = Command::new(go)
        .current_dir(&dst)
        .env("GOCACHE", work.join("gocache"))
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .status()
        .map_err(|e| format!("xtask: cannot run go build: {e}"))?;
    if !status.success() {
        return Err(format!("xtask: go build of {} failed", src.display()));
    }
    Ok(bin)
}

fn copy_dir(src: &Path, dst: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dst).map_err(|e| format!("xtask: {}: {e}", dst.display()))?;
    for entry in std::fs::read_dir(src).map_err(|e| format!("xtask: {}: {e}", src.display()))? {
        let entry = entry.map_err(|e| format!("xtask: {}: {e}", src.display()))?;
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, dst.join(entry.file_name()))
                .map_err(|e| format!("xtask: copying {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Go figures by key (`key value` lines) with the peak RSS of the run that printed them.
pub fn run_go(bin: &Path, arg: &str) -> Result<(BTreeMap<String, f64>, u64), String> {
    let run = run_measured(Command::new(bin).arg(arg))?;
    if !run.success {
        return Err(format!("xtask: Go anchor {arg} failed"));
    }
    Ok((parse_key_values(&run.stdout), run.peak_rss_kib))
}

/// `key value ...` lines: the first number after each key.
pub fn parse_key_values(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(key), Some(value)) = (words.next(), words.next()) {
            if let Ok(v) = value.parse::<f64>() {
                out.insert(key.to_string(), v);
            }
        }
    }
    out
}

/// The memory probe's `rss_per_goroutine_bytes` at each count it parked.
pub fn run_mem_probe(root: &Path, quick: bool) -> Result<Vec<(u64, f64)>, String> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args([
        "run",
        "--release",
        "-q",
        "-p",
        "gort",
        "--example",
        "mem_probe",
    ]);
    if quick {
        cmd.args(["--", "10000"]);
    }
    let run = run_measured(&mut cmd)?;
    if !run.success {
        return Err("xtask: the memory probe failed".into());
    }
    let mut out = Vec::new();
    for line in run.stdout.lines() {
        let mut n = None;
        let mut per = None;
        for field in line.split_whitespace() {
            if let Some(v) = field.strip_prefix("parked_goroutines=") {
                n = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("rss_per_goroutine_bytes=") {
                per = v.parse().ok();
            }
        }
        if let (Some(n), Some(per)) = (n, per) {
            out.push((n, per));
        }
    }
    Ok(out)
}

/// The cargo the xtask was started by (or `cargo`).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_lines_keep_the_first_number() {
        let kv = parse_key_values(
            "go version go1.19.8\nskynet_1m_ms 650.4 (sum 499999500000)\nspawn_1m_ns_per_goroutine 252.3\n",
        );
        assert_eq!(kv.get("skynet_1m_ms"), Some(&650.4));
        assert_eq!(kv.get("spawn_1m_ns_per_goroutine"), Some(&252.3));
        assert_eq!(kv.get("go"), None);
    }

    #[test]
    fn results_are_found_by_full_id_whatever_the_directory() {
        let root = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let new = root.join("gc_handles/clone_drop_gort_gc/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"full_id":"gc_handles/clone_drop/gort_gc","throughput":{"Elements":1000}}"#,
        )
        .unwrap();
        let since = SystemTime::now() - std::time::Duration::from_secs(5);
        std::fs::write(
            new.join("estimates.json"),
            r#"{"median":{"point_estimate":2500.0}}"#,
        )
        .unwrap();
        assert_eq!(
            read_result(&root, "gc_handles/clone_drop/gort_gc", since).unwrap(),
            (2500.0, Some(1000))
        );
        assert!(read_result(&root, "gc_handles/clone_drop/arc", since).is_err());
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(
            read_result(&root, "gc_handles/clone_drop/gort_gc", later).is_err(),
            "a result older than the run is stale"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let text = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t  1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm_kib(text), Some(1234));
        assert_eq!(vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn ids_are_escaped_for_criterion_filters() {
        assert_eq!(regex_escape("seq/boundedN/gort"), "seq/boundedN/gort");
        assert_eq!(regex_escape("a.b(c)"), "a\\.b\\(c\\)");
    }

    #[test]
    fn a_child_reports_its_own_peak_rss() {
        if std::env::var_os("XTASK_RSS_CHILD").is_some() {
            // The child: touch 64 MiB and linger long enough to be sampled.
            let block = vec![1u8; 64 << 20];
            std::hint::black_box(&block);
            std::thread::sleep(std::time::Duration::from_millis(100));
            println!("child done");
            return;
        }
        let run = run_measured(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "measure::tests::a_child_reports_its_own_peak_rss",
                    "--nocapture",
                ])
                .env("XTASK_RSS_CHILD", "1"),
        )
        .unwrap();
        assert!(run.success);
        assert!(run.stdout.contains("child done"), "{}", run.stdout);
        assert!(run.peak_rss_kib >= 64 << 10, "{} KiB", run.peak_rss_kib);
        let failed = run_measured(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert!(!failed.success);
    }
}
