//! Server and client over TCP with a dealer process, on Noise links with pinned keys: the
//! client gets the fixed executor's logits, a received architecture is checked, and a failing,
//! tampering or untrusted client, or a missing dealer, is a clear error while the server goes
//! on serving.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pillar_infer::FixedConfig;
use pillar_infer::cluster::{self, Deployment};
use pillar_infer::mirror;
use pillar_infer::remote::{Links, RemoteError, RemoteModel, ServeOptions, Served};
use pillar_infer::{Architecture, Layer, Plan};
use pillar_mpc::channel::secure::PREAMBLE;
use pillar_mpc::channel::{Admission, Identity, Link, Security};
use pillar_mpc::dealer::remote::{DealerLinks, ServiceConfig};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::weights::KeptWeights;
use pillar_mpc::wire::{self, Greeting, Kind};
use pillar_mpc::{FixedPoint, Party, RingTensor};
use pillar_nn::Graph;
use pillar_nn::testing::{every_op, fold, tensor, with_loose_batchnorm};

const TIMEOUT: Duration = Duration::from_secs(20);

fn config() -> FixedConfig {
    FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::Espn,
        ..FixedConfig::default()
    }
}

fn noise(me: &Arc<Identity>, peers: &[&Arc<Identity>]) -> Security {
    Security::Noise {
        identity: Arc::clone(me),
        trusted: Arc::new(peers.iter().map(|p| p.public()).collect()),
    }
}

fn start_dealer_with(links: DealerLinks) -> String {
    cluster::start_dealer(links, ServiceConfig::default()).unwrap()
}

/// A dealer, a server for `g` and the keys of a client they both trust.
fn start(g: &Graph) -> (Deployment, String, String, Outcomes) {
    let keys = Deployment::generate();
    let dealer = start_dealer_with(keys.dealer.clone());
    let (server, outcomes) = start_server(g, &dealer, keys.server.clone());
    (keys, dealer, server, outcomes)
}

fn connect(server: &str, dealer: &str, keys: &Deployment) -> Result<RemoteModel, RemoteError> {
    RemoteModel::connect(server, dealer, Link::default(), &keys.client, TIMEOUT)
}

type Outcomes = Arc<Mutex<Vec<Result<Served, String>>>>;

/// A server for `g` on a free port; its clients' outcomes are collected.
fn start_server(g: &Graph, dealer: &str, security: Links) -> (String, Outcomes) {
    let plan = Arc::new(Plan::compile(&fold(g), config()).unwrap());
    let outcomes: Outcomes = Arc::default();
    let seen = Arc::clone(&outcomes);
    let options = ServeOptions {
        dealer: dealer.to_string(),
        link: Link::default(),
        timeout: TIMEOUT,
        max_batch: 64,
        max_clients: 8,
        max_active: 0,
        admission: Admission::default(),
        security,
    };
    let done = move |_: SocketAddr, r: Result<Served, RemoteError>| {
        seen.lock().unwrap().push(r.map_err(|e| e.to_string()));
    };
    let addr = cluster::start_server(plan, options, Arc::new(done)).unwrap();
    (addr, outcomes)
}

