//! The server's hello shows the client the public architecture and nothing of the model's
//! making: no node names of its graph (nor its file name, which the server is no longer
//! given), which can say what the model is, who made it or how.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pillar_infer::cluster;
use pillar_infer::remote::{Links, RemoteError, RemoteModel, ServeOptions, Served};
use pillar_infer::{FixedConfig, Plan};
use pillar_mpc::channel::{Admission, Channel, Link, Security, TcpChannel};
use pillar_mpc::dealer::remote::{DealerLinks, ServiceConfig};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::{FixedPoint, Party};
use pillar_nn::testing::{conv, fold, linear, pillar_poly, tensor};
use pillar_nn::{Graph, Op, Pool};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Node names no serialisation would produce by chance.
const NAMES: [&str; 6] = [
    "zanzibar_stem_conv",
    "quokka_activation",
    "okapi_pooling",
    "narwhal_second_conv",
    "axolotl_flatten",
    "pangolin_classifier",
];

fn distinctive() -> Graph {
    let mut g = Graph::new(vec![1, 8, 8]);
    g.chain(NAMES[0], conv(3, 1, 3, 1, 1, 3));
    g.chain(NAMES[1], pillar_poly());
    g.chain(NAMES[2], Op::AvgPool(Pool::new(2, 2)));
    g.chain(NAMES[3], conv(4, 3, 3, 1, 1, 5));
    g.chain(NAMES[4], Op::Flatten);
    g.chain(NAMES[5], linear(3, 64, 7, true));
    g
}

/// A plaintext dealer and a server of `plan`: the server's address and the dealer's. (The
/// server was once given the model's file name to send; it no longer takes it.)
fn serve(plan: &Arc<Plan>) -> (String, String) {
    let dealer = cluster::start_dealer(DealerLinks::Plaintext, ServiceConfig::default()).unwrap();
    let options = ServeOptions {
        dealer: dealer.clone(),
        link: Link::default(),
        timeout: TIMEOUT,
        max_batch: 4,
        max_clients: 4,
        max_active: 0,
        admission: Admission::default(),
        security: Links::plaintext(),
    };
    let done = Arc::new(|_: SocketAddr, _: Result<Served, RemoteError>| {});
    let server = cluster::start_server(Arc::clone(plan), options, done).unwrap();
    (server, dealer)
}

fn plan() -> Arc<Plan> {
    let config = FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::HoneyBadger,
        ..FixedConfig::default()
    };
    Arc::new(Plan::compile(&fold(&distinctive()), config).unwrap())
}

#[test]
fn the_hello_names_no_node() {
    let (server, _) = serve(&plan());
    let mut channel =
        TcpChannel::connect(&server, Party::Client, &Security::Plaintext, TIMEOUT).unwrap();
    let hello = channel.recv_message("server's hello", 16 << 20).unwrap();
    let text = String::from_utf8_lossy(&hello);
    assert!(text.contains("Ready"), "{text}");
    for name in NAMES {
        assert!(!text.contains(name), "the hello shows {name:?}: {text}");
    }
}

#[test]
fn a_client_without_the_names_gets_the_right_logits() {
    let plan = plan();
    let (server, dealer) = serve(&plan);
    let model = RemoteModel::connect(
        &server,
        &dealer,
        Link::default(),
        &Links::plaintext(),
        TIMEOUT,
    )
    .unwrap();
    let fp = FixedPoint::new(16).unwrap();
    let x = pillar_infer::mirror::encode(fp, &tensor(&[1, 1, 8, 8], 9, 1.0)).unwrap();
    let (logits, _) = model.run(std::slice::from_ref(&x), &|_| {}).unwrap();
    let want = pillar_infer::mirror::run_plan(&plan, &x).unwrap().ring;
    for (a, b) in logits[0].data().iter().zip(want.data()) {
        let diff = (*a as i64).wrapping_sub(*b as i64).unsigned_abs();
        assert!(diff < 400, "{diff} units apart");
    }
}
