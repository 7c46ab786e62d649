//! Evidence that the server learns nothing about the client's input: everything the server
//! receives during secure inferences of two very different inputs has the same distribution
//! (a two-sample chi-square test cannot tell them apart), while the same test tells them apart
//! at once when the masks are deliberately removed, so it is a test that can fail.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use pillar_infer::FixedConfig;
use pillar_infer::mirror;
use pillar_infer::{ClientConnection, Plan, ServerConnection};
use pillar_mpc::channel::{Channel, ChannelError, Stats, memory_pair};
use pillar_mpc::dealer::{Dealer, DealerError, Need, TrustedDealer};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::{FixedPoint, Party, RingTensor, Session};
use pillar_nn::testing::{conv, fold, linear, pillar_poly, tensor};
use pillar_nn::{Graph, Op, Pool};

/// A channel that keeps a copy of everything it receives.
struct Recorder<C> {
    inner: C,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl<C: Channel> Channel for Recorder<C> {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        self.inner.exchange(send, recv)?;
        self.seen.lock().unwrap().extend_from_slice(recv);
        Ok(())
    }

    fn send_message(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        self.inner.send_message(bytes)
    }

    fn recv_message(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, ChannelError> {
        self.inner.recv_message(what, limit)
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

/// A broken dealer whose every correlation is zero: still correct (0 = 0 * 0), but every
/// opening `x - a` is then `x` itself.
struct ZeroDealer(Party);

impl Dealer for ZeroDealer {
    fn party(&self) -> Party {
        self.0
    }

    fn generate(&mut self, need: &Need) -> Result<Vec<u64>, DealerError> {
        Ok(vec![0; need.words()])
    }
}

fn network() -> Graph {
    let mut g = Graph::new(vec![1, 8, 8]);
    g.chain("conv1", conv(3, 1, 3, 1, 1, 3));
    g.chain("act1", pillar_poly());
    g.chain(
        "pool",
        Op::AvgPool(Pool {
            kernel: 2,
            stride: 2,
        }),
    );
    g.chain("conv2", conv(4, 3, 3, 1, 1, 5));
    g.chain("act2", pillar_poly());
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(3, 64, 7, true));
    g
}

/// Everything the server receives in `runs` connections (setup and one inference each) while
/// the client classifies `x`, with real dealers or, if `masked` is false, zero ones.
fn server_view(plan: &Plan, x: &RingTensor, runs: u64, masked: bool, seed: u64) -> Vec<u64> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fp = FixedPoint::new(16).unwrap();
    for run in 0..runs {
        let (c0, c1) = memory_pair(pillar_mpc::channel::DEFAULT_TIMEOUT);
        let recorder = Recorder {
            inner: c0,
            seen: Arc::clone(&seen),
        };
        let (d0, d1): (Box<dyn Dealer>, Box<dyn Dealer>) = if masked {
            let (a, b) = TrustedDealer::pair_from_seed(seed * 1000 + run);
            (Box::new(a), Box::new(b))
        } else {
            (
                Box::new(ZeroDealer(Party::Server)),
                Box::new(ZeroDealer(Party::Client)),
            )
        };
        let mut s0 = Session::new(Party::Server, fp, recorder, d0)
            .unwrap()
            .with_mask_seed(seed + run);
        let mut s1 = Session::new(Party::Client, fp, c1, d1)
            .unwrap()
            .with_mask_seed(seed + run);
        let arch = &plan.architecture;
        std::thread::scope(|scope| {
            let client = scope.spawn(|| {
                let conn = ClientConnection::open(&mut s1, arch).unwrap();
                let batch = conn.prepare(&mut s1, 1).unwrap();
                batch.run(&mut s1, x).unwrap().0
            });
            let conn = ServerConnection::open(&mut s0, plan).unwrap();
            conn.prepare(&mut s0, 1).unwrap().run(&mut s0).unwrap();
            client.join().unwrap();
        });
    }
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

/// Two-sample chi-square statistic over the histograms of the words' top bytes, and its
/// degrees of freedom.
fn chi_square(a: &[u64], b: &[u64]) -> (f64, usize) {
    let histogram = |v: &[u64]| {
        let mut h = [0f64; 256];
        for w in v {
            h[(w >> 56) as usize] += 1.0;
        }
        h
    };
    let (ha, hb) = (histogram(a), histogram(b));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ka, kb) = ((nb / na).sqrt(), (na / nb).sqrt());
    let mut stat = 0.0;
    let mut bins = 0;
    for (x, y) in ha.iter().zip(&hb) {
        if x + y > 0.0 {
            stat += (x * ka - y * kb).powi(2) / (x + y);
            bins += 1;
        }
    }
    (stat, bins.max(1) - 1)
}

#[test]
fn the_server_cannot_tell_two_inputs_apart_unless_the_masks_are_removed() {
    let plan = Plan::compile(
        &fold(&network()),
        FixedConfig {
            frac_bits: 16,
            activation: ActivationProtocol::HoneyBadger,
        },
    )
    .unwrap();
    let fp = FixedPoint::new(16).unwrap();
    // A blank image and a noisy one of large values.
    let blank = mirror::encode(fp, &tensor(&[1, 1, 8, 8], 1, 0.0)).unwrap();
    let noisy = mirror::encode(fp, &tensor(&[1, 1, 8, 8], 2, 3.0)).unwrap();
    let runs = 30;
    let a = server_view(&plan, &blank, runs, true, 11);
    let b = server_view(&plan, &noisy, runs, true, 12);
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 10_000, "{} words seen", a.len());
    let (masked, df) = chi_square(&a, &b);
    // The 0.1% critical value of chi-square with 255 degrees of freedom is 330.5.
    assert_eq!(df, 255);
    assert!(masked < 330.5, "masked views differ: chi2 = {masked:.1}");

    let a = server_view(&plan, &blank, runs, false, 11);
    let b = server_view(&plan, &noisy, runs, false, 12);
    let (unmasked, _) = chi_square(&a, &b);
    assert!(
        unmasked > 10.0 * 330.5,
        "without masks the test must see the input: chi2 = {unmasked:.1}"
    );
    eprintln!(
        "chi2 over {} words: {masked:.1} masked, {unmasked:.1} unmasked",
        a.len()
    );
}
