//! Fuzz target `hello`: a server's hello as the client decodes and checks it, and what the
//! client then computes from the architecture (`pillar_infer::fuzzing`).
//!
//! Structure-aware: most inputs are read as an architecture a server could send, built step
//! by step from its own shapes (convolutions, pools, linear layers, products, sums,
//! activations) so that it mostly passes the check and reaches the client's per-step shape,
//! cost and memory computations and the mirror; one value in a few is anything at all (a
//! shape, a window, a padding, a weight number, a read), as a hostile server would send it.
//! The rest of the inputs are raw hello bytes, as the committed corpus has them.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use pillar_infer::{FixedConfig, Layer, Step, UncheckedArchitecture};
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::pool::Window;
use pillar_nn::OutputTransform;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    match u.arbitrary::<u8>() {
        Ok(mode) if mode % 4 != 0 => {
            if let Ok(a) = architecture(&mut u) {
                pillar_infer::fuzzing::hello_with(&a);
            }
        }
        _ => pillar_infer::fuzzing::hello(data),
    }
});

/// Mostly `1..=max`; one in 16 anything at all.
fn dim(u: &mut Unstructured, max: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => u.arbitrary()?,
        1 => u.int_in_range(0..=1 << 17)?,
        _ => u.int_in_range(1..=max.max(1))?,
    })
}

/// Elements of `shape`, if they fit a word.
fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// An architecture of up to 8 steps over a small input.
fn architecture(u: &mut Unstructured) -> Result<UncheckedArchitecture> {
    let input = match u.int_in_range(0u8..=3)? {
        0 => vec![dim(u, 16)?],
        _ => vec![dim(u, 4)?, dim(u, 12)?, dim(u, 12)?],
    };
    let mut shapes = vec![input.clone()];
    let mut steps = Vec::new();
    let mut weight_shapes: Vec<Vec<usize>> = Vec::new();
    for i in 0..u.int_in_range(1..=8)? {
        // Mostly the last value; sometimes any earlier one.
        let from = if u.int_in_range(0u8..=3)? == 0 {
            u.int_in_range(0..=i)?
        } else {
            i
        };
        let x = shapes[from].clone();
        let (layer, inputs, shape) = step(u, &x, from, &shapes, &mut weight_shapes)?;
        shapes.push(shape);
        steps.push(Step {
            name: format!("s{i}"),
            layer,
            inputs,
        });
    }
    let options = FixedConfig {
        frac_bits: if u.int_in_range(0u8..=15)? == 0 {
            u.arbitrary()?
        } else {
            16
        },
        activation: *u.choose(&ActivationProtocol::ALL)?,
        linear: *u.choose(&pillar_mpc::protocols::preprocessed::LinearProtocol::ALL)?,
    };
    let mut a = UncheckedArchitecture {
        input_shape: input,
        output: steps.len(),
        shapes,
        steps,
        weight_shapes,
        options,
        output_transform: if u.arbitrary()? {
            Some(OutputTransform::Softmax)
        } else {
            None
        },
    };
    tamper(u, &mut a)?;
    Ok(a)
}

