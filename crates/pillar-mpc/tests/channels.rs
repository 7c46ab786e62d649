//! Transports: TCP framing in plaintext and inside Noise, the handshake, and every way a peer
//! can misbehave ending in an error rather than a panic or a hang. The emulator's delay is checked from below only.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use pillar_mpc::channel::secure::PREAMBLE;
use pillar_mpc::channel::{
    Channel, ChannelError, Emulated, Identity, Link, PublicKey, Security, TcpChannel, memory_pair,
};
use pillar_mpc::protocols::arith::reveal;
use pillar_mpc::protocols::poly::espn;
use pillar_mpc::protocols::relu;
use pillar_mpc::testing::input;
use pillar_mpc::wire::{self, Greeting, Kind};
use pillar_mpc::{FixedPoint, Local, Party, RingTensor, Session, Transport, dealer::TrustedDealer};

const T: Duration = Duration::from_secs(5);

/// A hand-made plaintext client that has sent its preamble and greeting, and read the
/// server's.
fn raw_client(addr: std::net::SocketAddr, read_hello: bool) -> TcpStream {
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(PREAMBLE).unwrap();
    raw.write_all(&[0]).unwrap();
    let greeting = Greeting {
        party: Party::Client,
    };
    raw.write_all(&wire::message_frame(&greeting).unwrap())
        .unwrap();
    if read_hello {
        let mut preamble = [0u8; 8];
        raw.read_exact(&mut preamble).unwrap();
        let mut header = [0u8; wire::HEADER];
        raw.read_exact(&mut header).unwrap();
        let len = u32::from_le_bytes(header[4..].try_into().unwrap());
        raw.read_exact(&mut vec![0u8; len as usize]).unwrap();
    }
    raw
}

/// Securities of a server and a client that trust each other: Noise, or both plaintext.
fn securities(noise: bool) -> (Security, Security) {
    if !noise {
        return (Security::Plaintext, Security::Plaintext);
    }
    let (s, c) = (Identity::generate(), Identity::generate());
    let (sk, ck) = (s.public(), c.public());
    (Security::noise(s, vec![ck]), Security::noise(c, vec![sk]))
}

fn tcp_pair_with(noise: bool) -> (TcpChannel, TcpChannel) {
    let (server, client) = securities(noise);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| TcpChannel::accept(&listener, Party::Server, &server, T).unwrap());
        let client = TcpChannel::connect(addr, Party::Client, &client, T).unwrap();
        (h.join().unwrap(), client)
    })
}

fn tcp_pair() -> (TcpChannel, TcpChannel) {
    tcp_pair_with(false)
}

/// Runs `peer` against a server accepting on loopback with `timeout`, and returns what
/// `server` made of the connection.
fn against_raw_peer<R>(
    timeout: Duration,
    peer: impl FnOnce(std::net::SocketAddr) + Send,
    server: impl FnOnce(Result<TcpChannel, ChannelError>) -> R,
) -> R {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || peer(addr));
        server(TcpChannel::accept(
            &listener,
            Party::Server,
            &Security::Plaintext,
            timeout,
        ))
    })
}

#[test]
fn tcp_exchanges_small_and_large_frames_both_ways_in_plaintext_and_noise() {
    for noise in [false, true] {
        exchanges_small_and_large_frames(noise);
    }
}

fn exchanges_small_and_large_frames(noise: bool) {
    let (mut a, mut b) = tcp_pair_with(noise);
    assert_eq!(a.peer().is_some(), noise);
    assert_eq!(b.peer().is_some(), noise);
    for n in [0usize, 1, 3, 5000, 8191, 8192, 1 << 20] {
        let xa: Vec<u64> = (0..n as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let xb: Vec<u64> = (0..n as u64).map(|i| !i).collect();
        let (ra, rb) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut r = vec![0; n];
                b.exchange(&xb, &mut r).unwrap();
                r
            });
            let mut r = vec![0; n];
            a.exchange(&xa, &mut r).unwrap();
            (r, h.join().unwrap())
        });
        assert_eq!(ra, xb);
        assert_eq!(rb, xa);
    }
    let st = a.stats();
    assert_eq!(st.rounds, 7);
    assert_eq!(st.bytes_sent, 8 * (1 + 3 + 5000 + 8191 + 8192 + (1 << 20)));
    assert_eq!(st.bytes_sent, st.bytes_received);
}

