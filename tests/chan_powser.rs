//! The behaviour of Go's `test/chan/powser1.go` and `powser2.go`: power series computed by networks
//! of goroutines connected by *demand channels* (a consumer sends a request, the producer answers with
//! the next coefficient). Series are infinite generators; splitting a series for two consumers spawns
//! a goroutine per coefficient; multiplication and exponentiation recurse through feedback loops.
//!
//! powser1 sends coefficients as plain values, powser2 as interface values; here the same network is
//! generic over [`Item`], run once with [`Rat`] values and once with trait objects (`Arc<dyn Any>`,
//! downcast on receipt). The checks are powser's (`Add` and `Sub` get a real count: Go's check
//! zero coefficients), plus `Recip` and `Binom`. The generator goroutines stay parked when a test
//! is done, as they do in Go.

use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use gort::chan::{bounded, Receiver, Sender};
use gort::select;

/// A rational number, kept normalized (`den > 0`, or `den == 0` for the end mark).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Rat {
    num: i64,
    den: i64,
}

fn gcd(u: i64, v: i64) -> i64 {
    if u < 0 {
        return gcd(-u, v);
    }
    if u == 0 {
        return v;
    }
    gcd(v % u, u)
}

fn i2tor(u: i64, v: i64) -> Rat {
    let g = gcd(u, v);
    if v > 0 {
        Rat {
            num: u / g,
            den: v / g,
        }
    } else {
        Rat {
            num: -u / g,
            den: -v / g,
        }
    }
}

fn itor(u: i64) -> Rat {
    i2tor(u, 1)
}

const ZERO: Rat = Rat { num: 0, den: 1 };
const ONE: Rat = Rat { num: 1, den: 1 };
/// The end mark of a finite series (Go's `finis`, `i2tor(1, 0)`).
const FINIS: Rat = Rat { num: -1, den: 0 };

fn end(u: Rat) -> bool {
    u.den == 0
}

fn add(u: Rat, v: Rat) -> Rat {
    let g = gcd(u.den, v.den);
    i2tor(
        u.num * (v.den / g) + v.num * (u.den / g),
        u.den * (v.den / g),
    )
}

fn mul(u: Rat, v: Rat) -> Rat {
    let g1 = gcd(u.num, v.den);
    let g2 = gcd(u.den, v.num);
    Rat {
        num: (u.num / g1) * (v.num / g2),
        den: (u.den / g2) * (v.den / g1),
    }
}

fn neg(u: Rat) -> Rat {
    i2tor(-u.num, u.den)
}

fn sub(u: Rat, v: Rat) -> Rat {
    add(u, neg(v))
}

fn inv(u: Rat) -> Rat {
    assert!(u.num != 0, "zero divide in inv");
    i2tor(u.den, u.num)
}

/// How a coefficient travels through the channels.
trait Item: Clone + Send + 'static {
    fn wrap(r: Rat) -> Self;
    fn rat(&self) -> Rat;
}

/// powser1: channels of values.
impl Item for Rat {
    fn wrap(r: Rat) -> Self {
        r
    }
    fn rat(&self) -> Rat {
        *self
    }
}

/// powser2: channels of interface values.
#[derive(Clone)]
struct Dyn(Arc<dyn Any + Send + Sync>);

impl Item for Dyn {
    fn wrap(r: Rat) -> Self {
        Dyn(Arc::new(r))
    }
    fn rat(&self) -> Rat {
        *self
            .0
            .downcast_ref::<Rat>()
            .expect("an item that is not a rat")
    }
}

static SEQNO: AtomicI64 = AtomicI64::new(0);

fn seqno() -> i64 {
    SEQNO.fetch_add(1, Ordering::Relaxed) + 1
}

/// A demand channel: requests one way, coefficients the other. Both ends of both channels are here,
/// as in Go, where producer and consumer share the `dch`.
struct Dch<I> {
    req_tx: Sender<i64>,
    req_rx: Receiver<i64>,
    dat_tx: Sender<I>,
    dat_rx: Receiver<I>,
}

impl<I> Clone for Dch<I> {
    fn clone(&self) -> Self {
        Dch {
            req_tx: self.req_tx.clone(),
            req_rx: self.req_rx.clone(),
            dat_tx: self.dat_tx.clone(),
            dat_rx: self.dat_rx.clone(),
        }
    }
}

