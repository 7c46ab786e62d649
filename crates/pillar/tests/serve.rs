//! `pillar dealer`, `pillar serve` and `pillar infer` as three processes over TCP with keys
//! from `pillar keygen`, as a user runs them: the client's classes are the fixed-point
//! executor's, images from files and from the data set agree, a stranger's key is turned
//! away, and every failure is a clear error.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command as Process;

mod common;

use assert_cmd::Command;
use common::{Service, pillar, start, start_process};
use pillar_infer::FixedConfig;
use pillar_infer::mirror;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_nn::Tensor;
use pillar_train::data::{DataSet, DatasetKind};
use predicates::prelude::*;
use predicates::str::contains;

/// Starts `pillar ARGS` allowed `files` open files at most (`ulimit -n`).
#[cfg(unix)]
fn start_with_file_limit(files: u32, args: &[&str]) -> Service {
    let mut sh = Process::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(assert_cmd::cargo::cargo_bin!("pillar"));
    start_process(sh, args)
}

/// `pillar serve` for `model` on a free port, with `extra` flags.
fn start_server(model: &Path, dealer: &str, extra: &[&str]) -> Service {
    let model = model.to_str().unwrap();
    let args = [
        "serve",
        "--model",
        model,
        "--listen",
        "127.0.0.1:0",
        "--dealer",
        dealer,
    ];
    start(&[&args[..], extra].concat())
}

fn train(out: &Path) {
    pillar()
        .args([
            "train", "--model", "convnet", "--epochs", "1", "--limit", "300", "--out",
        ])
        .arg(out)
        .assert()
        .success();
}

/// Key pairs from `pillar keygen` for a dealer, a server and a client, and each one's flags.
struct Keys {
    dealer: Vec<String>,
    server: Vec<String>,
    client: Vec<String>,
}

impl Keys {
    fn new(dir: &Path) -> Keys {
        let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
        for who in ["dealer", "server", "client"] {
            let out = pillar()
                .args(["keygen", "--out"])
                .arg(dir.join(who))
                .assert()
                .success();
            let printed = String::from_utf8_lossy(&out.get_output().stdout)
                .trim()
                .to_string();
            let public = std::fs::read_to_string(file(&format!("{who}.pub"))).unwrap();
            assert!(public.contains(&printed), "{printed} vs {public}");
        }
        let flags = |args: &[&str]| -> Vec<String> {
            args.iter()
                .map(|a| match a.strip_prefix('@') {
                    Some(name) => file(name),
                    None => a.to_string(),
                })
                .collect()
        };
        Keys {
            dealer: flags(&[
                "--key",
                "@dealer.key",
                "--trust-server",
                "@server.pub",
                "--trust-client",
                "@client.pub",
            ]),
            server: flags(&[
                "--key",
                "@server.key",
                "--trust",
                "@client.pub",
                "--dealer-key",
                "@dealer.pub",
            ]),
            client: flags(&[
                "--key",
                "@client.key",
                "--trust",
                "@server.pub",
                "--dealer-key",
                "@dealer.pub",
            ]),
        }
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `pillar serve --model MODEL`, which must fail before it listens.
fn serve_refuses(model: &Path, dealer: &str) -> assert_cmd::assert::Assert {
    pillar()
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--dealer",
            dealer,
        ])
        .args(["--listen", "127.0.0.1:0", "--insecure-plaintext"])
        .assert()
        .failure()
        .stdout(predicates::str::is_empty())
}

/// `pillar infer` against `server` and `dealer` with the key flags `keys`.
fn infer(server: &str, dealer: &str, keys: &[String]) -> Command {
    let mut cmd = pillar();
    cmd.args(["infer", "--connect", server, "--dealer", dealer])
        .args(keys);
    cmd
}

/// Runs `pillar infer ... ARGS --json`, which must succeed.
fn infer_json(server: &str, dealer: &str, keys: &[String], args: &[&str]) -> serde_json::Value {
    let base = ["infer", "--connect", server, "--dealer", dealer];
    common::json(&[&base[..], &strs(keys), args].concat())
}

