//! Server and client over TCP with a dealer process: the client gets the fixed executor's
//! logits, a received architecture is checked, and a failing client or dealer is a clear error
//! while the server goes on serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{every_op, tensor, with_loose_batchnorm};
use pillar_mpc::channel::Link;
use pillar_mpc::dealer::remote::{DealerService, ServiceConfig};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::{FixedPoint, RingTensor};
use pillar_nn::exec::fixed::{self, FixedConfig};
use pillar_nn::secure::remote::{RemoteError, RemoteModel, ServeOptions, Served, serve};
use pillar_nn::secure::{Layer, Plan};
use pillar_nn::{Graph, fold_batchnorm};

const TIMEOUT: Duration = Duration::from_secs(20);

fn config() -> FixedConfig {
    FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::Espn,
    }
}

fn start_dealer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = Arc::new(DealerService::new(ServiceConfig::default()));
    std::thread::spawn(move || service.serve(&listener));
    addr
}

type Outcomes = Arc<Mutex<Vec<Result<Served, String>>>>;

/// A server for `g` on a free port; its clients' outcomes are collected.
fn start_server(g: &Graph, dealer: &str) -> (String, Outcomes) {
    let plan = Arc::new(Plan::compile(g, config()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let outcomes: Outcomes = Arc::default();
    let seen = Arc::clone(&outcomes);
    let options = ServeOptions {
        dealer: dealer.to_string(),
        link: Link::default(),
        timeout: TIMEOUT,
        max_batch: 64,
    };
    std::thread::spawn(move || {
        serve(
            &listener,
            plan,
            "test-model",
            &options,
            Arc::new(move |_: SocketAddr, r: Result<Served, RemoteError>| {
                seen.lock().unwrap().push(r.map_err(|e| e.to_string()));
            }),
        )
    });
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
    fixed::encode(FixedPoint::new(16).unwrap(), &tensor(shape, seed, 1.5)).unwrap()
}

#[test]
fn a_client_gets_the_fixed_executors_logits_over_tcp() {
    let dealer = start_dealer();
    let g = every_op();
    let (server, served) = start_server(&g, &dealer);
    let model = RemoteModel::connect(&server, &dealer, Link::default(), TIMEOUT).unwrap();
    assert_eq!(model.model, "test-model");
    let arch = model.architecture().clone();
    assert_eq!(arch.input_shape, vec![2, 8, 8]);
    let batches = [encode(&[3, 2, 8, 8], 1), encode(&[1, 2, 8, 8], 2)];
    let done = Mutex::new(0);
    let (logits, report) = model
        .run(&batches, &|n| *done.lock().unwrap() += n)
        .unwrap();
    assert_eq!(*done.lock().unwrap(), 4);
    let folded = fold_batchnorm(&g).unwrap();
    for (x, got) in batches.iter().zip(&logits) {
        let want = fixed::run_encoded(&folded, x, &config()).unwrap().ring;
        assert_eq!(got.shape(), want.shape());
        for (a, b) in got.data().iter().zip(want.data()) {
            let diff = (*a as i64 - *b as i64).unsigned_abs();
            assert!(diff < 400, "{diff} units apart");
        }
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
fn compiled_architectures_validate_and_tampered_ones_do_not() {
    for g in [every_op(), with_loose_batchnorm()] {
        Plan::compile(&g, config())
            .unwrap()
            .architecture
            .validate()
            .unwrap();
    }
    let arch = Plan::compile(&every_op(), config()).unwrap().architecture;
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
        assert!(a.validate().is_err(), "tampered architecture {i} passed");
    }
}

#[test]
fn a_server_without_its_dealer_refuses_clearly() {
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (server, served) = start_server(&every_op(), &down);
    let err = RemoteModel::connect(&server, &down, Link::default(), TIMEOUT).unwrap_err();
    assert!(
        matches!(&err, RemoteError::Refused(m) if m.contains("cannot reach the dealer")),
        "{err}"
    );
    let served = outcomes(&served, 1);
    assert!(served[0].as_ref().unwrap_err().contains("dealer"));
}

#[test]
fn a_wrong_input_is_refused_before_any_traffic() {
    let dealer = start_dealer();
    let (server, served) = start_server(&every_op(), &dealer);
    let model = RemoteModel::connect(&server, &dealer, Link::default(), TIMEOUT).unwrap();
    let err = model.run(&[encode(&[1, 3, 8, 8], 1)], &|_| {}).unwrap_err();
    assert!(matches!(err, RemoteError::Architecture(_)), "{err}");
    // The server saw the client leave during the setup.
    let served = outcomes(&served, 1);
    assert!(served[0].is_err());
}

/// Forwards one connection to `to`, cutting both directions once `limit` bytes went from
/// the client to the server.
fn cutting_proxy(to: String, limit: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(to).unwrap();
        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (mut s_read, mut c_write) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        std::thread::spawn(move || std::io::copy(&mut s_read, &mut c_write));
        let mut sent = 0;
        let mut buf = [0u8; 4096];
        while sent < limit {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n.min(limit - sent),
            };
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n;
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    addr
}

#[test]
fn a_client_lost_mid_inference_does_not_stop_the_server() {
    let dealer = start_dealer();
    let (server, served) = start_server(&every_op(), &dealer);
    // Past the handshake (9 bytes), the hello's two empty frames, the setup's opening and the
    // batch size, into the first layer's opening.
    let arch = Plan::compile(&every_op(), config()).unwrap().architecture;
    let limit = 9 + 2 * 8 + (8 + 8 * arch.setup_words()) + 16 + 1000;
    let proxy = cutting_proxy(server.clone(), limit);
    let model = RemoteModel::connect(&proxy, &dealer, Link::default(), TIMEOUT).unwrap();
    let err = model.run(&[encode(&[4, 2, 8, 8], 1)], &|_| {}).unwrap_err();
    assert!(matches!(err, RemoteError::Mpc(_)), "{err}");
    eprintln!("client: {err}");
    let lost = outcomes(&served, 1);
    let lost = lost[0].as_ref().unwrap_err();
    assert!(lost.contains("closed"), "{lost}");
    // The next client is served.
    let model = RemoteModel::connect(&server, &dealer, Link::default(), TIMEOUT).unwrap();
    let (logits, _) = model.run(&[encode(&[1, 2, 8, 8], 3)], &|_| {}).unwrap();
    assert_eq!(logits[0].shape(), &[1, 3]);
    assert!(outcomes(&served, 1)[0].is_ok());
}

#[test]
fn garbage_and_broken_frames_do_not_stop_the_server() {
    let dealer = start_dealer();
    let (server, served) = start_server(&every_op(), &dealer);
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
    // A handshake, then a frame of the wrong length where the hello's empty answer belongs.
    let mut raw = connect();
    raw.write_all(b"PILLAR01\x01").unwrap();
    raw.write_all(&1000u64.to_le_bytes()).unwrap();
    let _ = raw.read_to_end(&mut sink);
    // A handshake, then a truncated frame header and a hang-up.
    let mut raw = connect();
    raw.write_all(b"PILLAR01\x01\x00\x00\x00").unwrap();
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
    let model = RemoteModel::connect(&server, &dealer, Link::default(), TIMEOUT).unwrap();
    let x = encode(&[1, 2, 8, 8], 9);
    let (logits, _) = model.run(std::slice::from_ref(&x), &|_| {}).unwrap();
    let want = fixed::run_encoded(&fold_batchnorm(&every_op()).unwrap(), &x, &config())
        .unwrap()
        .ring;
    for (a, b) in logits[0].data().iter().zip(want.data()) {
        assert!((*a as i64 - *b as i64).unsigned_abs() < 400);
    }
}