/// Waits until the server has reported `n` clients.
fn outcomes(o: &Outcomes, n: usize) -> Vec<Result<Served, String>> {
    for _ in 0..400 {
        if o.lock().unwrap().len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    std::mem::take(&mut *o.lock().unwrap())
}

fn encode(shape: &[usize], seed: u64) -> RingTensor {
    mirror::encode(FixedPoint::new(16).unwrap(), &tensor(shape, seed, 1.5)).unwrap()
}

/// `got` holds the fixed executor's logits for `x` on `g`, up to the secure rounding.
fn assert_fixed_logits(g: &Graph, x: &RingTensor, got: &RingTensor) {
    let want = mirror::run_encoded(&fold(g), x, &config()).unwrap().ring;
    assert_eq!(got.shape(), want.shape());
    for (a, b) in got.data().iter().zip(want.data()) {
        let diff = (*a as i64 - *b as i64).unsigned_abs();
        assert!(diff < 400, "{diff} units apart");
    }
}

/// An honest client on `links` gets the fixed executor's logits for one image: what every
/// fault test asks of the server after the fault.
fn serves_correctly(server: &str, dealer: &str, links: &Links, seed: u64) {
    let model = RemoteModel::connect(server, dealer, Link::default(), links, TIMEOUT).unwrap();
    let x = encode(&[1, 2, 8, 8], seed);
    let (logits, _) = model.run(std::slice::from_ref(&x), &|_| {}).unwrap();
    assert_fixed_logits(&every_op(), &x, &logits[0]);
}

/// The server's next client outcome, which must be an error.
fn next_error(o: &Outcomes) -> String {
    outcomes(o, 1).remove(0).unwrap_err()
}

#[test]
fn a_client_gets_the_fixed_executors_logits_over_tcp() {
    let g = every_op();
    let (keys, dealer, server, served) = start(&g);
    let model = connect(&server, &dealer, &keys).unwrap();
    let arch = model.architecture().clone();
    assert_eq!(arch.input_shape, vec![2, 8, 8]);
    let batches = [encode(&[3, 2, 8, 8], 1), encode(&[1, 2, 8, 8], 2)];
    let done = Mutex::new(0);
    let (logits, report) = model
        .run(&batches, &|n| *done.lock().unwrap() += n)
        .unwrap();
    assert_eq!(*done.lock().unwrap(), 4);
    for (x, got) in batches.iter().zip(&logits) {
        assert_fixed_logits(&g, x, got);
    }
    assert_eq!(report.setup.stats.rounds, 1);
    for b in &report.batches {
        assert_eq!(b.online.stats.rounds as usize, arch.rounds());
    }
    let served = outcomes(&served, 1);
    let served = served[0].as_ref().unwrap();
    assert_eq!(served.images(), 4);
    assert_eq!(served.batches.len(), 2);
}

#[test]
fn a_client_that_kept_the_weights_skips_the_setup_and_gets_the_same_logits() {
    let g = every_op();
    let (keys, dealer, server, served) = start(&g);
    let x = encode(&[2, 2, 8, 8], 3);
    // First connection: the setup sends every weight's `F`.
    let model = connect(&server, &dealer, &keys).unwrap();
    let digest = model.weights_digest();
    let words = model.architecture().setup_words();
    let (first, report) = model.run(std::slice::from_ref(&x), &|_| {}).unwrap();
    assert_eq!(report.setup.stats.bytes_received as usize, 8 * words);
    let kept = report.weights.expect("the connection's F");
    assert_eq!(kept.digest(), digest);
    assert_eq!(kept.words().len(), words);
    // One set of masks per model: the next connection announces the same `F`, and one that
    // kept it skips the setup.
    let mut model = connect(&server, &dealer, &keys).unwrap();
    assert_eq!(model.weights_digest(), digest);
    assert!(model.with_kept_weights(kept.clone()));
    let (again, report) = model.run(std::slice::from_ref(&x), &|_| {}).unwrap();
    assert_eq!(report.setup.stats.rounds, 0);
    assert_eq!(report.setup.stats.bytes_received, 0);
    assert_fixed_logits(&g, &x, &first[0]);
    assert_fixed_logits(&g, &x, &again[0]);
    // An `F` of another model, or not of this one's length, is not used.
    let mut model = connect(&server, &dealer, &keys).unwrap();
    let mut other = kept.words().to_vec();
    other[0] ^= 1;
    assert!(!model.with_kept_weights(KeptWeights::verified(other)));
    let short = kept.words()[1..].to_vec();
    assert!(!model.with_kept_weights(KeptWeights::announced(digest, Arc::new(short))));
    let (logits, report) = model.run(std::slice::from_ref(&x), &|_| {}).unwrap();
    assert_eq!(report.setup.stats.bytes_received as usize, 8 * words);
    assert_fixed_logits(&g, &x, &logits[0]);
    let served = outcomes(&served, 3);
    assert!(served.iter().all(Result::is_ok), "{served:?}");
    // The server sent the setup twice, and skipped it once.
    let setups: Vec<u64> = served
        .iter()
        .map(|s| s.as_ref().unwrap().setup.stats.bytes_sent)
        .collect();
    assert_eq!(setups.iter().filter(|&&b| b == 0).count(), 1, "{setups:?}");
}

#[test]
fn compiled_architectures_validate_and_tampered_ones_do_not() {
    for g in [every_op(), with_loose_batchnorm()] {
        let arch = Plan::compile(&fold(&g), config()).unwrap().architecture;
        Architecture::try_from(arch.into_unchecked()).unwrap();
    }
    let arch = Plan::compile(&fold(&every_op()), config())
        .unwrap()
        .architecture
        .into_unchecked();
    let mut tampered = Vec::new();
    let mut a = arch.clone();
    a.output = a.steps.len() + 3;
    tampered.push(a);
    let mut a = arch.clone();
    a.steps[1].inputs = vec![5];
    tampered.push(a);
    let mut a = arch.clone();
    a.shapes[2] = vec![4, 8, 9];
    tampered.push(a);
    let mut a = arch.clone();
    a.weight_shapes.pop();
    tampered.push(a);
    let mut a = arch.clone();
    a.shapes[0] = vec![1 << 20, 1 << 20, 8];
    a.input_shape = a.shapes[0].clone();
    tampered.push(a);
    let mut a = arch.clone();
    for step in &mut a.steps {
        if let Layer::Poly { coefficients } = &mut step.layer {
            coefficients.push(f64::INFINITY);
        }
    }
    tampered.push(a);
    let mut a = arch.clone();
    a.options.frac_bits = 40;
    tampered.push(a);
    for (i, a) in tampered.iter().enumerate() {
        assert!(
            Architecture::try_from(a.clone()).is_err(),
            "tampered architecture {i} passed"
        );
        // A hello carrying it is refused as it is decoded.
        let json = serde_json::to_vec(a).unwrap();
        assert!(serde_json::from_slice::<Architecture>(&json).is_err());
    }
}

#[test]
fn a_server_without_its_dealer_refuses_clearly() {
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let keys = Deployment::generate();
    let (server, served) = start_server(&every_op(), &down, keys.server.clone());
    let err = connect(&server, &down, &keys).unwrap_err();
    assert!(
        matches!(&err, RemoteError::Refused(m) if m.contains("cannot reach the dealer")),
        "{err}"
    );
    assert!(next_error(&served).contains("dealer"));
}

#[test]
fn a_wrong_input_is_refused_before_any_traffic() {
    let (keys, dealer, server, served) = start(&every_op());
    let model = connect(&server, &dealer, &keys).unwrap();
    let err = model.run(&[encode(&[1, 3, 8, 8], 1)], &|_| {}).unwrap_err();
    assert!(matches!(err, RemoteError::Architecture(_)), "{err}");
    // The server saw the client leave during the setup.
    let served = outcomes(&served, 1);
    assert!(served[0].is_err());
}

/// Accepts one connection, connects it to `to` and hands both sockets (the client's, the
/// server's) to `relay`, in a thread. Returns the address to connect to.
fn proxy(to: String, relay: impl FnOnce(TcpStream, TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(to).unwrap();
        relay(client, server);
    });
    addr
}

