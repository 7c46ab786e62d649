//! The memory estimate that sizes a secure run's batch before it starts: it grows with the
//! batch (so a binary search over it is right), a local run (client, server and dealer in one
//! process) holds more than the client alone, and the batch picked is the largest that fits.
#![allow(clippy::unwrap_used)]

use pillar_infer::{Architecture, FixedConfig, Parties, Plan};
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_nn::testing::{conv, every_op, fold, linear};
use pillar_nn::{Graph, Op};

/// A small CIFAR-shaped network with padded convolutions and exact ReLUs (`every_op` has
/// the pools).
fn small_cnn() -> Graph {
    let mut g = Graph::new(vec![3, 32, 32]);
    g.chain("conv1", conv(8, 3, 3, 1, 1, 1));
    g.chain("relu1", Op::Relu);
    g.chain("conv2", conv(8, 8, 3, 2, 1, 2));
    g.chain("relu2", Op::Relu);
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(10, 8 * 16 * 16, 3, true));
    g
}

fn architectures() -> Vec<Architecture> {
    let mut out = Vec::new();
    for g in [small_cnn(), every_op()] {
        for activation in ActivationProtocol::ALL {
            let config = FixedConfig {
                activation,
                ..FixedConfig::default()
            };
            out.push(Plan::compile(&fold(&g), config).unwrap().architecture);
        }
    }
    out
}

#[test]
fn the_estimate_grows_with_the_batch_and_a_local_run_holds_more_than_its_client() {
    for arch in architectures() {
        let mut last = 0;
        for batch in 1..=40 {
            let local = arch.memory_bytes(batch, Parties::Local).unwrap();
            let client = arch.memory_bytes(batch, Parties::Client).unwrap();
            assert!(local > last, "batch {batch}: {local} <= {last}");
            // Both parties, and the dealer besides.
            assert!(local > 2 * client, "batch {batch}: {local} vs {client}");
            // The client's is its counted peak and a quarter more, what `check_memory`
            // bounds.
            let peak = 8 * arch.peak_words(batch).unwrap();
            assert_eq!(client, peak + peak / 4);
            assert!(arch.check_memory(batch, client).is_ok());
            assert!(arch.check_memory(batch, client - 1).is_err());
            last = local;
        }
        // A batch too large to count is an error, not a wrapped number.
        assert!(arch.memory_bytes(usize::MAX / 2, Parties::Local).is_err());
        // A further connection whose client kept `F` holds neither the model nor any copy
        // of `F` (the parties' two, the setup's messages): at least three copies less.
        for batch in [1, 4] {
            let first = arch.memory_bytes(batch, Parties::Local).unwrap();
            let resumed = arch.resumed_connection_bytes(batch).unwrap();
            let f = 8 * arch.setup_words();
            assert!(resumed > 0);
            assert!(resumed + 3 * f <= first, "{resumed} + 3 x {f} vs {first}");
        }
    }
}

#[test]
fn the_batch_picked_is_the_largest_that_fits() {
    for arch in architectures() {
        let held = 50 << 20;
        let cost = |b: usize| arch.memory_bytes(b, Parties::Local).unwrap() + held;
        for target in [1, 2, 7, 33, 100] {
            // A budget just under what one more image needs: `target` fits, not `target + 1`.
            let budget = cost(target + 1) - 1;
            let got = arch.largest_batch(Parties::Local, held, budget, 1000);
            assert_eq!(got, Some(target), "budget {budget}");
            // Exactly the estimate fits.
            assert_eq!(
                arch.largest_batch(Parties::Local, held, cost(target), 1000),
                Some(target)
            );
            // Never more than asked for.
            assert_eq!(
                arch.largest_batch(Parties::Local, held, budget, target - 1),
                (target > 1).then(|| target - 1)
            );
        }
        // Not even one image.
        assert_eq!(
            arch.largest_batch(Parties::Local, held, cost(1) - 1, 1000),
            None
        );
        assert_eq!(
            arch.largest_batch(Parties::Local, held, usize::MAX, 1000),
            Some(1000)
        );
        // What the process holds besides counts against the budget.
        assert_eq!(
            arch.largest_batch(Parties::Local, held + (1 << 40), cost(1000), 1000),
            None
        );
    }
}
