//! Loom models of the collection protocol (the crate docs' "collection protocol"), run by
//! `scripts/loom_gc.sh`.
//!
//! Under `cfg(loom)` the crate builds only its protocol core — `phase.rs` (pins and `advance`),
//! `header.rs` (the counts word, `DIRTY`, the marks byte's mark and stamp) and the atomics shim — with loom's
//! atomics. The models drive that real code from a mutator thread and a collector thread over a
//! two-object heap: `X` is a root (the mutator holds a handle), `Y` lives in `X`'s cell. The
//! cell's lock word and contents are modelled in a few lines that follow `cell.rs` step for step
//! (lock then disown-and-shade under one pin; adopt then unlock under one pin), and the collector
//! follows `collector.rs::run_cycle` (clear, advance to Mark, scan, trace with a `try` read lock,
//! Terminating, drain, Sweep). Each model asserts the safety property: an object the mutator can
//! still reach is never found dead.

use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::header::{Header, Marks, VTable, ALLOC, RESERVED};
use crate::phase::{Phase, Phases};
use crate::sync::Ordering;
use crate::trace::Tracer;

const WRITER: usize = 1 << (usize::BITS - 1);
const CYCLE: u32 = 1;

unsafe fn no_trace(_: *const Header, _: &mut Tracer) {}
unsafe fn no_drop(_: *mut Header) {}
fn name() -> &'static str {
    "model"
}
fn not_plain() -> bool {
    false
}
static VTABLE: VTable = VTable {
    trace: no_trace,
    drop_value: no_drop,
    type_name: name,
    plain_drop: not_plain,
    drop_is_handles_only: not_plain,
    class: None,
};

struct World {
    phases: Phases,
    x: Header,
    y: Header,
    /// X's and Y's marks bytes (their slots' bytes in the span, `header::Marks`).
    xm: AtomicU8,
    ym: AtomicU8,
    /// X's cell: lock word (readers, WRITER) and whether Y's handle is in it.
    cell: AtomicUsize,
    y_in_cell: AtomicBool,
    /// The global gray queue (0 = X, 1 = Y).
    gray: Mutex<Vec<usize>>,
    log: Mutex<Vec<String>>,
}

impl World {
    /// X: one outside handle. Y: one handle, inside X's cell (adopted).
    fn new() -> World {
        let w = World {
            phases: Phases::new(),
            x: Header::new(&VTABLE),
            y: Header::new(&VTABLE),
            xm: AtomicU8::new(ALLOC),
            ym: AtomicU8::new(ALLOC),
            cell: AtomicUsize::new(0),
            y_in_cell: AtomicBool::new(true),
            gray: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        };
        w.y.adopt();
        w
    }

    fn log(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }

    fn marks(&self, i: usize) -> Marks<'_> {
        Marks(if i == 0 { &self.xm } else { &self.ym })
    }

    fn obj(&self, i: usize) -> &Header {
        if i == 0 {
            &self.x
        } else {
            &self.y
        }
    }

    /// `GcCell::borrow_mut` on X's cell (in the heap): lock, then disown (and shade while
    /// marking) under one pin; waits out Terminating.
    fn lock_cell_for_write(&self) {
        loop {
            let pin = self.phases.pin();
            if pin.state.phase == Phase::Terminating {
                drop(pin);
                thread::yield_now();
                continue;
            }
            if self
                .cell
                .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.log(format!("M: locked in {:?}", pin.state.phase));
                if self.y_in_cell.load(Ordering::Relaxed) {
                    if pin.state.phase == Phase::Mark && self.marks(1).try_mark() {
                        self.gray.lock().unwrap().push(1);
                    }
                    self.y.disown();
                }
                return;
            }
            drop(pin);
            thread::yield_now();
        }
    }

    /// Dropping the write guard: adopt, then unlock, under one pin.
    fn release_cell(&self) {
        let pin = self.phases.pin();
        self.log(format!("M: release in {:?}", pin.state.phase));
        if self.y_in_cell.load(Ordering::Relaxed) {
            self.y.adopt();
        }
        self.cell.store(0, Ordering::SeqCst);
        drop(pin);
    }

    /// `GcCell::try_read`: a read lock unless a writer holds the cell.
    fn try_read(&self) -> bool {
        let mut s = self.cell.load(Ordering::Relaxed);
        loop {
            if s & WRITER != 0 {
                return false;
            }
            match self
                .cell
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// The collector's trace of X: its cell under a `try` read lock (skipped if write-locked).
    fn trace_x(&self, gray: &mut Vec<usize>) {
        let r = self.try_read();
        self.log(format!(
            "C: trace X read={r} y_in_cell={}",
            self.y_in_cell.load(Ordering::Relaxed)
        ));
        if r {
            if self.y_in_cell.load(Ordering::Relaxed) && self.marks(1).try_mark() {
                gray.push(1);
            }
            self.cell.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn drain(&self, gray: &mut Vec<usize>) {
        loop {
            while let Some(i) = gray.pop() {
                if i == 0 {
                    self.trace_x(gray);
                }
            }
            let mut g = self.gray.lock().unwrap();
            if g.is_empty() {
                return;
            }
            gray.append(&mut g);
        }
    }

    /// One cycle, as `run_cycle`; returns which objects it found dead.
    fn collect(&self) -> [bool; 2] {
        self.phases.advance(CYCLE, Phase::Clear);
        // The clear pass stamps each object, then clears its DIRTY (`collector.rs`).
        for i in 0..2 {
            if self.marks(i).stamp() {
                self.obj(i).clear_dirty();
            }
        }
        self.phases.advance(CYCLE, Phase::Mark);
        let mut gray = Vec::new();
        for i in 0..2 {
            let h = self.obj(i);
            self.log(format!(
                "C: scan {i} root={} counts={:x}",
                h.is_root(),
                h.counts.load(Ordering::SeqCst)
            ));
            if h.is_root() && self.marks(i).try_mark() {
                gray.push(i);
            }
        }
        self.drain(&mut gray);
        self.phases.advance(CYCLE, Phase::Terminating);
        self.drain(&mut gray);
        self.phases.advance(CYCLE, Phase::Sweep);
        [self.marks(0).is_dead(), self.marks(1).is_dead()]
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// A writer moves Y out of X's cell and back while a cycle runs: the write guard can span the
/// snapshot point, and the release (adopt + unlock) can race the trace of X. Y stays reachable
/// (X is a root, Y ends in X's cell), so it must never be found dead.
#[test]
fn loom_cell_write_races_a_cycle() {
    model(|| {
        let w = Arc::new(World::new());
        let m = {
            let w = w.clone();
            thread::spawn(move || {
                w.lock_cell_for_write();
                w.y_in_cell.store(false, Ordering::Relaxed); // Y's handle now on the stack
                thread::yield_now();
                w.y_in_cell.store(true, Ordering::Relaxed); // and back into the cell
                w.release_cell();
            })
        };
        let dead = w.collect();
        m.join().unwrap();
        assert!(!dead[0], "the root X was found dead");
        assert!(
            !dead[1],
            "Y, reachable from the root X, was found dead: {:?}",
            w.log.lock().unwrap()
        );
    });
}

/// The mutator reads Y's handle out of X (a clone: no barrier) and drops its handle to X (a
/// `DIRTY` drop): Y is then held only by the mutator's stack, and must not be found dead.
#[test]
fn loom_clone_out_then_drop_the_holder() {
    model(|| {
        let w = Arc::new(World::new());
        let m = {
            let w = w.clone();
            thread::spawn(move || {
                // `x.cell.borrow()[0].clone()`: a read lock, then a clone.
                while !w.try_read() {
                    thread::yield_now();
                }
                w.y.inc_handle();
                w.cell.fetch_sub(1, Ordering::SeqCst);
                w.x.dec_handle(); // drop(x)
            })
        };
        let dead = w.collect();
        m.join().unwrap();
        assert!(!dead[1], "Y, held by the mutator, was found dead");
    });
}

/// `Weak::upgrade` racing a cycle: the mutator drops its only handle to Y (Y is garbage from then
/// on) and later upgrades a weak handle to it, as `weak.rs` does it (pinned; shade while marking,
/// wait out termination, refuse a dead object while sweeping). If the upgrade succeeds, the cycle
/// must not find Y dead; if it finds Y dead, the upgrade must fail.
#[test]
fn loom_upgrade_races_a_cycle() {
    model(|| {
        let w = Arc::new(World::new());
        // Y starts outside any cell: one handle, held by the mutator.
        w.y_in_cell.store(false, Ordering::Relaxed);
        w.y.disown();
        let m = {
            let w = w.clone();
            thread::spawn(move || {
                w.y.dec_handle(); // drop(y)
                loop {
                    let pin = w.phases.pin();
                    match pin.state.phase {
                        Phase::Terminating => {
                            drop(pin);
                            thread::yield_now();
                        }
                        Phase::Sweep if w.marks(1).is_dead() => return false,
                        Phase::Mark => {
                            w.y.inc_handle();
                            if w.marks(1).try_mark() {
                                w.gray.lock().unwrap().push(1);
                            }
                            return true;
                        }
                        _ => {
                            w.y.inc_handle();
                            return true;
                        }
                    }
                }
            })
        };
        let dead = w.collect();
        let upgraded = m.join().unwrap();
        assert!(!(upgraded && dead[1]), "an upgraded object was found dead");
    });
}

/// `Gc::new` racing a cycle: the mutator holds Y (one outside handle) and moves it into a new
/// object X, as `handle.rs` does it: publish X (the slot becomes visible to the scan), *then*
/// adopt X's handles. The mutator keeps X. Y must never be found dead. (With the two steps
/// swapped the model fails: a snapshot between them sees Y as internal and X not yet published.)
#[test]
fn loom_new_object_adopts_after_publishing() {
    model(|| {
        let w = Arc::new(World::new());
        // Y: one outside handle (not in X's cell); X: not allocated yet.
        w.y_in_cell.store(false, Ordering::Relaxed);
        w.y.disown();
        w.xm.store(RESERVED, Ordering::Relaxed);
        let x_published = Arc::new(AtomicBool::new(false));
        let m = {
            let (w, x_published) = (w.clone(), x_published.clone());
            thread::spawn(move || {
                // X's value holds Y's handle from now on (written before publication).
                w.y_in_cell.store(true, Ordering::Relaxed);
                w.xm.store(ALLOC, Ordering::Release); // publish
                x_published.store(true, Ordering::Release);
                w.y.adopt(); // adopt the value's handles
            })
        };
        // The collector's cycle, scanning X only once it is published.
        // The clear pass stamps and clears X only if it is published by then; the scan
        // root-tests X if it is published by its own visit (stamped or not).
        w.phases.advance(CYCLE, Phase::Clear);
        if w.marks(0).stamp() {
            w.x.clear_dirty();
        }
        if w.marks(1).stamp() {
            w.y.clear_dirty();
        }
        w.phases.advance(CYCLE, Phase::Mark);
        let mut gray = Vec::new();
        if x_published.load(Ordering::Acquire) && w.x.is_root() && w.marks(0).try_mark() {
            gray.push(0);
        }
        if w.y.is_root() && w.marks(1).try_mark() {
            gray.push(1);
        }
        w.drain(&mut gray);
        w.phases.advance(CYCLE, Phase::Terminating);
        w.drain(&mut gray);
        w.phases.advance(CYCLE, Phase::Sweep);
        let y_dead = w.marks(1).is_dead();
        m.join().unwrap();
        assert!(!y_dead, "Y, held by the new object X, was found dead");
    });
}

/// The assist gate (`phase::AssistGate`): an assist that gets in traces for the open cycle only
/// while the collector has not finished closing the gate. The assist, while inside, checks a flag
/// the collector sets once `close` returns; the collector then "drains" (reads what the assist
/// published). Negative controls: a `close` that does not wait for the assists inside fails, and
/// so does an `enter` that reads the cycle before registering (the two-step check the gate
/// replaced).
#[test]
fn loom_assist_gate_closes_before_termination() {
    loom::model(|| {
        let gate = Arc::new(crate::phase::AssistGate::new());
        let closed = Arc::new(AtomicBool::new(false));
        let shaded = Arc::new(AtomicUsize::new(0));
        let a = {
            let (gate, closed, shaded) = (gate.clone(), closed.clone(), shaded.clone());
            thread::spawn(move || {
                if let Some(cycle) = gate.enter() {
                    assert_eq!(cycle, CYCLE);
                    assert!(
                        !closed.load(Ordering::Relaxed),
                        "an assist traced after the collector closed marking"
                    );
                    shaded.store(1, Ordering::Relaxed); // pushed to the gray queue
                    gate.leave();
                }
            })
        };
        gate.open(CYCLE);
        gate.close();
        closed.store(true, Ordering::Relaxed);
        // Termination's drain: whatever an assist shaded is visible now, or it never got in.
        let seen = shaded.load(Ordering::Relaxed);
        a.join().unwrap();
        assert_eq!(
            seen,
            shaded.load(Ordering::Relaxed),
            "an assist shaded after termination drained"
        );
    });
}

/// Prompt reclamation (`reclaim.rs`) against the start of a cycle: a thread that drops an
/// object's last handle frees it only under `Phases::pin_idle`, and the collector's clear pass
/// reads every allocated object after `advance` to `Clear`. The free (a write to the object's
/// memory, a loom cell) and the clear pass's read must never overlap: loom reports a race if they
/// are not ordered, and the clear pass must see either the object untouched or freed for good.
#[test]
fn loom_prompt_reclamation_never_overlaps_the_clear_pass() {
    loom::model(|| {
        let phases = Arc::new(Phases::new());
        let slot = Arc::new(loom::cell::UnsafeCell::new(0u32)); // 0: the object, 1: freed
        let freed = Arc::new(AtomicBool::new(false));
        let dropper = {
            let (phases, slot, freed) = (phases.clone(), slot.clone(), freed.clone());
            thread::spawn(move || {
                if let Some(pin) = phases.pin_idle() {
                    assert_eq!(pin.state.phase, Phase::Idle);
                    // SAFETY: loom checks this access against the clear pass's read (the property).
                    slot.with_mut(|p| unsafe { *p = 1 }); // drop the value, free the slot
                    freed.store(true, Ordering::Relaxed);
                }
            })
        };
        phases.advance(CYCLE, Phase::Clear);
        // The clear pass: the slot is read only once no idle pin is held.
        // SAFETY: as above.
        let seen = slot.with(|p| unsafe { *p });
        assert_eq!(
            seen == 1,
            freed.load(Ordering::Relaxed),
            "a free raced the clear pass"
        );
        dropper.join().unwrap();
    });
}

/// Prompt reclamation against a whole cycle (`reclaim.rs`, `handle.rs`'s `Drop`): the dropper
/// reads the phase, drops X's last handle, and only then pins the idle state, so a whole cycle can
/// run in between, find X dead and free it. The dropper must then leave X alone: it reclaims X
/// only if `State::may_reclaim_dropped_in` says no clear pass began since (or, when it dropped
/// X during a cycle and kept it, only in the idle time right after that cycle). X is freed at
/// most once, by one of them, and the two frees never race (loom checks the accesses to X's
/// value). Negative control: reclaiming whenever the idle pin is taken fails this model.
#[test]
fn loom_prompt_reclamation_never_frees_what_a_cycle_freed() {
    model(|| {
        let phases = Arc::new(Phases::new());
        let x = Arc::new(Header::new(&VTABLE)); // one handle, the dropper's
        let xm = Arc::new(AtomicU8::new(ALLOC));
        // X's value: 0 live, 1 freed by the sweep, 2 reclaimed by the dropper.
        let value = Arc::new(loom::cell::UnsafeCell::new(0u32));
        let dropper = {
            let (phases, x, xm, value) = (phases.clone(), x.clone(), xm.clone(), value.clone());
            thread::spawn(move || {
                let before = phases.peek();
                let sweeps_it = before.phase == Phase::Sweep && Marks(&xm).is_swept();
                if !x.dec_handle() || sweeps_it {
                    return;
                }
                let reclaim = |pin: crate::phase::Pin<'_>| {
                    // SAFETY: loom checks this access against the sweep's (the property).
                    value.with_mut(|v| unsafe {
                        assert_eq!(*v, 0, "X freed twice");
                        *v = 2;
                    });
                    // Into the thread's magazine (`heap::recycle`), still under the pin.
                    xm.store(crate::header::RESERVED, Ordering::Release);
                    drop(pin);
                };
                if let Some(pin) = phases.pin_idle() {
                    if pin.state.may_reclaim_dropped_in(before) {
                        reclaim(pin);
                    }
                    return;
                }
                // Kept for the idle time after `before`'s cycle (dropped after its snapshot).
                if matches!(
                    before.phase,
                    Phase::Mark | Phase::Terminating | Phase::Sweep
                ) {
                    thread::yield_now();
                    if let Some(pin) = phases.pin_idle() {
                        if pin.state.cycle == before.cycle {
                            reclaim(pin);
                        }
                    }
                }
            })
        };
        // One cycle, as `run_cycle` (X alone: a root if it has a handle or is DIRTY).
        phases.advance(CYCLE, Phase::Clear);
        if Marks(&xm).stamp() {
            x.clear_dirty();
        }
        phases.advance(CYCLE, Phase::Mark);
        if x.is_root() {
            Marks(&xm).try_mark();
        }
        phases.advance(CYCLE, Phase::Terminating);
        phases.advance(CYCLE, Phase::Sweep);
        if Marks(&xm).is_dead() {
            // SAFETY: as above.
            value.with_mut(|v| unsafe {
                assert_eq!(*v, 0, "the sweep freed a reclaimed object");
                *v = 1;
            });
            xm.store(crate::header::FREE, Ordering::Release);
        }
        phases.advance(CYCLE, Phase::Idle);
        dropper.join().unwrap();
    });
}