/// Copies everything from `from` to `to` in a thread of its own, then closes `to`.
fn forward(from: &TcpStream, to: &TcpStream) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// Copies from `from` to `to` until `limit` bytes went through (true) or either side failed
/// or closed (false).
fn copy_at_most(from: &mut TcpStream, to: &mut TcpStream, limit: usize) -> bool {
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    while sent < limit {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n.min(limit - sent),
        };
        if to.write_all(&buf[..n]).is_err() {
            return false;
        }
        sent += n;
    }
    true
}

/// Forwards one connection to `to`, cutting both directions once `limit` bytes went from
/// the client to the server.
fn cutting_proxy(to: String, limit: usize) -> String {
    proxy(to, move |mut client, mut server| {
        forward(&server, &client);
        copy_at_most(&mut client, &mut server, limit);
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    })
}

#[test]
fn a_client_lost_mid_inference_does_not_stop_the_server() {
    let (keys, dealer, server, served) = start(&every_op());
    // Past the preamble and Noise handshake (under 200 bytes), the party greeting (26 bytes
    // and a tag), the setup's opening and the batch request (under 60 bytes and a tag), into
    // the first layer's opening.
    let arch = Plan::compile(&fold(&every_op()), config())
        .unwrap()
        .architecture;
    let limit = 200 + 26 + (8 + 8 * arch.setup_words()) + 60 + 6 * 18 + 1000;
    let proxy = cutting_proxy(server.clone(), limit);
    let model = connect(&proxy, &dealer, &keys).unwrap();
    let err = model.run(&[encode(&[4, 2, 8, 8], 1)], &|_| {}).unwrap_err();
    assert!(matches!(err, RemoteError::Mpc(_)), "{err}");
    eprintln!("client: {err}");
    let lost = next_error(&served);
    assert!(lost.contains("closed"), "{lost}");
    // The next client is served.
    serves_correctly(&server, &dealer, &keys.client, 3);
    assert!(outcomes(&served, 1)[0].is_ok());
}