/// One step reading value `from` of shape `x`: its layer, what it reads and its output shape
/// as the layer gives it (or, where it does not fit, a guess).
fn step(
    u: &mut Unstructured,
    x: &[usize],
    from: usize,
    shapes: &[Vec<usize>],
    weights: &mut Vec<Vec<usize>>,
) -> Result<(Layer, Vec<usize>, Vec<usize>)> {
    let same = x.to_vec();
    let image = match *x {
        [c, h, w] => Some((c, h, w)),
        _ => None,
    };
    let kind = u.int_in_range(0u8..=9)?;
    Ok(match (kind, image) {
        (0 | 1, Some((c, h, w))) => {
            let padding = dim(u, 3)?.saturating_sub(1);
            let reach = |d: usize| d.saturating_add(padding.saturating_mul(2)).clamp(1, 5);
            let g = ConvGeometry {
                batch: 1,
                in_channels: c,
                height: h,
                width: w,
                out_channels: dim(u, 6)?,
                kernel_h: dim(u, reach(h))?,
                kernel_w: dim(u, reach(w))?,
                stride: dim(u, 3)?,
                padding,
            };
            let out = match g.validate() {
                Ok(()) => g.output_shape()[1..].to_vec(),
                Err(_) => vec![g.out_channels, 1, 1],
            };
            weights.push(vec![g.out_channels, c, g.kernel_h, g.kernel_w]);
            let layer = Layer::Conv {
                geometry: g,
                weight: weights.len() - 1,
                bias: u.arbitrary()?,
            };
            (layer, vec![from], out)
        }
        (2 | 3, Some((c, h, w))) => {
            let window = Window {
                kernel_h: dim(u, h.min(4))?,
                kernel_w: dim(u, w.min(4))?,
                stride: dim(u, 3)?,
                // Up to 2, beyond half of the smaller windows: refused, never followed.
                pad: u.int_in_range(0..=2)?,
            };
            let out = match window.output(h, w) {
                Ok((oh, ow)) => vec![c, oh, ow],
                Err(_) => vec![c, 1, 1],
            };
            let layer = if kind == 2 {
                Layer::AvgPool(window)
            } else {
                Layer::MaxPool(window)
            };
            (layer, vec![from], out)
        }
        (4, Some((c, _, _))) => (Layer::GlobalAvgPool, vec![from], vec![c, 1, 1]),
        (5, _) => {
            let channels = x.first().copied().unwrap_or(1);
            weights.push(vec![channels]);
            let layer = Layer::Scale {
                weight: weights.len() - 1,
            };
            (layer, vec![from], same)
        }
        (6, _) => {
            // Another value of the same shape, if one exists.
            let other = shapes.iter().rposition(|s| *s == x).unwrap_or(from);
            (Layer::Add, vec![from, other], same)
        }
        (7, _) => {
            let coefficients = (0..u.int_in_range(1..=6)?)
                .map(|_| Ok(f64::from(u.int_in_range(-64i8..=64)?) / 64.0))
                .collect::<Result<Vec<f64>>>()?;
            (Layer::Poly { coefficients }, vec![from], same)
        }
        (8, _) if u.arbitrary()? => (Layer::Relu, vec![from], same),
        (8, _) => {
            let mut bound = || -> Result<Option<f64>> {
                Ok(match u.int_in_range(0u8..=2)? {
                    0 => None,
                    _ => Some(f64::from(u.int_in_range(-64i8..=64)?) / 16.0),
                })
            };
            let (min, max) = (bound()?, bound()?);
            (Layer::Clip { min, max }, vec![from], same)
        }
        _ => {
            let inputs = elements(x).unwrap_or(1);
            if u.arbitrary()? {
                (Layer::Flatten, vec![from], vec![inputs])
            } else {
                let outputs = dim(u, 10)?;
                weights.push(vec![inputs, outputs]);
                let layer = Layer::Linear {
                    inputs,
                    outputs,
                    weight: weights.len() - 1,
                    bias: u.arbitrary()?,
                };
                (layer, vec![from], vec![outputs])
            }
        }
    })
}

/// Now and then one field changed to anything, as a hostile server would.
fn tamper(u: &mut Unstructured, a: &mut UncheckedArchitecture) -> Result<()> {
    if u.int_in_range(0u8..=7)? != 0 {
        return Ok(());
    }
    let i = u.choose_index(a.steps.len())?;
    match u.int_in_range(0u8..=5)? {
        0 => {
            let v = u.choose_index(a.shapes.len())?;
            if let Some(d) = a.shapes[v].first_mut() {
                *d = u.arbitrary()?;
            }
        }
        1 => a.output = u.arbitrary()?,
        2 => a.steps[i].inputs = u.arbitrary()?,
        3 => {
            if let Some(w) = a.weight_shapes.last_mut() {
                *w = u.arbitrary()?;
            }
        }
        4 => {
            if let Layer::Conv { geometry, .. } = &mut a.steps[i].layer {
                geometry.padding = u.arbitrary()?;
            }
        }
        _ => {
            if let Layer::AvgPool(w) | Layer::MaxPool(w) = &mut a.steps[i].layer {
                w.kernel_h = u.arbitrary()?;
            }
        }
    }
    Ok(())
}