fn mkdch<I>() -> Dch<I> {
    let (req_tx, req_rx) = bounded(0);
    let (dat_tx, dat_rx) = bounded(0);
    Dch {
        req_tx,
        req_rx,
        dat_tx,
        dat_rx,
    }
}

fn mkdch2<I>() -> [Dch<I>; 2] {
    [mkdch(), mkdch()]
}

/// Answers one request on `out` with `dat`.
fn put<I: Item>(dat: Rat, out: &Dch<I>) {
    out.req_rx.recv().unwrap();
    out.dat_tx.send(I::wrap(dat)).unwrap();
}

/// Requests and receives one coefficient from `inp`.
fn get<I: Item>(inp: &Dch<I>) -> Rat {
    inp.req_tx.send(seqno()).unwrap();
    inp.dat_rx.recv().unwrap().rat()
}

/// One coefficient from each of two series, requested and received in whatever order the producers
/// are ready: a select over two sends and two receives, each case disabled once done.
fn get2<I: Item>(in0: &Dch<I>, in1: &Dch<I>) -> [Rat; 2] {
    let mut req = [Some(&in0.req_tx), Some(&in1.req_tx)];
    let mut dat: [Option<&Receiver<I>>; 2] = [None, None];
    let mut out = [None, None];
    for _ in 0..4 {
        select! {
            send(req[0], seqno()) -> r => { r.unwrap(); dat[0] = Some(&in0.dat_rx); req[0] = None; }
            send(req[1], seqno()) -> r => { r.unwrap(); dat[1] = Some(&in1.dat_rx); req[1] = None; }
            recv(dat[0]) -> it => { out[0] = Some(it.unwrap().rat()); dat[0] = None; }
            recv(dat[1]) -> it => { out[1] = Some(it.unwrap().rat()); dat[1] = None; }
        }
    }
    out.map(|r| r.expect("get2 missed a coefficient"))
}

/// Replicates `inp` onto two outputs read at different rates: each generation serves one
/// coefficient, spawning the next generation, and hands over to it once both outputs have it.
fn dosplit<I: Item>(inp: Dch<I>, mut out: [Dch<I>; 2], wait: Receiver<i64>) {
    let mut both = false; // do not serve both outputs yet
    select! {
        recv(out[0].req_rx) -> _r => {}
        recv(wait) -> _w => {
            both = true;
            select! {
                recv(out[0].req_rx) -> _r => {}
                recv(out[1].req_rx) -> _r => out.swap(0, 1),
            }
        }
    }
    inp.req_tx.send(seqno()).unwrap();
    let (release_tx, release_rx) = bounded(0);
    let (next_in, next_out) = (inp.clone(), out.clone());
    gort::go!(dosplit(next_in, next_out, release_rx));
    let dat = inp.dat_rx.recv().unwrap();
    out[0].dat_tx.send(dat.clone()).unwrap();
    if !both {
        wait.recv().unwrap();
    }
    out[1].req_rx.recv().unwrap();
    out[1].dat_tx.send(dat).unwrap();
    release_tx.send(0).unwrap();
}

fn split_into<I: Item>(inp: Dch<I>, out: [Dch<I>; 2]) {
    let (release_tx, release_rx) = bounded(0);
    gort::go!(dosplit(inp, out, release_rx));
    release_tx.send(0).unwrap();
}

/// Go's `Split`.
fn split<I: Item>(u: Dch<I>) -> [Dch<I>; 2] {
    let uu = mkdch2();
    let out = uu.clone();
    gort::go!(split_into(u, out));
    uu
}

/// Forwards every coefficient of `inp` to `out`, on demand.
fn copy<I: Item>(inp: &Dch<I>, out: &Dch<I>) {
    loop {
        out.req_rx.recv().unwrap();
        out.dat_tx.send(I::wrap(get(inp))).unwrap();
    }
}

/// `c, c, c, ...`
fn rep<I: Item>(c: Rat) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || loop {
        put(c, &out);
    });
    z
}