#[test]
fn garbage_and_broken_frames_do_not_stop_the_server() {
    // Plaintext, so that the frames can be forged without a key.
    let dealer = start_dealer_with(DealerLinks::Plaintext);
    let (server, served) = start_server(&every_op(), &dealer, Links::plaintext());
    let connect = || {
        let s = TcpStream::connect(&server).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s
    };
    // Garbage instead of a handshake.
    let mut raw = connect();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);
    // The preamble and greeting a plaintext client sends.
    let mut hello = PREAMBLE.to_vec();
    hello.push(0);
    hello.extend(
        wire::message_frame(&Greeting {
            party: Party::Client,
        })
        .unwrap(),
    );
    // A handshake and the first request, then a frame of the wrong length where the setup's
    // opening belongs.
    let mut raw = connect();
    raw.write_all(&hello).unwrap();
    let request = br#"{"Batch":{"images":1}}"#;
    raw.write_all(&wire::header(Kind::Message, request.len() as u32))
        .unwrap();
    raw.write_all(request).unwrap();
    raw.write_all(&wire::header(Kind::Words, 1000)).unwrap();
    let _ = raw.read_to_end(&mut sink);
    // A handshake, then a truncated frame header and a hang-up.
    let mut raw = connect();
    raw.write_all(&hello).unwrap();
    raw.write_all(&[wire::VERSION, 1, 0]).unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = raw.read_to_end(&mut sink);
    let mut errors: Vec<String> = outcomes(&served, 3)
        .into_iter()
        .map(|r| r.unwrap_err())
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("handshake")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("1000 ring words")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("closed")), "{errors:?}");
    // The next honest client is served correctly.
    serves_correctly(&server, &dealer, &Links::plaintext(), 9);
}

