//! A client that runs its own code against a real dealer and server over TCP: it asks the
//! dealer for correlations other than the ones the protocol consumes, so that the dealer's
//! corrections give away the server's seed stream. When the weight masks were drawn from that
//! stream, this attack recovered half the weights (238 of 477 words) before the dealer checked
//! commitments; they now come from a seed of their own, but the stream still holds the
//! server's shares of every other correlation (HoneyBadger's `r_0`, with which the opened
//! `y - r` gives each activation's input). The dealer must serve only what the server
//! committed to: the attacker is refused before it gets a word, and the server hears of it.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pillar_infer::cluster::{self, Cluster, Deployment};
use pillar_infer::remote::{RemoteError, ServeOptions, Served};
use pillar_infer::{FixedConfig, Plan};
use pillar_mpc::channel::{Channel, Link, TcpChannel};
use pillar_mpc::dealer::remote::{SessionId, join_session};
use pillar_mpc::dealer::{Dealer, DealerError, Need};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::{MpcError, Party};
use pillar_nn::testing::{every_op, fold};

const TIMEOUT: Duration = Duration::from_secs(20);

type Outcomes = Arc<Mutex<Vec<Result<Served, RemoteError>>>>;

/// A dealer, and a server of `every_op` that collects its clients' outcomes.
fn deploy() -> (Cluster, Arc<Plan>, String, Outcomes) {
    let cluster = Cluster::start(Deployment::generate()).unwrap();
    let config = FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::HoneyBadger,
        ..FixedConfig::default()
    };
    let plan = Arc::new(Plan::compile(&fold(&every_op()), config).unwrap());
    let outcomes: Outcomes = Arc::default();
    let seen = Arc::clone(&outcomes);
    let done = move |_: SocketAddr, r: Result<Served, RemoteError>| seen.lock().unwrap().push(r);
    let options: ServeOptions = cluster.options(Link::default(), 8, 4);
    let server = cluster::start_server(Arc::clone(&plan), options, Arc::new(done)).unwrap();
    (cluster, plan, server, outcomes)
}

/// What the attacker learnt: per weight word (in the order of the server's weights, all of
/// them concatenated), the weight's ring word up to one unit, where its mask was revealed.
type Recovered = Vec<Option<u64>>;

/// The attack as it was written against per-connection weight masks, whose shares `b0` were
/// the first words of the server's stream: the attacker announces `Bit { n: 1 }` again and
/// again; for each, the dealer expands two words of party 0's stream (`rb0`, `r0`) and sends
/// `bit - r0`, with `bit` one bit, so every second word of the stream comes out up to one
/// unit. It reads the setup's `F` as `W - b0`. A dealer that served it would now give words of
/// the server's other shares instead (and the count of weights it recovers would be about 0);
/// the test asserts that the dealer serves it nothing.
fn attack(cluster: &Cluster, server: &str, weights: usize) -> Result<Recovered, MpcError> {
    let links = &cluster.keys.client;
    let mut channel = TcpChannel::connect(server, Party::Client, &links.peer, TIMEOUT)?;
    let hello = channel.recv_message("server's hello", 16 << 20)?;
    let hello: serde_json::Value = serde_json::from_slice(&hello).unwrap();
    let session = SessionId::from_str(hello["Ready"]["session"].as_str().unwrap()).unwrap();
    // The protocol's first request, which makes the server commit its setup's correlations
    // (without it the dealer serves the client nothing at all).
    channel.send_message(br#"{"Batch":{"images":1}}"#)?;
    let mut dealer = join_session(&cluster.dealer, session, &links.dealer, TIMEOUT)?;

    let bit = Need::Bit { n: 1 };
    let needs = vec![bit.clone(); weights / 2];
    dealer.announce(&needs)?;
    let mut masks = vec![None; weights];
    for i in 0..weights / 2 {
        // The client's buffer: its own `rb1`, then the correction `bit - r0`.
        let words = dealer.generate(&bit)?;
        masks[2 * i + 1] = Some(words[1].wrapping_neg());
    }
    // The setup: the server sends `W - b0` for every weight word; the attacker sends noise.
    let mut opened = vec![0u64; weights];
    channel.exchange(&vec![0u64; weights], &mut opened)?;
    Ok(masks
        .iter()
        .zip(&opened)
        .map(|(b0, f)| b0.map(|b0| f.wrapping_add(b0)))
        .collect())
}

/// Weight words the attacker got right (up to the one unit of the unknown bit).
fn recovered(plan: &Plan, got: &Recovered) -> usize {
    let truth: Vec<u64> = plan.weights.weights.iter().flatten().copied().collect();
    got.iter()
        .zip(&truth)
        .filter(|(g, w)| g.is_some_and(|g| w.wrapping_sub(g) <= 1))
        .count()
}

#[test]
fn a_client_asking_the_dealer_for_other_correlations_is_refused_and_learns_no_weight() {
    let (cluster, plan, server, outcomes) = deploy();
    let weights: usize = plan.weights.weights.iter().map(Vec::len).sum();
    match attack(&cluster, &server, weights) {
        Ok(got) => panic!(
            "the dealer served a deviating client: it recovered {} of {weights} weight words",
            recovered(&plan, &got)
        ),
        Err(MpcError::Dealer(DealerError::Refused(reason))) => {
            assert!(reason.contains("server committed"), "{reason}");
        }
        Err(e) => panic!("refused for another reason: {e}"),
    }
    // The server hears that its client deviated, and ends that connection.
    for _ in 0..400 {
        if !outcomes.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let outcome = outcomes
        .lock()
        .unwrap()
        .pop()
        .expect("the server reported the client");
    let message = outcome.unwrap_err().to_string();
    assert!(message.contains("deviated"), "{message}");
}
