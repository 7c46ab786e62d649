//! The dealer process: sessions over TCP, correlations that hold across the wire, a protocol
//! run on them, and clear refusals of bad requests without taking the dealer down.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use common::{add, mul};
use pillar_mpc::channel::secure::PREAMBLE;
use pillar_mpc::channel::{Admission, Identity, Security, memory_pair};
use pillar_mpc::dealer::remote::{
    DealerLinks, DealerService, OpenedSession, ServiceConfig, SessionId, join_session, open_session,
};
use pillar_mpc::dealer::{Dealer, DealerError, Need, SeededDealer, WeightMasks};
use pillar_mpc::protocols::{arith, beaver};
use pillar_mpc::{FixedPoint, Party, RingTensor, Session, Share};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Links of the dealer, a server and a client, each pinning the others' keys.
struct Keys {
    dealer: DealerLinks,
    server: Security,
    client: Security,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let (d, s, c) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    let (dk, sk, ck) = (d.public(), s.public(), c.public());
    Keys {
        dealer: DealerLinks::Noise {
            identity: Arc::new(d),
            servers: Arc::new(vec![sk]),
            clients: Arc::new(vec![ck]),
        },
        server: Security::noise(s, vec![dk]),
        client: Security::noise(c, vec![dk]),
    }
});

/// The weight masks of the tests' server: one of 6 elements (a 3 x 2 matrix), one of 60 x 60
/// and one of 64 x 64.
static MASKS: LazyLock<Arc<WeightMasks>> =
    LazyLock::new(|| Arc::new(WeightMasks::from_seed(1, vec![6, 60 * 60, 64 * 64])));

/// A dealer on a free loopback port, serving in the background; returns its address.
fn start(config: ServiceConfig) -> (String, Arc<DealerService>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = Arc::new(DealerService::new(config, KEYS.dealer.clone()));
    let serving = Arc::clone(&service);
    std::thread::spawn(move || serving.serve(&listener));
    (addr, service)
}

/// A session opened by the trusted server: its id and the server's dealer.
fn session(addr: &str) -> (SessionId, SeededDealer) {
    let OpenedSession { id, dealer, .. } =
        open_session(addr, &KEYS.server, TIMEOUT, &MASKS).unwrap();
    (id, dealer)
}

/// The dealer at `addr` serves a fresh session a correct Beaver triple.
fn serves_a_session(addr: &str) {
    let (id, mut d0) = session(addr);
    let mut d1 = join_session(addr, id, &KEYS.client, TIMEOUT).unwrap();
    let need = Need::Beaver { n: 100 };
    let (p, q) = (d0.generate(&need).unwrap(), d1.generate(&need).unwrap());
    let (a, b) = (add(&p[..100], &q[..100]), add(&p[100..200], &q[100..200]));
    assert_eq!(add(&p[200..], &q[200..]), mul(&a, &b));
}

fn matmul(m: usize, k: usize, n: usize, a: &[u64], b: &[u64]) -> Vec<u64> {
    pillar_mpc::kernels::matmul(m, k, n, a, b)
}

#[test]
fn correlations_hold_across_the_wire() {
    let (addr, service) = start(ServiceConfig::default());
    let (id, mut d0) = session(&addr);
    assert_eq!(service.pending(), 1);
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    assert_eq!(service.pending(), 0);
    assert_eq!((d0.party(), d1.party()), (Party::Server, Party::Client));

    let announced = [
        Need::Beaver { n: 5 },
        Need::Matmul { m: 2, k: 3, n: 2 },
        Need::MaskedMatmul {
            m: 4,
            k: 3,
            n: 2,
            mask: 0,
        },
    ];
    d1.announce(&announced).unwrap();
    let mut shares = Vec::new();
    for need in &announced {
        shares.push((d0.generate(need).unwrap(), d1.generate(need).unwrap()));
    }
    // One the client did not announce: fetched on demand.
    let square = Need::Square { n: 7 };
    let (p, q) = (d0.generate(&square).unwrap(), d1.generate(&square).unwrap());
    let a = add(&p[..7], &q[..7]);
    assert_eq!(add(&p[7..], &q[7..]), mul(&a, &a));

    let mask = MASKS.words(0).unwrap();
    let (p, q) = &shares[0];
    let (a, b) = (add(&p[..5], &q[..5]), add(&p[5..10], &q[5..10]));
    assert_eq!(add(&p[10..], &q[10..]), mul(&a, &b));
    let (p, q) = &shares[1];
    let (a, b) = (add(&p[..6], &q[..6]), add(&p[6..12], &q[6..12]));
    assert_eq!(add(&p[12..], &q[12..]), matmul(2, 3, 2, &a, &b));
    let (p, q) = &shares[2];
    let a = add(&p[..12], &q[..12]);
    assert_eq!(add(&p[12..], &q[12..]), matmul(4, 3, 2, &a, &mask));
}