#[test]
fn a_protocol_runs_over_noise() {
    let (c0, c1) = tcp_pair_with(true);
    let (d0, d1) = TrustedDealer::pair_from_seed(9);
    let fp = FixedPoint::default();
    let xs = [-2.0, -0.5, 0.0, 1.25, 3.0];
    let x = RingTensor::encode(fp, vec![5], &xs).unwrap();
    let coeffs = [0.25, 0.5, 0.125, 0.0, -0.00390625];
    let work = |mut s: Session| {
        let sh = input(&mut s, Party::Client, &x)?;
        let y = espn::evaluate(&mut s, &sh, &coeffs)?;
        reveal(&mut s, &y)
    };
    let (y0, y1) = std::thread::scope(|sc| {
        let s1 = Session::new(Party::Client, fp, c1, d1).unwrap();
        let h = sc.spawn(move || work(s1));
        let y0 = work(Session::new(Party::Server, fp, c0, d0).unwrap()).unwrap();
        (y0, h.join().unwrap().unwrap())
    });
    assert_eq!(y0, y1);
    for (got, x) in y0.decode(fp).iter().zip(xs) {
        let want = coeffs.iter().rev().fold(0.0, |acc, c| acc * x + c);
        assert!((got - want).abs() < 0.01, "{got} vs {want}");
    }
}

#[test]
fn local_parties_over_loopback_tcp_compute_an_exact_relu() {
    let x = RingTensor::from_vec(
        [-5i64, 0, 7, i64::MIN, i64::MAX, -1]
            .iter()
            .map(|&v| v as u64)
            .collect(),
    );
    for transport in [Transport::Tcp, Transport::Noise] {
        exact_relu_over(transport, &x);
    }
}

fn exact_relu_over(transport: Transport, x: &RingTensor) {
    let local = Local {
        transport,
        ..Local::seeded(4)
    };
    let [a, b] = local
        .run(|s| {
            let sh = input(s, Party::Client, x)?;
            let y = relu::relu(s, &sh)?;
            reveal(s, &y)
        })
        .unwrap();
    assert_eq!(a, b);
    let got: Vec<i64> = a.data().iter().map(|&v| v as i64).collect();
    assert_eq!(got, vec![0, 0, 7, 0, i64::MAX, 0]);
}

#[test]
fn wrong_frame_length_is_an_error() {
    let (mut a, mut b) = tcp_pair();
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            let mut r = vec![0; 2];
            let _ = b.exchange(&[1, 2, 3], &mut r);
        });
        let mut r = vec![0; 2];
        a.exchange(&[1, 2], &mut r).unwrap_err()
    });
    assert!(
        matches!(
            err,
            ChannelError::FrameLength {
                expected: 2,
                got: 3
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("3 ring words"));
}

#[test]
fn a_peer_that_closes_mid_frame_or_before_is_an_error() {
    let err = against_raw_peer(
        T,
        |addr| {
            // A peer that handshakes, announces 4 words, sends 1 and disappears.
            let mut raw = raw_client(addr, true);
            raw.write_all(&wire::header(Kind::Words, 4)).unwrap();
            raw.write_all(&7u64.to_le_bytes()).unwrap();
        },
        |server| server.unwrap().exchange(&[0; 4], &mut [0; 4]).unwrap_err(),
    );
    assert!(matches!(err, ChannelError::Closed), "{err}");
    let (c0, c1) = memory_pair(T);
    drop(c1);
    let mut c0 = c0;
    let err = c0.exchange(&[1], &mut [0]).unwrap_err();
    assert!(matches!(err, ChannelError::Closed), "{err}");
}

#[test]
fn a_silent_peer_times_out() {
    let (mut a, _b) = memory_pair(Duration::from_millis(50));
    let err = a.exchange(&[1], &mut [0]).unwrap_err();
    assert!(matches!(err, ChannelError::Timeout(_)), "{err}");

    let err = against_raw_peer(
        Duration::from_millis(200),
        |addr| {
            let _raw = raw_client(addr, false);
            std::thread::sleep(Duration::from_millis(600));
        },
        |server| server.unwrap().exchange(&[1], &mut [0]).unwrap_err(),
    );
    assert!(matches!(err, ChannelError::Timeout(_)), "{err}");
}

#[test]
fn the_handshake_rejects_strangers_and_same_roles() {
    let err = against_raw_peer(
        T,
        |addr| {
            let mut raw = TcpStream::connect(addr).unwrap();
            let _ = raw.write_all(b"GET / HTTP/1.1\r\n\r\n");
        },
        |server| server.unwrap_err(),
    );
    assert!(err.to_string().contains("not a pillar"), "{err}");
    let err = against_raw_peer(
        T,
        |addr| {
            let _ = TcpChannel::connect(addr, Party::Server, &Security::Plaintext, T);
        },
        |server| server.unwrap_err(),
    );
    assert!(err.to_string().contains("both ends claim"), "{err}");
}

#[test]
fn the_emulator_delays_each_round_by_at_least_the_one_way_latency() {
    let (a, b) = memory_pair(T);
    let link = Link::new(40.0, Some(8.0));
    let (mut a, mut b) = (Emulated::new(a, link), Emulated::new(b, link));
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..3 {
                b.exchange(&[0; 1000], &mut [0; 1000]).unwrap();
            }
        });
        for _ in 0..3 {
            a.exchange(&[0; 1000], &mut [0; 1000]).unwrap();
        }
    });
    // 3 rounds of 20 ms one way plus 8000 bytes at 8 Mbit/s (8 ms) each.
    assert!(start.elapsed() >= Duration::from_millis(3 * 28));
    assert_eq!(a.stats().rounds, 3);
    assert_eq!(link.delay(8000), Duration::from_millis(28));
}