/// `U + V`
fn add_ps<I: Item>(u: Dch<I>, v: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || loop {
        out.req_rx.recv().unwrap();
        let uv = get2(&u, &v);
        match (end(uv[0]), end(uv[1])) {
            (false, false) => out.dat_tx.send(I::wrap(add(uv[0], uv[1]))).unwrap(),
            (true, false) => {
                out.dat_tx.send(I::wrap(uv[1])).unwrap();
                copy(&v, &out);
            }
            (false, true) => {
                out.dat_tx.send(I::wrap(uv[0])).unwrap();
                copy(&u, &out);
            }
            (true, true) => out.dat_tx.send(I::wrap(FINIS)).unwrap(),
        }
    });
    z
}

/// `c * U`
fn cmul<I: Item>(c: Rat, u: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        loop {
            out.req_rx.recv().unwrap();
            let x = get(&u);
            if end(x) {
                break;
            }
            out.dat_tx.send(I::wrap(mul(c, x))).unwrap();
        }
        out.dat_tx.send(I::wrap(FINIS)).unwrap();
    });
    z
}

/// `U - V`
fn sub_ps<I: Item>(u: Dch<I>, v: Dch<I>) -> Dch<I> {
    add_ps(u, cmul(neg(ONE), v))
}

/// `c + x*U`
fn shift<I: Item>(c: Rat, u: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        put(c, &out);
        copy(&u, &out);
    });
    z
}

/// `U * V`: with `U = u + x*UU` and `V = v + x*VV`, `UV = u*v + x*(u*VV + v*UU) + x*x*UU*VV`.
fn mul_ps<I: Item>(u: Dch<I>, v: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        out.req_rx.recv().unwrap();
        let uv = get2(&u, &v);
        if end(uv[0]) || end(uv[1]) {
            out.dat_tx.send(I::wrap(FINIS)).unwrap();
            return;
        }
        out.dat_tx.send(I::wrap(mul(uv[0], uv[1]))).unwrap();
        let [uu0, uu1] = split(u);
        let [vv0, vv1] = split(v);
        let w = add_ps(cmul(uv[0], vv0), cmul(uv[1], uu0));
        out.req_rx.recv().unwrap();
        out.dat_tx.send(I::wrap(get(&w))).unwrap();
        copy(&add_ps(w, mul_ps(uu1, vv1)), &out);
    });
    z
}

/// `dU/dx`
fn diff<I: Item>(u: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        out.req_rx.recv().unwrap();
        if !end(get(&u)) {
            let mut i = 1;
            loop {
                let x = get(&u);
                if end(x) {
                    break;
                }
                out.dat_tx.send(I::wrap(mul(itor(i), x))).unwrap();
                out.req_rx.recv().unwrap();
                i += 1;
            }
        }
        out.dat_tx.send(I::wrap(FINIS)).unwrap();
    });
    z
}

/// `c + integral of U`
fn integ<I: Item>(c: Rat, u: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        put(c, &out);
        let mut i = 1;
        loop {
            out.req_rx.recv().unwrap();
            let x = get(&u);
            if end(x) {
                out.dat_tx.send(I::wrap(FINIS)).unwrap();
                break;
            }
            out.dat_tx.send(I::wrap(mul(i2tor(1, i), x))).unwrap();
            i += 1;
        }
    });
    z
}

/// `(1+x)^c`
fn binom<I: Item>(c: Rat) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        let (mut c, mut n, mut t) = (c, 1, ONE);
        while c.num != 0 {
            put(t, &out);
            t = mul(mul(t, c), i2tor(1, n));
            c = sub(c, ONE);
            n += 1;
        }
        put(FINIS, &out);
    });
    z
}

/// `1/U`: with `U = u + x*UU` and `Z = z + x*ZZ`, `z = 1/u` and `ZZ = -UU*(z + x*ZZ)/u`, a
/// feedback loop through a split.
fn recip<I: Item>(u: Dch<I>) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        let zz = mkdch2();
        out.req_rx.recv().unwrap();
        let z0 = inv(get(&u));
        out.dat_tx.send(I::wrap(z0)).unwrap();
        split_into(
            mul_ps(cmul(neg(z0), u), shift(z0, zz[0].clone())),
            zz.clone(),
        );
        copy(&zz[1], &out);
    });
    z
}

