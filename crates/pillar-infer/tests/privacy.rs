//! Evidence that neither party learns the other's secrets from what it sees.
//!
//! Two tests. The older one: everything the server receives during secure inferences of two
//! very different inputs has the same distribution (a two-sample chi-square test cannot tell
//! them apart), while the same test tells them apart at once when the masks are removed.
//! The stronger one records every party's *opened* values (its own message plus the peer's,
//! `x - a`, `y - r`, ...) and received words over several batches on several connections, and
//! checks that they look uniform, that none repeats, and that the same opening in two batches
//! differs by a uniform amount. It passes with the real dealer and flags each of the
//! deliberately flawed ones of `pillar_mpc::testing` (HoneyBadger's `r = 0`, ESPN's client mask
//! `b = 0`, triples reused across batches, and the same dealer seeds on every connection),
//! every one of which keeps the results right and passes the older test), and weight masks
//! that are all zero, which hand the client the weights in the setup.
//!
//! The setup sends the same `F = W - B` on every connection to a model, by design (one mask
//! set per model, [`pillar_mpc::dealer::WeightMasks`] says why that is safe): the detector
//! counts it once, from the first connection.
//!
//! Both run under both linear-layer protocols. Under the preprocessed one most rounds are
//! one-way (the client's masked inputs and parts of openings, the server's opened values):
//! the words such a round moves are what it opens, to the party that receives them.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use pillar_infer::FixedConfig;
use pillar_infer::mirror;
use pillar_infer::{ClientConnection, Plan, ServerConnection};
use pillar_mpc::channel::{Channel, ChannelError, Stats, memory_pair};
use pillar_mpc::dealer::{Dealer, DealerError, Need, TrustedDealer, WeightMasks};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::protocols::weights::MaskedWeights;
use pillar_mpc::testing::{Flaw, byte_uniformity, flawed_pair};
use pillar_mpc::{FixedPoint, Party, RingTensor, Session};
use pillar_nn::testing::{conv, fold, linear, pillar_poly, tensor};
use pillar_nn::{Graph, Op, Pool};

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

    fn weight_masks(&mut self, _: &Arc<WeightMasks>) -> Result<(), DealerError> {
        Ok(())
    }
}

fn network() -> Graph {
    let mut g = Graph::new(vec![1, 8, 8]);
    g.chain("conv1", conv(3, 1, 3, 1, 1, 3));
    g.chain("act1", pillar_poly());
    g.chain("pool", Op::AvgPool(Pool::new(2, 2)));
    g.chain("conv2", conv(4, 3, 3, 1, 1, 5));
    g.chain("act2", pillar_poly());
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(3, 64, 7, true));
    g
}

/// Everything the server receives in `runs` connections (setup and one inference each) while
/// the client classifies `x`, with real dealers or, if `masked` is false, zero ones.
fn server_view(plan: &Plan, x: &RingTensor, runs: u64, masked: bool, seed: u64) -> Vec<u64> {
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let fp = FixedPoint::new(16).unwrap();
    let weights = plan.masked_weights_from_seed(seed).unwrap();
    for run in 0..runs {
        let (c0, c1) = memory_pair(pillar_mpc::channel::DEFAULT_TIMEOUT);
        let recorder = Transcript {
            inner: c0,
            rounds: Arc::clone(&rounds),
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
            let conn = ServerConnection::open(&mut s0, plan, &weights).unwrap();
            conn.prepare(&mut s0, 1).unwrap().run(&mut s0).unwrap();
            client.join().unwrap();
        });
    }
    received(&Arc::try_unwrap(rounds).unwrap().into_inner().unwrap())
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
    for linear in LinearProtocol::ALL {
        eprintln!("{linear}:");
        server_cannot_tell_two_inputs_apart(linear);
    }
}