#[test]
fn untrusted_and_plaintext_clients_are_turned_away() {
    let (keys, dealer, server, served) = start(&every_op());
    // A client whose key the server does not trust.
    let stranger = Arc::new(Identity::generate());
    let links = Links {
        peer: noise(&stranger, &[&keys.identities[1]]),
        dealer: noise(&stranger, &[&keys.identities[0]]),
    };
    let err = RemoteModel::connect(&server, &dealer, Link::default(), &links, TIMEOUT).unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("refused") && err.contains(&stranger.public().to_string()),
        "{err}"
    );
    let refused = next_error(&served);
    assert!(
        refused.contains("not among the keys trusted by this end"),
        "{refused}"
    );
    // A client that pins another key for the server.
    let impostor = Arc::new(Identity::generate());
    let links = Links {
        peer: noise(&keys.identities[2], &[&impostor]),
        dealer: noise(&keys.identities[2], &[&keys.identities[0]]),
    };
    let err = RemoteModel::connect(&server, &dealer, Link::default(), &links, TIMEOUT).unwrap_err();
    assert!(
        err.to_string().contains("not among the keys trusted"),
        "{err}"
    );
    let refused = outcomes(&served, 1);
    assert!(
        refused[0]
            .as_ref()
            .unwrap_err()
            .contains("refused this connection")
    );
    // A plaintext client is told at once, and so is the server.
    let err = RemoteModel::connect(
        &server,
        &dealer,
        Link::default(),
        &Links::plaintext(),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(err.to_string().contains("requires Noise"), "{err}");
    let refused = next_error(&served);
    assert!(refused.contains("--insecure-plaintext"), "{refused}");
    // The trusted client is served.
    serves_correctly(&server, &dealer, &keys.client, 4);
}

/// What a man in the middle does to the client's Noise messages.
#[derive(Clone, Copy)]
enum Tamper {
    /// Sends message `k - 1` again in place of message `k`.
    Replay(usize),
    /// Flips one bit of message `k`.
    Flip(usize),
}

/// Forwards one connection to `to`, reading the client's side as Noise messages (an 8-byte
/// preamble, then 2-byte big-endian lengths) and tampering with one of them.
fn tampering_proxy(to: String, tamper: Tamper) -> String {
    proxy(to, move |mut client, mut server| {
        forward(&server, &client);
        let mut preamble = [0u8; 8];
        client.read_exact(&mut preamble).unwrap();
        server.write_all(&preamble).unwrap();
        let mut previous = Vec::new();
        for k in 0.. {
            let mut len = [0u8; 2];
            if client.read_exact(&mut len).is_err() {
                break;
            }
            let mut message = len.to_vec();
            message.resize(2 + usize::from(u16::from_be_bytes(len)), 0);
            if client.read_exact(&mut message[2..]).is_err() {
                break;
            }
            let out = match tamper {
                Tamper::Replay(at) if k == at => previous.clone(),
                Tamper::Flip(at) if k == at => {
                    let mut m = message.clone();
                    let last = m.len() - 1;
                    m[last / 2 + 1] ^= 0x10;
                    m
                }
                _ => message.clone(),
            };
            if server.write_all(&out).is_err() {
                break;
            }
            previous = message;
        }
        let _ = server.shutdown(std::net::Shutdown::Both);
    })
}

#[test]
fn replayed_and_altered_messages_end_the_connection_and_nothing_else() {
    let (keys, dealer, server, served) = start(&every_op());
    // Client messages 0 and 1 are the handshake, 2 its verdict on the server's key, 3 the
    // party hello; frames follow.
    for tamper in [
        Tamper::Replay(4),
        Tamper::Flip(2),
        Tamper::Flip(3),
        Tamper::Flip(6),
        Tamper::Replay(7),
    ] {
        let proxy = tampering_proxy(server.clone(), tamper);
        let outcome = connect(&proxy, &dealer, &keys)
            .and_then(|model| model.run(&[encode(&[2, 2, 8, 8], 1)], &|_| {}));
        assert!(outcome.is_err(), "a tampered connection gave a result");
        let seen = next_error(&served);
        assert!(seen.contains("failed authentication"), "{seen}");
    }
    serves_correctly(&server, &dealer, &keys.client, 9);
}

