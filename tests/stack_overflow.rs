//! A goroutine that overflows its stack is reported as `goroutine N stack overflow` and the process
//! aborts: never silent corruption. The overflow happens in a child process (this same test binary,
//! re-run with an environment variable), and the parent checks how it died.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD_ENV: &str = "GORT_TEST_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = std::hint::black_box([depth as u8; 512]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(buf[7])
}

#[test]
fn stack_overflow_is_reported_and_aborts() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let rt = gort::runtime::Builder::new()
            .max_procs(1)
            .stack_size(64 * 1024)
            .build();
        let h = rt.spawn(|| {
            let id = gort::runtime::current_id().unwrap();
            eprintln!("child goroutine {id} starts recursing");
            recurse(0)
        });
        let _ = h.join();
        unreachable!("the overflow must abort the process");
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stack_overflow_is_reported_and_aborts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "child status {:?}, stderr:\n{stderr}",
        out.status
    );
    let id = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("child goroutine ")
                .and_then(|r| r.split(' ').next())
        })
        .expect("child printed its goroutine id");
    assert!(
        stderr.contains(&format!("goroutine {id} stack overflow")),
        "stderr:\n{stderr}"
    );
}