#[test]
fn a_protocol_runs_on_remote_dealers() {
    let (addr, _service) = start(ServiceConfig::default());
    let (id, d0) = session(&addr);
    let d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    let (c0, c1) = memory_pair(TIMEOUT);
    let fp = FixedPoint::default();
    let x: Vec<f64> = (0..40).map(|i| f64::from(i) / 8.0 - 2.5).collect();
    let y: Vec<f64> = (0..40).map(|i| 1.5 - f64::from(i) / 16.0).collect();
    let tx = RingTensor::encode(fp, vec![40], &x).unwrap();
    let ty = RingTensor::encode(fp, vec![40], &y).unwrap();
    let party = |s: &mut Session| {
        // Client holds x, server y, each shared as (v, 0) / (0, v).
        let zero = RingTensor::zeros(vec![40]).unwrap();
        let (sx, sy) = if s.party().is_server() {
            (Share::new(zero), Share::new(ty.clone()))
        } else {
            (Share::new(tx.clone()), Share::new(zero))
        };
        s.prefetch(&beaver::mul_needs(40)).unwrap();
        let z = beaver::mul(s, &sx, &sy).unwrap();
        arith::reveal(s, &z).unwrap()
    };
    let mut s0 = Session::new(Party::Server, fp, c0, d0).unwrap();
    let mut s1 = Session::new(Party::Client, fp, c1, d1).unwrap();
    let (z0, z1) = std::thread::scope(|scope| {
        let h = scope.spawn(|| party(&mut s1));
        (party(&mut s0), h.join().unwrap())
    });
    assert_eq!(z0, z1);
    for ((a, b), z) in x.iter().zip(&y).zip(z0.decode(fp)) {
        assert!((a * b - z).abs() < 1e-3, "{a} * {b} gave {z}");
    }
}

#[test]
fn sessions_are_joined_once_and_unknown_ones_refused() {
    let (addr, _service) = start(ServiceConfig::default());
    let unknown: SessionId = "00112233445566778899aabbccddeeff".parse().unwrap();
    let err = join_session(&addr, unknown, &KEYS.client, TIMEOUT).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("no session 00112233")),
        "{err}"
    );
    let (id, _d0) = session(&addr);
    assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
    join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    let err = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap_err();
    assert!(matches!(err, DealerError::Refused(_)), "{err}");
    assert!("xyz".parse::<SessionId>().is_err());
    assert!(
        "0011223344556677889900aabbccddeeffzz"
            .parse::<SessionId>()
            .is_err()
    );
}

#[test]
fn sessions_expire() {
    let (addr, service) = start(ServiceConfig {
        expiry: Duration::from_millis(1),
        ..ServiceConfig::default()
    });
    let (id, _d0) = session(&addr);
    std::thread::sleep(Duration::from_millis(20));
    assert!(join_session(&addr, id, &KEYS.client, TIMEOUT).is_err());
    // Opening another session sweeps the expired ones.
    let (_id, _d0) = session(&addr);
    assert_eq!(service.pending(), 1);
}

#[test]
fn a_dealer_that_is_down_is_a_clear_error_at_once() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let err = open_session(&addr, &KEYS.server, TIMEOUT, &MASKS).unwrap_err();
    assert!(start.elapsed() < TIMEOUT);
    assert!(
        matches!(&err, DealerError::Unavailable { what, .. } if what.contains("cannot reach the dealer at 127.0.0.1")),
        "{err}"
    );
    assert!(open_session("no-such-host.invalid:1", &KEYS.server, TIMEOUT, &MASKS).is_err());
}