/// Forwards one connection to `to`; from `to` back to the client, only the first `limit`
/// bytes go through, and then nothing, with the connection left open: a stalled peer.
fn stalling_proxy(to: String, limit: usize) -> String {
    proxy(to, move |mut client, mut server| {
        forward(&client, &server);
        if copy_at_most(&mut server, &mut client, limit) {
            // Hold the sockets, say nothing more.
            std::thread::sleep(Duration::from_secs(30));
        }
        drop((client, server));
    })
}

#[test]
fn a_dealer_that_stops_sending_times_out_and_the_server_goes_on() {
    let (keys, dealer, server, served) = start(&every_op());
    // Through the preamble, the handshake and the seed, into the corrections.
    let stalled = stalling_proxy(dealer.clone(), 600);
    let short = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let outcome = RemoteModel::connect(&server, &stalled, Link::default(), &keys.client, short)
        .and_then(|model| model.run(&[encode(&[2, 2, 8, 8], 1)], &|_| {}));
    let err = outcome.expect_err("a stalled dealer gave a result");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The server saw its client go, and serves the next one.
    next_error(&served);
    serves_correctly(&server, &dealer, &keys.client, 2);
}

#[test]
fn eight_concurrent_clients_each_get_their_own_correct_logits() {
    let g = every_op();
    let (keys, dealer, server, served) = start(&g);
    let clients = 8;
    std::thread::scope(|scope| {
        for c in 0..clients {
            let (server, dealer, keys, g) = (&server, &dealer, &keys, &g);
            scope.spawn(move || {
                let batches = [
                    encode(&[2, 2, 8, 8], 100 + c as u64),
                    encode(&[1, 2, 8, 8], 200 + c as u64),
                ];
                let model = connect(server, dealer, keys).unwrap();
                let (logits, _) = model.run(&batches, &|_| {}).unwrap();
                for (x, got) in batches.iter().zip(&logits) {
                    assert_fixed_logits(g, x, got);
                }
            });
        }
    });
    let seen = outcomes(&served, clients);
    assert_eq!(seen.len(), clients);
    assert!(
        seen.iter()
            .all(|r| r.as_ref().is_ok_and(|s| s.images() == 3))
    );
}

/// A dealer and a server of `every_op` that serves at most `max_clients` at once and lets
/// connections in as `admission` says; its clients' outcomes are dropped.
fn start_limited(max_clients: usize, admission: Admission) -> (Deployment, String, String) {
    let keys = Deployment::generate();
    let dealer = start_dealer_with(keys.dealer.clone());
    let plan = Arc::new(Plan::compile(&fold(&every_op()), config()).unwrap());
    let options = ServeOptions {
        dealer: dealer.clone(),
        link: Link::default(),
        timeout: TIMEOUT,
        max_batch: 4,
        max_clients,
        max_active: 0,
        admission,
        security: keys.server.clone(),
    };
    let server = cluster::start_server(plan, options, Arc::new(|_, _| {})).unwrap();
    (keys, dealer, server)
}

#[test]
fn clients_beyond_the_limit_are_told_the_server_is_busy() {
    let (keys, dealer, server) = start_limited(1, Admission::default());
    // The first client holds its connection (set up, nothing asked yet).
    let first = connect(&server, &dealer, &keys).unwrap();
    let err = connect(&server, &dealer, &keys).unwrap_err();
    assert!(
        matches!(&err, RemoteError::Refused(m) if m.contains("busy")),
        "{err}"
    );
    // Once it is done, the next one is served.
    first.run(&[encode(&[1, 2, 8, 8], 1)], &|_| {}).unwrap();
    // (The server frees the slot when it has read the goodbye: allow it a moment.)
    let model = (0..100)
        .find_map(|_| {
            let attempt = connect(&server, &dealer, &keys);
            if attempt.is_err() {
                std::thread::sleep(Duration::from_millis(50));
            }
            attempt.ok()
        })
        .expect("the server stayed busy");
    model.run(&[encode(&[1, 2, 8, 8], 2)], &|_| {}).unwrap();
}

