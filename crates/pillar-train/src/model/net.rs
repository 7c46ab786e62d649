//! A network as a list of layers with residual blocks: enough for every architecture of the
//! paper, and simple to walk when exporting to the pillar-nn graph.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

use crate::activation::{Activation, Tape};

/// A pooling window without padding.
#[derive(Module, Debug)]
pub struct Pool {
    /// Window side.
    pub kernel: usize,
    /// Step.
    pub stride: usize,
}

/// One layer.
#[derive(Module, Debug)]
pub enum Layer {
    /// Convolution.
    Conv(Conv2d),
    /// Batch normalisation.
    Bn(BatchNorm),
    /// Fully connected layer.
    Linear(Linear),
    /// Nonlinearity.
    Act(Activation),
    /// Average pooling.
    AvgPool(Pool),
    /// Max pooling.
    MaxPool(Pool),
    /// Average over all positions, to `[N, C]` (the payload: `C`).
    GlobalAvgPool(usize),
    /// `[N, C, H, W]` to `[N, F]` (the payload: `F`).
    Flatten(usize),
    /// `act(body(x) + shortcut(x))`.
    Residual(Residual),
}

/// A residual block: an empty shortcut is the identity.
#[derive(Module, Debug)]
pub struct Residual {
    /// The main path.
    pub body: Vec<Layer>,
    /// The projection (conv 1x1 + BN) when shapes change, or nothing.
    pub shortcut: Vec<Layer>,
    /// The activation after the addition.
    pub act: Activation,
}

/// A tensor between layers: images until the flatten, then vectors.
#[derive(Debug, Clone)]
pub enum Flow {
    /// `[N, C, H, W]`.
    Image(Tensor<4>),
    /// `[N, F]`.
    Flat(Tensor<2>),
}

impl Flow {
    /// The logits at the end of a network.
    pub fn into_flat(self) -> Tensor<2> {
        match self {
            Flow::Flat(x) => x,
            Flow::Image(x) => x.flatten(1, 3),
        }
    }
}

impl Layer {
    /// Applies the layer.
    pub fn forward(&self, x: Flow, tape: &mut Tape) -> Flow {
        match (self, x) {
            (Layer::Conv(conv), Flow::Image(x)) => Flow::Image(crate::conv::forward(conv, x)),
            (Layer::Bn(bn), Flow::Image(x)) => Flow::Image(crate::norm::forward(bn, x)),
            (Layer::Bn(bn), Flow::Flat(x)) => Flow::Flat(crate::norm::forward(bn, x)),
            (Layer::Linear(linear), x) => Flow::Flat(linear.forward(x.into_flat())),
            (Layer::Act(act), Flow::Image(x)) => Flow::Image(act.forward(x, tape)),
            (Layer::Act(act), Flow::Flat(x)) => Flow::Flat(act.forward(x, tape)),
            (Layer::AvgPool(p), Flow::Image(x)) => {
                Flow::Image(crate::pool::avg_pool2d(x, p.kernel, p.stride))
            }
            (Layer::MaxPool(p), Flow::Image(x)) => Flow::Image(max_pool2d(
                x,
                MaxPoolOptions::new([p.kernel, p.kernel]).with_stride([p.stride, p.stride]),
            )),
            (Layer::GlobalAvgPool(_), Flow::Image(x)) => {
                Flow::Flat(x.mean_dims(&[2, 3]).flatten(1, 3))
            }
            (Layer::Flatten(_), x) => Flow::Flat(x.into_flat()),
            (Layer::Residual(block), Flow::Image(x)) => {
                let main = run(&block.body, Flow::Image(x.clone()), tape);
                let skip = run(&block.shortcut, Flow::Image(x), tape);
                match (main, skip) {
                    (Flow::Image(a), Flow::Image(b)) => {
                        Flow::Image(block.act.forward(a.add(b), tape))
                    }
                    (a, b) => Flow::Flat(block.act.forward(a.into_flat().add(b.into_flat()), tape)),
                }
            }
            // Image layers after the flatten: the builders never produce this.
            (_, Flow::Flat(x)) => Flow::Flat(x),
        }
    }

    /// The activations inside this layer, in call order.
    pub fn activations(&self) -> Vec<&Activation> {
        match self {
            Layer::Act(a) => vec![a],
            Layer::Residual(r) => r
                .body
                .iter()
                .chain(&r.shortcut)
                .flat_map(Layer::activations)
                .chain(std::iter::once(&r.act))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Runs layers in order.
pub fn run(layers: &[Layer], mut x: Flow, tape: &mut Tape) -> Flow {
    for layer in layers {
        x = layer.forward(x, tape);
    }
    x
}

/// A whole network: its layers and the input it expects.
#[derive(Module, Debug)]
pub struct Net {
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// `[C, H, W]` of one input.
    #[module(skip)]
    pub input_shape: [usize; 3],
    /// Number of classes.
    #[module(skip)]
    pub classes: usize,
}

impl Net {
    /// Logits `[N, classes]` for images `[N, C, H, W]`.
    pub fn forward(&self, images: Tensor<4>, tape: &mut Tape) -> Tensor<2> {
        run(&self.layers, Flow::Image(images), tape).into_flat()
    }

    /// Replaces every activation layer by `f(old, channels)`, keeping all weights;
    /// `channels` is the width of the activation's input (axis 1).
    pub fn map_activations(mut self, f: &dyn Fn(Activation, usize) -> Activation) -> Net {
        fn walk(
            layers: Vec<Layer>,
            channels: &mut usize,
            f: &dyn Fn(Activation, usize) -> Activation,
        ) -> Vec<Layer> {
            layers
                .into_iter()
                .map(|l| {
                    match &l {
                        Layer::Conv(c) => *channels = c.weight.dims()[0],
                        Layer::Bn(bn) => *channels = bn.gamma.dims()[0],
                        Layer::Linear(lin) => *channels = lin.weight.dims()[1],
                        Layer::GlobalAvgPool(c) | Layer::Flatten(c) => *channels = *c,
                        _ => {}
                    }
                    match l {
                        Layer::Act(a) => Layer::Act(f(a, *channels)),
                        Layer::Residual(r) => {
                            let mut skip = *channels;
                            let body = walk(r.body, channels, f);
                            let shortcut = walk(r.shortcut, &mut skip, f);
                            Layer::Residual(Residual {
                                body,
                                shortcut,
                                act: f(r.act, *channels),
                            })
                        }
                        other => other,
                    }
                })
                .collect()
        }
        let mut channels = self.input_shape[0];
        self.layers = walk(std::mem::take(&mut self.layers), &mut channels, f);
        self
    }

    /// Every activation layer in call order (the order of [`Tape`] records).
    pub fn activations(&self) -> Vec<&Activation> {
        self.layers.iter().flat_map(Layer::activations).collect()
    }
}