#[test]
fn bad_requests_are_refused_and_the_dealer_keeps_serving() {
    let (addr, _service) = start(ServiceConfig {
        max_need_words: 1 << 20,
        ..ServiceConfig::default()
    });
    // Not a pillar peer at all.
    let mut raw = TcpStream::connect(&addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    raw.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = raw.read_to_end(&mut buf);
    assert!(buf.is_empty(), "the dealer answered a stranger: {buf:?}");

    // A client asking for more than the dealer serves gets the reason.
    let (id, _d0) = session(&addr);
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    let err = d1.generate(&Need::Beaver { n: 1 << 20 }).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("beyond the limit")),
        "{err}"
    );
    // Sizes whose products would overflow are refused before anything is allocated.
    let err = d1
        .generate(&Need::Matmul {
            m: usize::MAX / 2,
            k: 3,
            n: 3,
        })
        .unwrap_err();
    assert!(matches!(err, DealerError::Need { .. }), "{err}");
    // A mask the server does not have (even though it committed to the product).
    let (id, mut d0) = session(&addr);
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    let need = Need::MaskedScale {
        n: 4,
        channels: 2,
        inner: 2,
        mask: 3,
    };
    d0.generate(&need).unwrap();
    let err = d1.generate(&need).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("weight mask 3")),
        "{err}"
    );
    // And still serves a well-formed session.
    serves_a_session(&addr);
}

#[test]
fn a_client_asking_out_of_order_is_stopped() {
    let (addr, _service) = start(ServiceConfig::default());
    let (id, _d0) = session(&addr);
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    d1.announce(&[Need::Beaver { n: 2 }]).unwrap();
    let err = d1.generate(&Need::Square { n: 2 }).unwrap_err();
    assert!(matches!(err, DealerError::Mismatch { .. }), "{err}");
}

#[test]
fn the_dealer_serves_only_the_parties_it_trusts() {
    let (addr, service) = start(ServiceConfig::default());
    // A server whose key the dealer does not know gets no session, and hears why.
    let stranger = Identity::generate();
    let stranger_key = stranger.public().to_string();
    let dealer_key = match &KEYS.dealer {
        DealerLinks::Noise { identity, .. } => identity.public(),
        DealerLinks::Plaintext => unreachable!(),
    };
    let security = Security::noise(stranger, vec![dealer_key]);
    let err = open_session(&addr, &security, TIMEOUT, &MASKS).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("refused") && message.contains(&stranger_key),
        "{message}"
    );
    assert_eq!(service.pending(), 0);
    // A party that pins another key for the dealer stops before sending anything.
    let impostor = Identity::generate().public();
    let security = Security::noise(Identity::generate(), vec![impostor]);
    let err = open_session(&addr, &security, TIMEOUT, &MASKS).unwrap_err();
    assert!(
        err.to_string().contains("not among the keys trusted"),
        "{err}"
    );
    // Plaintext is refused with the reason.
    let err = open_session(&addr, &Security::Plaintext, TIMEOUT, &MASKS).unwrap_err();
    assert!(err.to_string().contains("requires Noise"), "{err}");
    assert_eq!(service.pending(), 0);
    // The trusted parties are served.
    let (id, mut d0) = session(&addr);
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    let need = Need::Square { n: 2 };
    let (p, q) = (d0.generate(&need).unwrap(), d1.generate(&need).unwrap());
    let a = add(&p[..2], &q[..2]);
    assert_eq!(add(&p[2..], &q[2..]), mul(&a, &a));
}