#[test]
fn three_processes_classify_as_the_fixed_executor_does() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let model = dir.path().join("model.onnx");
    let keys = Keys::new(dir.path());
    let dealer = start(
        &[
            &["dealer", "--listen", "127.0.0.1:0"][..],
            &strs(&keys.dealer),
        ]
        .concat(),
    );
    let server = start_server(
        &model,
        &dealer.addr,
        &[&["--protocol", "espn"][..], &strs(&keys.server)].concat(),
    );
    let indices = [0usize, 1, 2, 3, 4];
    let report = infer_json(
        &server.addr,
        &dealer.addr,
        &keys.client,
        &["--index", "0,1,2,3,4", "--batch", "2", "--top-k", "10"],
    );
    for key in [
        "server",
        "protocol",
        "rounds_per_request",
        "online_s",
        "offline_s",
        "setup_s",
        "online_bytes_sent",
        "offline_bytes",
    ] {
        assert!(!report[key].is_null(), "{key} missing in {report}");
    }
    assert_eq!(report["protocol"], "espn");
    assert_eq!(report["requests"], 3);
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), 5);

    // The same images through the fixed-point executor, in process.
    let graph = pillar_nn::onnx::load(&model)
        .unwrap()
        .fold_batchnorm()
        .unwrap();
    let data = DataSet::load(DatasetKind::Mnist, None).unwrap();
    let pixels = data.normalise(&data.test, &indices, None).unwrap();
    let input = Tensor::new(vec![5, 1, 28, 28], pixels).unwrap();
    let config = FixedConfig {
        frac_bits: 16,
        activation: ActivationProtocol::Espn,
        ..FixedConfig::default()
    };
    let want = mirror::run(&graph, &input, &config).unwrap().logits;
    for (i, img) in images.iter().enumerate() {
        assert_eq!(img["label"], u64::from(data.test.label(i).unwrap()));
        for class in img["top"].as_array().unwrap() {
            let c = class["class"].as_u64().unwrap() as usize;
            let got = class["logit"].as_f64().unwrap();
            let expected = f64::from(want.data()[i * 10 + c]);
            assert!(
                (got - expected).abs() < 0.01,
                "image {i} class {c}: {got} vs {expected}"
            );
        }
    }

    // A PNG of test image 0 is classified as the data set's image 0.
    let raw = data.test.image(0).unwrap().to_vec();
    let png = dir.path().join("digit.png");
    image::GrayImage::from_raw(28, 28, raw)
        .unwrap()
        .save(&png)
        .unwrap();
    let from_file = infer_json(
        &server.addr,
        &dealer.addr,
        &keys.client,
        &["--input", png.to_str().unwrap()],
    );
    assert_eq!(from_file["images"][0]["predicted"], images[0]["predicted"]);
    let a = from_file["images"][0]["top"][0]["logit"].as_f64().unwrap();
    let b = images[0]["top"][0]["logit"].as_f64().unwrap();
    assert!((a - b).abs() < 0.01, "{a} vs {b}");

    // --keep-weights: the first connection keeps the server's `F` in a file named by its
    // digest, the next skips the setup with it and classifies alike; a file that is not what
    // its name says is warned about and replaced.
    let kept = dir.path().join("kept");
    let keep = ["--index", "3", "--keep-weights", kept.to_str().unwrap()];
    let first = infer_json(&server.addr, &dealer.addr, &keys.client, &keep);
    assert_eq!(first["weights_kept"], false);
    let files: Vec<_> = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let second = infer_json(&server.addr, &dealer.addr, &keys.client, &keep);
    assert_eq!(second["weights_kept"], true);
    // The same up to the secure rounding, which differs per run.
    let logits = |r: &serde_json::Value| -> Vec<f64> {
        let l = r["images"][0]["logits"].as_array().unwrap();
        l.iter().map(|v| v.as_f64().unwrap()).collect()
    };
    for (a, b) in logits(&second).iter().zip(logits(&first)) {
        assert!((a - b).abs() < 0.01, "{a} vs {b}");
    }
    assert_eq!(first["images"][0]["predicted"], images[3]["predicted"]);
    let mut words = std::fs::read(&files[0]).unwrap();
    words[0] ^= 1;
    std::fs::write(&files[0], &words).unwrap();
    let out = pillar()
        .args(["infer", "--connect", &server.addr, "--dealer", &dealer.addr])
        .args(&keys.client)
        .args(keep)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not hold the weights its name says"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(third["weights_kept"], false);
    let fourth = infer_json(&server.addr, &dealer.addr, &keys.client, &keep);
    assert_eq!(fourth["weights_kept"], true);

    // Text output for people.
    infer(&server.addr, &dealer.addr, &keys.client)
        .args(["--index", "7"])
        .assert()
        .success()
        .stdout(contains("mnist test #7"))
        .stdout(contains("1 image in 1 request"));

    // Bad input from the client: clear errors, and the server keeps serving.
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"not an image").unwrap();
    for (args, error) in [
        (
            ["--input", "no-such-file.png"],
            "no-such-file.png is not a file",
        ),
        (["--input", garbage.to_str().unwrap()], "garbage.png"),
        (["--index", "5000"], "--index 5000"),
    ] {
        infer(&server.addr, &dealer.addr, &keys.client)
            .args(args)
            .assert()
            .failure()
            .stderr(contains(error));
    }
    // Keys: none given, a stranger's, the server's own pinned as the dealer's.
    infer(&server.addr, &dealer.addr, &[])
        .args(["--index", "0"])
        .assert()
        .failure()
        .stderr(contains("pillar keygen"));
    let stranger = dir.path().join("stranger");
    pillar()
        .args(["keygen", "--out"])
        .arg(&stranger)
        .assert()
        .success();
    let mut stranger_flags = keys.client.clone();
    stranger_flags[1] = format!("{}.key", stranger.display());
    infer(&server.addr, &dealer.addr, &stranger_flags)
        .args(["--index", "0"])
        .assert()
        .failure()
        .stderr(contains("refused this connection"));
    infer(&server.addr, &dealer.addr, &[])
        .args(["--index", "0", "--insecure-plaintext"])
        .assert()
        .failure()
        .stderr(contains("requires Noise"));
    // keygen never overwrites a key.
    pillar()
        .args(["keygen", "--out"])
        .arg(&stranger)
        .assert()
        .failure()
        .stderr(contains("stranger.key"));
    // Memory: without --batch the requests shrink to what --max-memory allows, by the
    // client's estimate; a --batch beyond it, or a limit one image does not fit, is refused
    // before any request; the older --max-memory-mib still works, with a warning.
    let arch = pillar_infer::Plan::compile(&graph, config)
        .unwrap()
        .architecture;
    let two = arch.memory_bytes(2, pillar_infer::Parties::Client).unwrap();
    let limit = format!("{two}B");
    let shrunk = pillar()
        .args(["infer", "--connect", &server.addr, "--dealer", &dealer.addr])
        .args(&keys.client)
        .args(["--index", "0,1,2,3,4", "--max-memory", &limit, "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&shrunk.stderr);
    assert!(shrunk.status.success(), "{stderr}");
    assert!(
        stderr.contains("batch 2: batch 5 would need about"),
        "{stderr}"
    );
    let shrunk: serde_json::Value = serde_json::from_slice(&shrunk.stdout).unwrap();
    assert_eq!(shrunk["requests"], 3);
    infer(&server.addr, &dealer.addr, &keys.client)
        .args([
            "--index",
            "0,1,2,3,4",
            "--batch",
            "3",
            "--max-memory",
            &limit,
        ])
        .assert()
        .failure()
        .stderr(contains("batch 3 needs about").and(contains("--batch 2 fits")));
    infer(&server.addr, &dealer.addr, &keys.client)
        .args(["--index", "0", "--max-memory-mib", "1"])
        .assert()
        .failure()
        .stderr(
            contains("--max-memory-mib is deprecated")
                .and(contains("one image of this network needs about"))
                .and(contains("--max-memory is 1 MiB")),
        );
    let again = infer_json(&server.addr, &dealer.addr, &keys.client, &["--index", "3"]);
    assert_eq!(again["images"][0]["predicted"], images[3]["predicted"]);
}

#[test]
fn a_missing_dealer_or_server_or_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // No server.
    let nowhere = free();
    let plain = vec!["--insecure-plaintext".to_string()];
    infer(&nowhere, &nowhere, &plain)
        .args(["--index", "0"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .failure()
        .stderr(contains(format!(
            "cannot start a secure inference with {nowhere}"
        )));
    // A model that is not ONNX: refused before listening.
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"\x08\x07garbage").unwrap();
    serve_refuses(&bad, &nowhere).stderr(contains("cannot load"));
    // A model with an operator the secure engine lacks: named, before listening.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pillar-nn/tests/fixtures/relu_cnn_op18.onnx");
    let mut bytes = std::fs::read(fixture).unwrap();
    for at in 0..bytes.len() - 4 {
        if &bytes[at..at + 4] == b"Relu" {
            bytes[at..at + 4].copy_from_slice(b"Selu");
        }
    }
    let selu = dir.path().join("selu.onnx");
    std::fs::write(&selu, bytes).unwrap();
    let refused = serve_refuses(&selu, &nowhere).stderr(contains("unsupported operator"));
    // The file is named once, by the command, not again by the loader.
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert_eq!(stderr.matches("selu.onnx").count(), 1, "{stderr}");
    // A server whose dealer is down refuses its clients, saying why.
    train(dir.path());
    let model = dir.path().join("model.onnx");
    let server = start_server(&model, &nowhere, &["--insecure-plaintext"]);
    infer(&server.addr, &nowhere, &plain)
        .args(["--index", "0"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .failure()
        .stderr(contains("the server has no dealer"))
        .stderr(contains("cannot reach the dealer"));
    // Bad link flags.
    infer(&server.addr, &nowhere, &plain)
        .args(["--index", "0"])
        .arg("--rtt-ms=-3")
        .assert()
        .failure()
        .stderr(contains("--rtt-ms -3: a round-trip time"));
    // A dealer given one list of keys for both roles, as before roles were bound to keys.
    let keys = Keys::new(dir.path());
    pillar()
        .args(["dealer", "--listen", "127.0.0.1:0", "--key"])
        .arg(dir.path().join("dealer.key"))
        .args(["--trust", &keys.server[3], "--trust", &keys.client[3]])
        .assert()
        .failure()
        .stdout(predicates::str::is_empty())
        .stderr(contains("--trust-server"))
        .stderr(contains("--trust-client"));
}

#[test]
fn demo_trains_serves_and_compares_both_networks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    pillar()
        .args([
            "demo", "--epochs", "2", "--images", "3", "--rtt-ms", "0", "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("[4/4] classify"))
        .stdout(contains("pillar serve --model"));
    for file in [
        "report.json",
        "fit.png",
        "fit.json",
        "poly/model.onnx",
        "poly/curves.png",
        "relu/model.onnx",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let nets = report["networks"].as_array().unwrap();
    assert_eq!(nets.len(), 2);
    let rounds = |i: usize| nets[i]["rounds_per_image"].as_u64().unwrap();
    // One round per linear and activation layer against about ten per exact ReLU layer.
    assert!(rounds(0) < rounds(1), "{report}");
    for net in nets {
        assert_eq!(net["images"], 3);
        assert!(net["max_logit_error"].as_f64().unwrap() < 0.05, "{net}");
        assert!(net["plain_accuracy"].as_f64().unwrap() > 0.5, "{net}");
    }
    let fitted: Vec<f64> = report["polynomial"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect();
    assert_eq!(fitted, pillar_fit::PAPER_RELU.to_vec());
}

/// `count` idle connections to `addr` that never say a word; those the listener's backlog
/// has no room for are given up after a second.
#[cfg(unix)]
fn strangers(addr: &str, count: usize) -> Vec<std::net::TcpStream> {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    (0..count)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).ok()
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn strangers_beyond_the_open_file_limit_stop_neither_the_dealer_nor_the_server() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path());
    let model = dir.path().join("model.onnx");
    let keys = Keys::new(dir.path());
    let listen = ["--listen", "127.0.0.1:0"];
    let mut dealer = start_with_file_limit(
        64,
        &[&["dealer"][..], &listen, &strs(&keys.dealer)].concat(),
    );
    let model = model.to_str().unwrap();
    let serve = [
        "serve",
        "--model",
        model,
        "--dealer",
        &dealer.addr,
        "--max-batch",
        "2",
    ];
    let mut server =
        start_with_file_limit(64, &[&serve[..], &listen, &strs(&keys.server)].concat());
    // More idle connections than either process may open files: each runs out.
    let idle: Vec<_> = [&dealer.addr, &server.addr]
        .iter()
        .map(|addr| strangers(addr, 150))
        .collect();
    let counts: Vec<usize> = idle.iter().map(Vec::len).collect();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let status = dealer.child.try_wait().unwrap();
    assert!(
        status.is_none(),
        "the dealer stopped ({status:?}) after {counts:?} strangers"
    );
    let status = server.child.try_wait().unwrap();
    assert!(
        status.is_none(),
        "the server stopped ({status:?}) after {counts:?} strangers"
    );
    // Once they are gone, a trusted client is served, in requests of at most --max-batch.
    drop(idle);
    let out = infer_json(
        &server.addr,
        &dealer.addr,
        &keys.client,
        &["--index", "0,1,2"],
    );
    assert_eq!(out["images"].as_array().unwrap().len(), 3);
    assert_eq!(out["requests"], 2);
}

#[cfg(unix)]
#[test]
fn a_secret_key_others_may_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(dir.path());
    let secret = dir.path().join("client.key");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    infer(&nowhere, &nowhere, &keys.client)
        .args(["--index", "0"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .failure()
        .stderr(contains("readable by others"))
        .stderr(contains("client.key"));
}