/// A stranger that starts a Noise handshake and never finishes it: the preamble, then the
/// length of the largest Noise message, then one byte of it every 300 ms, each in time for
/// any per-read timeout, for as long as the server reads. Returns its socket, to watch.
fn slow_loris(server: &str) -> TcpStream {
    let stream = TcpStream::connect(server).unwrap();
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend([1, 0xff, 0xff]);
        for b in bytes.into_iter().chain(std::iter::repeat(0)) {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    stream
}

#[test]
fn slow_strangers_hold_no_client_slot_and_are_cut_at_the_handshake_deadline() {
    let (keys, dealer, server) = start_limited(
        2,
        Admission {
            handshake: Duration::from_secs(1),
            ..Admission::default()
        },
    );
    // As many strangers as the server takes clients, trickling their handshakes.
    let lorises: Vec<TcpStream> = (0..2).map(|_| slow_loris(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A trusted client is served all the same.
    serves_correctly(&server, &dealer, &keys.client, 5);
    // And the strangers are cut off once the handshake's deadline has passed, however
    // steadily they trickle.
    for mut loris in lorises {
        loris.set_read_timeout(Some(TIMEOUT)).unwrap();
        match loris.read_to_end(&mut Vec::new()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the server still holds a stranger's handshake: {e}"),
        }
    }
}

#[test]
fn a_dealer_given_as_the_server_or_a_server_as_the_dealer_is_named() {
    let (keys, dealer, server, _) = start(&every_op());
    // A client pointed at the dealer instead of the server.
    let err = connect(&dealer, &dealer, &keys).unwrap_err().to_string();
    assert!(err.contains("is a pillar dealer, not a server"), "{err}");
    // A client given the server's address for its dealer.
    let err = connect(&server, &server, &keys).unwrap_err().to_string();
    assert!(err.contains("is a pillar server, not a dealer"), "{err}");
    // A server given another server's address for its dealer refuses its client, saying so.
    let (confused, _) = start_server(&every_op(), &server, keys.server.clone());
    let err = connect(&confused, &dealer, &keys).unwrap_err().to_string();
    assert!(err.contains("is a pillar server, not a dealer"), "{err}");
    serves_correctly(&server, &dealer, &keys.client, 6);
}

#[test]
fn a_batch_beyond_the_servers_limit_is_refused_by_the_client_naming_the_limit() {
    let (keys, dealer, server, _) = start(&every_op());
    let model = connect(&server, &dealer, &keys).unwrap();
    let err = model
        .run(&[encode(&[65, 2, 8, 8], 3)], &|_| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            RemoteError::BatchTooLarge {
                asked: 65,
                limit: 64
            }
        ),
        "{err}"
    );
    serves_correctly(&server, &dealer, &keys.client, 7);
}

#[test]
fn connections_beyond_the_handshake_bound_are_closed_without_a_word() {
    let (keys, dealer, server) = start_limited(
        8,
        Admission {
            handshake: Duration::from_secs(1),
            max_handshakes: 2,
        },
    );
    // Two strangers fill the handshakes (the server accepts in order).
    let lorises: Vec<TcpStream> = (0..2).map(|_| slow_loris(&server)).collect();
    // A third connection is closed before the server says anything: no thread waits on it.
    let mut third = TcpStream::connect(&server).unwrap();
    third.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = third.write_all(PREAMBLE);
    let mut heard = Vec::new();
    match third.read_to_end(&mut heard) {
        Ok(_) => assert!(heard.is_empty(), "the server answered: {heard:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // Once the deadline has cut the strangers off, a trusted client is served.
    for mut loris in lorises {
        loris.set_read_timeout(Some(TIMEOUT)).unwrap();
        let _ = loris.read_to_end(&mut Vec::new());
    }
    serves_correctly(&server, &dealer, &keys.client, 8);
}