/// An attacker's Noise keys: every key it shows is the all-zero point, and every
/// Diffie-Hellman it computes is all zeros, which is what its peer computes too (a point of
/// low order times anything is zero). It needs no secret at all.
mod zero_keys {
    use snow::params::{CipherChoice, DHChoice, HashChoice};
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    use snow::types::{Cipher, Dh, Hash, Random};

    pub(crate) struct Zeros;

    struct ZeroDh([u8; 32]);

    impl Dh for ZeroDh {
        fn name(&self) -> &'static str {
            "25519"
        }
        fn pub_len(&self) -> usize {
            32
        }
        fn priv_len(&self) -> usize {
            32
        }
        fn set(&mut self, _: &[u8]) {}
        fn generate(&mut self, _: &mut dyn Random) -> Result<(), snow::Error> {
            Ok(())
        }
        fn pubkey(&self) -> &[u8] {
            &self.0
        }
        fn privkey(&self) -> &[u8] {
            &self.0
        }
        fn dh(&self, _: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
            out[..32].fill(0);
            Ok(())
        }
    }

    impl CryptoResolver for Zeros {
        fn resolve_rng(&self) -> Option<Box<dyn Random>> {
            DefaultResolver.resolve_rng()
        }
        fn resolve_dh(&self, _: &DHChoice) -> Option<Box<dyn Dh>> {
            Some(Box::new(ZeroDh([0; 32])))
        }
        fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
            DefaultResolver.resolve_hash(choice)
        }
        fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
            DefaultResolver.resolve_cipher(choice)
        }
    }
}

/// Plays a client whose static key is the all-zero point against the server at `addr`: the
/// preamble, the Noise handshake with [`zero_keys::Zeros`], then its verdict and greeting,
/// as pillar's own client sends them.
fn zero_key_client(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut raw = TcpStream::connect(addr)?;
    raw.set_read_timeout(Some(T))?;
    raw.write_all(PREAMBLE)?;
    raw.write_all(&[1])?;
    raw.read_exact(&mut [0u8; 8])?;
    let params = "Noise_XX_25519_AESGCM_SHA256".parse()?;
    let mut hs = snow::Builder::with_resolver(params, Box::new(zero_keys::Zeros))
        .local_private_key(&[0; 32])?
        .prologue(b"pillar/1 parties")?
        .build_initiator()?;
    let (mut message, mut payload) = (vec![0u8; 65_535], vec![0u8; 65_535]);
    while !hs.is_handshake_finished() {
        if hs.is_my_turn() {
            let len = hs.write_message(&[], &mut message)?;
            raw.write_all(&(len as u16).to_be_bytes())?;
            raw.write_all(&message[..len])?;
        } else {
            let mut len = [0u8; 2];
            raw.read_exact(&mut len)?;
            let len = usize::from(u16::from_be_bytes(len));
            raw.read_exact(&mut message[..len])?;
            hs.read_message(&message[..len], &mut payload)?;
        }
    }
    let state = hs.into_stateless_transport_mode()?;
    let greeting = wire::message_frame(&Greeting {
        party: Party::Client,
    })?;
    for (nonce, plain) in [vec![1u8], greeting].iter().enumerate() {
        let len = state.write_message(nonce as u64, plain, &mut message)?;
        raw.write_all(&(len as u16).to_be_bytes())?;
        raw.write_all(&message[..len])?;
    }
    let _ = raw.read(&mut [0u8; 1]);
    Ok(())
}

#[test]
fn a_low_order_key_cannot_be_trusted_nor_used_to_get_in() {
    // An operator's trust file, edited to hold the all-zero key next to a real client's.
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("client.pub");
    std::fs::write(&edited, format!("pillar-public-key {}\n", "00".repeat(32))).unwrap();
    let loaded = PublicKey::load(edited.to_str().unwrap());
    let mut trusted = vec![Identity::generate().public()];
    trusted.extend(loaded.as_ref().ok().copied());
    // The attacker, who holds no secret, tries the server that loaded it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let security = Security::noise(Identity::generate(), trusted);
    let accepted = std::thread::scope(|s| {
        s.spawn(move || zero_key_client(addr).map_err(|e| e.to_string()));
        TcpChannel::accept(&listener, Party::Server, &security, T)
    });
    let refused = match accepted {
        Ok(channel) => panic!("the all-zero key got in as {:?}", channel.peer()),
        Err(e) => e.to_string(),
    };
    // The loader kept the zero key out of `trusted`, but the refusal is the handshake's own:
    // its Diffie-Hellman with a low-order key comes out all zeros, before any trust check.
    assert!(refused.contains("low order"), "{refused}");
    // The edited file itself is refused, saying why.
    let err = loaded.unwrap_err().to_string();
    assert!(err.contains("low order"), "{err}");
}