fn server_cannot_tell_two_inputs_apart(linear: LinearProtocol) {
    let plan = Plan::compile(
        &fold(&network()),
        FixedConfig {
            frac_bits: 16,
            activation: ActivationProtocol::HoneyBadger,
            linear,
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
    // Far beyond the critical value: the Beaver protocol's view gives 16,571 here, the
    // preprocessed one's 1,138 (the server receives half as much, and with zero masks the
    // offline posts are zeros for either input).
    assert!(
        unmasked > 3.0 * 330.5,
        "without masks the test must see the input: chi2 = {unmasked:.1}"
    );
    eprintln!(
        "chi2 over {} words: {masked:.1} masked, {unmasked:.1} unmasked",
        a.len()
    );
}

/// What one party saw in one round: the words it sent and those it received.
#[derive(Debug, Clone)]
struct Round {
    sent: Vec<u64>,
    received: Vec<u64>,
}

/// A channel that keeps every round, for the party that owns it to drain.
struct Transcript<C> {
    inner: C,
    rounds: Arc<Mutex<Vec<Round>>>,
}

impl<C: Channel> Channel for Transcript<C> {
    fn exchange(&mut self, send: &[u64], recv: &mut [u64]) -> Result<(), ChannelError> {
        self.inner.exchange(send, recv)?;
        self.rounds.lock().unwrap().push(Round {
            sent: send.to_vec(),
            received: recv.to_vec(),
        });
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

/// One party's rounds on one connection: the setup's, then each batch's but its last, which
/// delivers the logits (the server's share of them, which the client is meant to learn:
/// truncated shares are not uniform in their top bits, and need not be, as the client learns
/// their sum with its own share anyway).
#[derive(Debug, Default)]
struct ConnectionView {
    setup: Vec<Round>,
    batches: Vec<Vec<Round>>,
}

/// A batch's rounds without the last, the logits' delivery.
fn without_output(mut rounds: Vec<Round>) -> Vec<Round> {
    let last = rounds.pop().expect("a batch has rounds");
    assert!(
        last.sent.is_empty() || last.received.is_empty(),
        "the last round is one-way"
    );
    rounds
}

/// The values a round opens: where both parties send as many words (every opening `x - a`
/// is such a round), the sum of the two messages; where only one sends (the preprocessed
/// protocol's posts and replies), the words it sends; otherwise nothing.
fn opened(rounds: &[Round]) -> Vec<u64> {
    rounds
        .iter()
        .flat_map(|r| {
            if r.sent.len() == r.received.len() {
                r.sent
                    .iter()
                    .zip(&r.received)
                    .map(|(a, b)| a.wrapping_add(*b))
                    .collect()
            } else if r.received.is_empty() {
                r.sent.clone()
            } else if r.sent.is_empty() {
                r.received.clone()
            } else {
                Vec::new()
            }
        })
        .collect()
}

fn received(rounds: &[Round]) -> Vec<u64> {
    rounds.iter().flat_map(|r| r.received.clone()).collect()
}

/// Both parties' dealers for connection `k`.
type Dealers = dyn Fn(u64) -> (Box<dyn Dealer>, Box<dyn Dealer>);

/// The server's weights under masks, made once per model.
type Pads = dyn Fn(&Plan) -> MaskedWeights;

/// Real weight masks.
fn real_pads(plan: &Plan) -> MaskedWeights {
    plan.masked_weights().unwrap()
}

/// Runs `connections` connections of `batches` batches each, every batch classifying `x`,
/// with the dealers `dealers` makes per connection and the server's weights under the masks
/// `pads` makes once; returns the server's and the client's views.
fn views(
    plan: &Plan,
    x: &RingTensor,
    connections: u64,
    batches: usize,
    dealers: &Dealers,
    pads: &Pads,
) -> [Vec<ConnectionView>; 2] {
    let weights = pads(plan);
    let fp = plan.architecture.fixed();
    let images = plan.architecture.check_input(x).unwrap();
    let mut out = [Vec::new(), Vec::new()];
    for k in 0..connections {
        let (c0, c1) = memory_pair(pillar_mpc::channel::DEFAULT_TIMEOUT);
        let logs = [(); 2].map(|()| Arc::new(Mutex::new(Vec::new())));
        let record = |c, log: &Arc<Mutex<Vec<Round>>>| Transcript {
            inner: c,
            rounds: Arc::clone(log),
        };
        let (d0, d1) = dealers(k);
        let mut s0 = Session::new(Party::Server, fp, record(c0, &logs[0]), d0)
            .unwrap()
            .with_mask_seed(100 + k);
        let mut s1 = Session::new(Party::Client, fp, record(c1, &logs[1]), d1)
            .unwrap()
            .with_mask_seed(100 + k);
        let drain = |log: &Arc<Mutex<Vec<Round>>>| std::mem::take(&mut *log.lock().unwrap());
        let arch = &plan.architecture;
        let [server, client] = std::thread::scope(|scope| {
            let client = scope.spawn(|| {
                let mut view = ConnectionView::default();
                let conn = ClientConnection::open(&mut s1, arch).unwrap();
                view.setup = drain(&logs[1]);
                for _ in 0..batches {
                    let batch = conn.prepare(&mut s1, images).unwrap();
                    let (logits, _) = batch.run(&mut s1, x).unwrap();
                    assert_right(plan, x, &logits);
                    view.batches.push(without_output(drain(&logs[1])));
                }
                view
            });
            let mut view = ConnectionView::default();
            let conn = ServerConnection::open(&mut s0, plan, &weights).unwrap();
            view.setup = drain(&logs[0]);
            for _ in 0..batches {
                conn.prepare(&mut s0, images).unwrap().run(&mut s0).unwrap();
                view.batches.push(without_output(drain(&logs[0])));
            }
            [view, client.join().unwrap()]
        });
        out[0].push(server);
        out[1].push(client);
    }
    out
}

/// The logits are the fixed executor's up to the secure rounding: every flawed dealer keeps
/// the results right, so only what the parties see can give it away.
fn assert_right(plan: &Plan, x: &RingTensor, logits: &RingTensor) {
    let want = mirror::run_plan(plan, x).unwrap().ring;
    assert_eq!(logits.shape(), want.shape());
    for (a, b) in logits.data().iter().zip(want.data()) {
        let diff = (*a as i64).wrapping_sub(*b as i64).unsigned_abs();
        assert!(diff < 400, "{diff} units apart");
    }
}

/// Above this, a chi-square statistic at 255 degrees of freedom is not uniform: its 10^-6
/// critical value is about 377 (Wilson-Hilferty), so with the 48 statistics of one check a
/// real dealer is flagged with odds below 1 in 20,000.
const CRITICAL: f64 = 380.0;

/// What the detector finds wrong with what one party saw, in words; empty if nothing.
fn findings(party: &str, views: &[ConnectionView]) -> Vec<String> {
    let mut found = Vec::new();
    // The setup of the first connection only: every connection's is the same by design.
    let all_rounds = |(k, v): (usize, &ConnectionView)| {
        let mut r = if k == 0 { v.setup.clone() } else { Vec::new() };
        r.extend(v.batches.iter().flatten().cloned());
        r
    };
    let opened_all: Vec<u64> = views
        .iter()
        .enumerate()
        .flat_map(|v| opened(&all_rounds(v)))
        .collect();
    let received_all: Vec<u64> = views
        .iter()
        .enumerate()
        .flat_map(|v| received(&all_rounds(v)))
        .collect();
    // The same opening in consecutive batches of a connection: with fresh masks the two
    // differ by a uniform amount whatever the input; with reused ones, by the inputs'
    // difference.
    let differences: Vec<u64> = views
        .iter()
        .flat_map(|v| {
            let per_batch: Vec<Vec<u64>> = v.batches.iter().map(|b| opened(b)).collect();
            per_batch
                .windows(2)
                .flat_map(|w| {
                    assert_eq!(w[0].len(), w[1].len(), "batches open the same values");
                    w[1].iter()
                        .zip(&w[0])
                        .map(|(a, b)| a.wrapping_sub(*b))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for (what, words) in [
        ("opened values", &opened_all),
        ("received words", &received_all),
        ("differences between batches", &differences),
    ] {
        assert!(
            words.len() > 5_000,
            "{party}'s {what}: only {}",
            words.len()
        );
        let (chi2, byte) = byte_uniformity(words);
        eprintln!(
            "{party}'s {what}: {} words, largest chi2 {chi2:.1}",
            words.len()
        );
        if chi2 > CRITICAL {
            found.push(format!(
                "{party}'s {what} are not uniform: chi2 {chi2:.0} on byte {byte} of {} words",
                words.len()
            ));
        }
    }
    for (what, words) in [
        ("opened values", &opened_all),
        ("received words", &received_all),
    ] {
        let mut sorted = words.clone();
        sorted.sort_unstable();
        let repeats = sorted.windows(2).filter(|w| w[0] == w[1]).count();
        if repeats > 0 {
            found.push(format!(
                "{party}'s {what} repeat: {repeats} of {} words",
                words.len()
            ));
        }
    }
    found
}

/// Both parties' findings for `protocol` under `linear` with the dealers `dealers` makes and
/// the weight masks `pads` makes.
fn detect_with(
    protocol: ActivationProtocol,
    linear: LinearProtocol,
    dealers: &Dealers,
    pads: &Pads,
) -> Vec<String> {
    let plan = Plan::compile(
        &fold(&network()),
        FixedConfig {
            frac_bits: 16,
            activation: protocol,
            linear,
        },
    )
    .unwrap();
    let fp = FixedPoint::new(16).unwrap();
    // Two images, a blank one and a noisy one, classified again in every batch.
    let blank = tensor(&[1, 1, 8, 8], 1, 0.0);
    let noisy = tensor(&[1, 1, 8, 8], 2, 3.0);
    let mut data = blank.data().to_vec();
    data.extend_from_slice(noisy.data());
    let x = mirror::encode(fp, &pillar_nn::Tensor::new(vec![2, 1, 8, 8], data).unwrap()).unwrap();
    let [server, client] = views(&plan, &x, 4, 4, dealers, pads);
    let mut found = findings("server", &server);
    found.extend(findings("client", &client));
    eprintln!("{}/{linear}: {found:#?}", protocol.name());
    found
}

/// [`detect_with`] under each linear protocol with real weight masks.
fn detect(protocol: ActivationProtocol, dealers: &Dealers) -> Vec<Vec<String>> {
    detect_pads(protocol, dealers, &real_pads)
}

/// [`detect_with`] under each linear protocol.
fn detect_pads(protocol: ActivationProtocol, dealers: &Dealers, pads: &Pads) -> Vec<Vec<String>> {
    LinearProtocol::ALL
        .into_iter()
        .map(|linear| detect_with(protocol, linear, dealers, pads))
        .collect()
}

/// Fresh dealers from a seed of their own per connection.
fn real(k: u64) -> (Box<dyn Dealer>, Box<dyn Dealer>) {
    let (a, b) = TrustedDealer::pair_from_seed(7_000 + k);
    (Box::new(a), Box::new(b))
}

/// Dealers with `flaw`, from a seed of their own per connection.
fn flawed(flaw: Flaw) -> impl Fn(u64) -> (Box<dyn Dealer>, Box<dyn Dealer>) {
    move |k| {
        let (a, b) = flawed_pair(7_000 + k, flaw);
        (Box::new(a), Box::new(b))
    }
}

#[test]
fn with_the_real_dealer_opened_values_look_uniform_and_never_repeat() {
    for protocol in [ActivationProtocol::HoneyBadger, ActivationProtocol::Espn] {
        for found in detect(protocol, &real) {
            assert!(found.is_empty(), "{}: {found:#?}", protocol.name());
        }
    }
}

#[test]
fn the_detector_flags_honeybadger_with_r_zero() {
    for found in detect(
        ActivationProtocol::HoneyBadger,
        &flawed(Flaw::HoneyBadgerZeroR),
    ) {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("server's opened values are not uniform"))
                && found
                    .iter()
                    .any(|f| f.starts_with("client's opened values are not uniform")),
            "{found:#?}"
        );
    }
}

#[test]
fn the_detector_flags_espn_with_the_clients_mask_zero() {
    for found in detect(ActivationProtocol::Espn, &flawed(Flaw::EspnClientMaskZero)) {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("server's received words are not uniform")),
            "{found:#?}"
        );
    }
}

#[test]
fn the_detector_flags_triples_reused_across_batches() {
    for protocol in [ActivationProtocol::HoneyBadger, ActivationProtocol::Espn] {
        for found in detect(protocol, &flawed(Flaw::ReusedTriples)) {
            for party in ["server", "client"] {
                assert!(
                    found
                        .iter()
                        .any(|f| f.starts_with(&format!("{party}'s opened values repeat"))),
                    "{}: {found:#?}",
                    protocol.name()
                );
                assert!(
                    found.iter().any(|f| f.starts_with(&format!(
                        "{party}'s differences between batches are not uniform"
                    ))),
                    "{}: {found:#?}",
                    protocol.name()
                );
            }
        }
    }
}

#[test]
fn the_detector_flags_weight_masks_that_are_zero() {
    let zero = |plan: &Plan| {
        let lens = plan.architecture.weight_shapes.iter();
        let lens = lens.map(|s| s.iter().product()).collect();
        plan.masked_with(WeightMasks::zero_for_tests(lens)).unwrap()
    };
    for found in detect_pads(ActivationProtocol::HoneyBadger, &real, &zero) {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("client's received words are not uniform")),
            "{found:#?}"
        );
    }
}

#[test]
fn the_detector_flags_the_same_dealer_seeds_on_every_connection() {
    let same = |_| real(0);
    for found in detect(ActivationProtocol::HoneyBadger, &same) {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("server's opened values repeat"))
                && found
                    .iter()
                    .any(|f| f.starts_with("client's opened values repeat")),
            "{found:#?}"
        );
    }
}