/// `exp(U)` for `U` with a zero constant term: `Z = exp(U)` satisfies `DZ = Z*DU`, integrated, with
/// `Z` fed back into itself through a split.
fn exp<I: Item>(u: Dch<I>) -> Dch<I> {
    let zz = mkdch2();
    split_into(integ(ONE, mul_ps(zz[0].clone(), diff(u))), zz.clone());
    zz[1].clone()
}

/// `U(c * x^n)`
fn mon_subst<I: Item>(u: Dch<I>, c0: Rat, n: usize) -> Dch<I> {
    let z = mkdch();
    let out = z.clone();
    gort::go!(move || {
        let mut c = ONE;
        loop {
            out.req_rx.recv().unwrap();
            let x = get(&u);
            out.dat_tx.send(I::wrap(mul(x, c))).unwrap();
            c = mul(c, c0);
            if end(x) {
                out.dat_tx.send(I::wrap(FINIS)).unwrap();
                break;
            }
            for _ in 1..n {
                out.req_rx.recv().unwrap();
                out.dat_tx.send(I::wrap(ZERO)).unwrap();
            }
        }
    });
    z
}

fn check<I: Item>(u: &Dch<I>, c: Rat, count: usize, what: &str) {
    for i in 0..count {
        let r = get(u);
        assert_eq!(r, c, "{what}: coefficient {i}");
    }
}

fn checka<I: Item>(u: &Dch<I>, a: &[Rat], what: &str) {
    for (i, &want) in a.iter().enumerate() {
        assert_eq!(get(u), want, "{what}: coefficient {i}");
    }
}

const N: i64 = 10;

fn powser<I: Item>() {
    let ones = || rep::<I>(ONE);
    let twos = || rep::<I>(itor(2));
    check(&ones(), ONE, 5, "Ones");
    check(&add_ps(ones(), ones()), itor(2), 5, "Add Ones Ones");
    check(&add_ps(ones(), twos()), itor(3), 5, "Add Ones Twos");
    let a: Vec<Rat> = (1..=N).map(itor).collect();
    checka(&diff(ones()), &a, "Diff"); // 1 2 3 4 5
    let a: Vec<Rat> = (0..N)
        .map(|i| if i == 0 { ZERO } else { i2tor(1, i) })
        .collect();
    checka(&integ(ZERO, ones()), &a, "Integ"); // 0 1 1/2 1/3 1/4
    check(&cmul(neg(ONE), twos()), itor(-2), 10, "CMul"); // -2 -2 -2
    check(&sub_ps(ones(), twos()), itor(-1), 5, "Sub Ones Twos"); // -1 -1 -1
    let a: Vec<Rat> = (1..=N).map(itor).collect();
    checka(&mul_ps(ones(), ones()), &a, "Mul"); // 1 2 3 4 5
    let a = [
        itor(1),
        itor(1),
        i2tor(3, 2),
        i2tor(13, 6),
        i2tor(73, 24),
        i2tor(167, 40),
        i2tor(4051, 720),
        i2tor(37633, 5040),
        i2tor(43817, 4480),
        i2tor(4_596_553, 362_880),
    ];
    checka(&exp(ones()), &a, "Exp"); // 1 1 3/2 13/6 73/24
    let mut c = 1;
    let a: Vec<Rat> = (0..N)
        .map(|i| {
            if i % 2 == 0 {
                ZERO
            } else {
                let r = i2tor(c, i);
                c = -c;
                r
            }
        })
        .collect();
    checka(&integ(ZERO, mon_subst(ones(), neg(ONE), 2)), &a, "ATan"); // 0 1 0 -1/3 0 1/5
                                                                      // Beyond Go's checks: 1/(1/(1-x)) = 1 - x, and (1+x)^(1/2) = 1 + x/2 - x^2/8 + x^3/16 - ...
    checka(&recip(ones()), &[ONE, neg(ONE), ZERO, ZERO, ZERO], "Recip");
    let a = [ONE, i2tor(1, 2), i2tor(-1, 8), i2tor(1, 16), i2tor(-5, 128)];
    checka(&binom::<I>(i2tor(1, 2)), &a, "Binom");
}

/// powser1.go: coefficients as values.
#[gort::test]
fn powser1() {
    powser::<Rat>();
}

/// powser2.go: coefficients as interface values.
#[gort::test]
fn powser2() {
    powser::<Dyn>();
}