#[test]
fn a_client_gets_only_what_its_server_committed_to_and_the_server_hears_of_a_deviation() {
    let (addr, _service) = start(ServiceConfig {
        timeout: Duration::from_millis(300),
        ..ServiceConfig::default()
    });
    let OpenedSession {
        id,
        dealer: mut d0,
        mut watch,
    } = open_session(&addr, &KEYS.server, TIMEOUT, &MASKS).unwrap();
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    // In step: served, whichever side asks first.
    let mask = Need::Square { n: 8 };
    d0.announce(std::slice::from_ref(&mask)).unwrap();
    d1.generate(&mask).unwrap();
    d0.generate(&mask).unwrap();
    assert!(watch.verdict(Duration::ZERO).is_none());
    // A client ahead of its server waits for the commitment, and without one is refused.
    let err = d1.generate(&Need::Beaver { n: 2 }).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("committed to no correlation 1")),
        "{err}"
    );
    // Another session: the server draws a triple, the client asks for bits in its place.
    let OpenedSession {
        id,
        dealer: mut d0,
        mut watch,
    } = open_session(&addr, &KEYS.server, TIMEOUT, &MASKS).unwrap();
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    d0.generate(&Need::Beaver { n: 8 }).unwrap();
    let err = d1.generate(&Need::Bit { n: 4 }).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("not what the server committed to")),
        "{err}"
    );
    let told = watch.verdict(TIMEOUT).expect("the dealer told the server");
    assert!(
        matches!(&told, DealerError::ClientDeviated(m) if m.contains("Bit { n: 4 }") && m.contains("Beaver { n: 8 }")),
        "{told}"
    );
}

#[test]
fn roles_are_bound_to_keys() {
    let (addr, service) = start(ServiceConfig::default());
    // The client's key cannot open a session (it would get a server's seed) ...
    let err = open_session(&addr, &KEYS.client, TIMEOUT, &MASKS).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("not trusted as a server's")),
        "{err}"
    );
    assert_eq!(service.pending(), 0);
    // ... nor the server's join one (it would get the client's corrections).
    let (id, _d0) = session(&addr);
    let err = join_session(&addr, id, &KEYS.server, TIMEOUT).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("not trusted as a client's")),
        "{err}"
    );
    assert_eq!(
        service.pending(),
        1,
        "a refused join leaves the session to its client"
    );
    join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
}

#[test]
fn a_session_holds_at_most_its_memory_budget() {
    let (addr, _service) = start(ServiceConfig {
        max_session_words: 1 << 12,
        timeout: Duration::from_millis(300),
        ..ServiceConfig::default()
    });
    // A product against a weight mask holds the mask it regenerates while it is computed:
    // against the 60 x 60 mask, 3600 words and 240 of the triple (120 of party 0's, 60 of
    // party 1's, a correction of 60) fit in 4096; against the 64 x 64 one, 4352 do not.
    let (id, mut d0) = session(&addr);
    let mut d1 = join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
    let fits = Need::MaskedMatmul {
        m: 1,
        k: 60,
        n: 60,
        mask: 1,
    };
    let beyond = Need::MaskedMatmul {
        m: 1,
        k: 64,
        n: 64,
        mask: 2,
    };
    let needs = [fits.clone(), beyond.clone()];
    d0.announce(&needs).unwrap();
    d1.announce(&needs).unwrap();
    d0.generate(&fits).unwrap();
    d1.generate(&fits).unwrap();
    d0.generate(&beyond).unwrap();
    let err = d1.generate(&beyond).unwrap_err();
    assert!(
        matches!(&err, DealerError::Refused(m) if m.contains("would hold 4352 words") && m.contains("a session may hold 4096")),
        "{err}"
    );
    // The dealer goes on serving other sessions.
    serves_a_session(&addr);
}

#[test]
fn a_stranger_trickling_its_handshake_is_cut_at_the_deadline() {
    let (addr, _service) = start(ServiceConfig {
        admission: Admission {
            handshake: Duration::from_secs(1),
            ..Admission::default()
        },
        ..ServiceConfig::default()
    });
    // The preamble of an encrypted dealer link, the length of the largest Noise message,
    // then a byte of it every 300 ms: each in time for any per-read timeout.
    let stranger = TcpStream::connect(&addr).unwrap();
    let mut writer = stranger.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut bytes = PREAMBLE.to_vec();
        bytes.extend([3, 0xff, 0xff]);
        for b in bytes.into_iter().chain(std::iter::repeat(0)) {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // The dealer answers the preamble, then cuts the stranger off.
    let mut stranger = stranger;
    stranger.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut heard = Vec::new();
    match stranger.read_to_end(&mut heard) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // The trusted parties are served.
    let (id, _d0) = session(&addr);
    join_session(&addr, id, &KEYS.client, TIMEOUT).unwrap();
}
