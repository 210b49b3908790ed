//! Go's process-level diagnostics, checked from child processes (they end the process): the
//! deadlock report, the goroutine dump on SIGQUIT, and `GORT_DEBUG=schedtrace`.
//!
//! This file has its own `main` (`harness = false`): the deadlock check counts the threads of the
//! process, and libtest's own threads would (rightly) make it stand down. The parent re-runs this
//! binary with a scenario name; each scenario is a `#[gort::main]`-style program.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use gort::sync::WaitGroup;

fn child(scenario: &str) {
    let code = match scenario {
        // The main goroutine waits for a WaitGroup nobody will ever release.
        "deadlock" => gort::__private::run_main(|| {
            let wg = WaitGroup::new();
            wg.add(1);
            let w = wg.clone();
            let _helper = gort::go!(move || w.wait());
            wg.wait();
        }),
        // The same, with the main goroutine locked to its thread: that thread, asleep waiting for
        // it, counts as idle.
        "deadlock-locked" => gort::__private::run_main(|| {
            let _lock = gort::runtime::lock_os_thread();
            let wg = WaitGroup::new();
            wg.add(1);
            wg.wait();
        }),
        // A plain thread releases the main goroutine later: never a deadlock report.
        "plain-thread-wakes-main" => gort::__private::run_main(|| {
            let wg = WaitGroup::new();
            wg.add(1);
            let w = wg.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                w.done();
            });
            wg.wait();
        }),
        // Only a timer can wake the main goroutine: not a deadlock either.
        "timer-wakes-main" => gort::__private::run_main(|| {
            gort::time::sleep(Duration::from_millis(300));
        }),
        // Waits until the parent sends SIGQUIT.
        "sigquit" => gort::__private::run_main(|| {
            let sleeper = gort::go!(|| gort::time::sleep(Duration::from_secs(60)));
            eprintln!("ready sleeper={}", sleeper.id());
            gort::time::sleep(Duration::from_secs(60));
        }),
        // A goroutine parked in a named function; main prints the dump.
        "waitstacks" => gort::__private::run_main(|| {
            let (tx, rx) = gort::chan::bounded::<u32>(0);
            let waiter = gort::go!(move || parked_in_a_named_function(rx));
            gort::time::sleep(Duration::from_millis(50));
            eprintln!("{}", gort::runtime::dump());
            tx.send(1).unwrap();
            waiter.join().unwrap();
        }),
        "schedtrace" => gort::__private::run_main(|| {
            let until = std::time::Instant::now() + Duration::from_millis(200);
            while std::time::Instant::now() < until {
                let hs: Vec<_> = (0..100).map(|i| gort::spawn(move || i)).collect();
                hs.into_iter().for_each(|h| drop(h.join()));
                gort::time::sleep(Duration::from_millis(1));
            }
        }),
        // More goroutines stuck in blocking calls than the thread limit allows.
        "thread-limit" => {
            let rt = gort::runtime::Builder::new()
                .max_procs(1)
                .max_threads(4)
                .build();
            let hs: Vec<_> = (0..16)
                .map(|_| rt.spawn(|| gort::blocking(|| std::thread::sleep(Duration::from_secs(5)))))
                .collect();
            hs.into_iter().for_each(|h| drop(h.join()));
            std::process::ExitCode::SUCCESS
        }
        other => panic!("unknown scenario {other}"),
    };
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

#[inline(never)]
fn parked_in_a_named_function(rx: gort::chan::Receiver<u32>) {
    assert_eq!(rx.recv(), Ok(1));
}

fn run(scenario: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg(scenario)
        .env_remove("GORT_DEBUG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn check(name: &str, ok: bool, detail: impl FnOnce() -> String, failures: &mut Vec<String>) {
    if ok {
        println!("test {name} ... ok");
    } else {
        println!("test {name} ... FAILED");
        failures.push(format!("{name}: {}", detail()));
    }
}

fn main() {
    if let Some(scenario) = std::env::args().nth(1).filter(|a| !a.starts_with('-')) {
        child(&scenario);
        return;
    }
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut count = |ok: bool| passed += usize::from(ok);

    for (scenario, name) in [
        ("deadlock", "deadlock_is_reported_with_a_dump_and_status_2"),
        (
            "deadlock-locked",
            "deadlock_of_a_goroutine_locked_to_its_thread_is_reported",
        ),
    ] {
        let out = run(scenario, &[]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let ok = out.status.code() == Some(2)
            && err.contains("fatal error: all goroutines are asleep - deadlock!")
            && err.contains("goroutine 1 [sync.WaitGroup.Wait")
            && err.contains("created at tests/diagnostics.rs:");
        count(ok);
        check(
            name,
            ok,
            || format!("{:?}\n{err}", out.status),
            &mut failures,
        );
    }

    for scenario in ["plain-thread-wakes-main", "timer-wakes-main"] {
        let out = run(scenario, &[]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let ok = out.status.code() == Some(0) && !err.contains("deadlock");
        count(ok);
        check(
            &format!("no_false_deadlock_alarm_{scenario}"),
            ok,
            || format!("{:?}\n{err}", out.status),
            &mut failures,
        );
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("sigquit")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut first = [0u8; 64];
    let n = std::io::Read::read(&mut stderr, &mut first).unwrap_or(0); // wait for "ready"
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let status = child.wait().unwrap();
    let err = format!("{}{rest}", String::from_utf8_lossy(&first[..n]));
    let ok = status.code() == Some(2)
        && status.signal().is_none()
        && err.contains("SIGQUIT: quit")
        && err.contains("goroutine 1 [sleep, ")
        && err.matches("[sleep, ").count() >= 2;
    count(ok);
    check(
        "sigquit_prints_a_goroutine_dump",
        ok,
        || format!("{status:?}\n{err}"),
        &mut failures,
    );

    let out = run("thread-limit", &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let ok = out.status.signal() == Some(libc::SIGABRT)
        && err.contains("gort: program exceeds the 4-thread limit");
    count(ok);
    check(
        "the_thread_limit_ends_the_program_with_a_clear_error",
        ok,
        || format!("{:?}\n{err}", out.status),
        &mut failures,
    );

    let out = run("waitstacks", &[("GORT_DEBUG", "waitstacks=1")]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let ok = out.status.success()
        && err.contains("[chan receive")
        && err.contains("parked_in_a_named_function")
        && err.contains("diagnostics.rs:")
        && err.contains("\n        at ")
        && !err.contains("record_wait_stack")
        && !err.contains("run_entry");
    count(ok);
    check(
        "waitstacks_puts_the_park_stack_in_dumps",
        ok,
        || format!("{:?}\n{err}", out.status),
        &mut failures,
    );

    let out = run("schedtrace", &[("GORT_DEBUG", "schedtrace=20")]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = err
        .lines()
        .filter(|l| l.starts_with("SCHED ") && l.contains("gomaxprocs="))
        .count();
    let ok = out.status.success() && lines >= 3 && err.contains("runqueue=");
    count(ok);
    check(
        "schedtrace_prints_scheduler_lines",
        ok,
        || format!("{:?} {lines} lines\n{err}", out.status),
        &mut failures,
    );

    for f in &failures {
        eprintln!("{f}\n");
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len()
    );
    if !failures.is_empty() {
        std::process::exit(101);
    }
}
