//! The architectures of the paper (FACTS.md section 3), for any input size and class count.

use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::net::{Layer, Net, Pool, Residual};
use crate::activation::Activation;

/// An architecture by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// The small ConvNet of the paper's figures.
    Convnet,
    /// MiniONN with BatchNorm after every convolution.
    Minionn,
    /// MiniONN without BatchNorm (the paper's ablation).
    MinionnNoBn,
    /// VGG-16 with BatchNorm, average pooling.
    Vgg16,
    /// ResNet-18 with the CIFAR stem.
    Resnet18,
    /// CIFAR ResNet-20 (n = 3).
    Resnet20,
    /// CIFAR ResNet-32 (n = 5).
    Resnet32,
    /// CIFAR ResNet-56 (n = 9).
    Resnet56,
    /// CIFAR ResNet-110 (n = 18).
    Resnet110,
    /// ResNet-50, ImageNet layout, the stem's max-pool replaced by an average pool.
    Resnet50,
}

impl Architecture {
    /// Every architecture, for help texts.
    pub const ALL: [Architecture; 10] = [
        Architecture::Convnet,
        Architecture::Minionn,
        Architecture::MinionnNoBn,
        Architecture::Vgg16,
        Architecture::Resnet18,
        Architecture::Resnet20,
        Architecture::Resnet32,
        Architecture::Resnet56,
        Architecture::Resnet110,
        Architecture::Resnet50,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Convnet => "convnet",
            Architecture::Minionn => "minionn",
            Architecture::MinionnNoBn => "minionn-no-bn",
            Architecture::Vgg16 => "vgg16",
            Architecture::Resnet18 => "resnet18",
            Architecture::Resnet20 => "resnet20",
            Architecture::Resnet32 => "resnet32",
            Architecture::Resnet56 => "resnet56",
            Architecture::Resnet110 => "resnet110",
            Architecture::Resnet50 => "resnet50",
        }
    }

    /// Builds the network with fresh weights; `act` makes each activation layer.
    pub fn build(
        self,
        input_shape: [usize; 3],
        classes: usize,
        act: &dyn Fn() -> Activation,
        device: &Device,
    ) -> Result<Net, String> {
        let b = Builder { act, device };
        let [c, h, w] = input_shape;
        let layers = match self {
            Architecture::Convnet => b.convnet(c, h, w, classes)?,
            Architecture::Minionn => b.minionn(c, h, w, classes, true)?,
            Architecture::MinionnNoBn => b.minionn(c, h, w, classes, false)?,
            Architecture::Vgg16 => b.vgg16(c, h, w, classes)?,
            Architecture::Resnet18 => b.resnet18(c, classes),
            Architecture::Resnet20 => b.cifar_resnet(c, classes, 3),
            Architecture::Resnet32 => b.cifar_resnet(c, classes, 5),
            Architecture::Resnet56 => b.cifar_resnet(c, classes, 9),
            Architecture::Resnet110 => b.cifar_resnet(c, classes, 18),
            Architecture::Resnet50 => b.resnet50(c, classes),
        };
        Ok(Net {
            layers,
            input_shape,
            classes,
        })
    }
}

impl std::str::FromStr for Architecture {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Architecture::ALL
            .into_iter()
            .find(|a| a.name() == s.to_ascii_lowercase().replace('_', "-"))
            .ok_or_else(|| {
                let names: Vec<&str> = Architecture::ALL.iter().map(|a| a.name()).collect();
                format!("unknown model {s:?}; expected one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

struct Builder<'a> {
    act: &'a dyn Fn() -> Activation,
    device: &'a Device,
}

impl Builder<'_> {
    fn conv(
        &self,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    ) -> Layer {
        Layer::Conv(
            Conv2dConfig::new([c_in, c_out], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(bias)
                .init(self.device),
        )
    }

    fn bn(&self, c: usize) -> Layer {
        Layer::Bn(BatchNormConfig::new(c).init(self.device))
    }

    fn linear(&self, d_in: usize, d_out: usize) -> Layer {
        Layer::Linear(LinearConfig::new(d_in, d_out).init(self.device))
    }

    fn act(&self) -> Layer {
        Layer::Act((self.act)())
    }

    fn avg2(&self) -> Layer {
        Layer::AvgPool(Pool {
            kernel: 2,
            stride: 2,
        })
    }

    /// conv5x5 -> 6, BN, act, avgpool 2; conv5x5 -> 16, BN, act, avgpool 2; FC 120, act, FC.
    fn convnet(&self, c: usize, h: usize, w: usize, classes: usize) -> Result<Vec<Layer>, String> {
        let side = |s: usize| {
            s.checked_sub(4)
                .map(|s| s / 2)
                .and_then(|s| s.checked_sub(4))
                .map(|s| s / 2)
        };
        let (Some(oh), Some(ow)) = (side(h), side(w)) else {
            return Err(format!(
                "convnet needs inputs of at least 12x12, got {h}x{w}"
            ));
        };
        if oh == 0 || ow == 0 {
            return Err(format!(
                "convnet needs inputs of at least 12x12, got {h}x{w}"
            ));
        }
        Ok(vec![
            self.conv(c, 6, 5, 1, 0, true),
            self.bn(6),
            self.act(),
            self.avg2(),
            self.conv(6, 16, 5, 1, 0, true),
            self.bn(16),
            self.act(),
            self.avg2(),
            Layer::Flatten(16 * oh * ow),
            self.linear(16 * oh * ow, 120),
            self.act(),
            self.linear(120, classes),
        ])
    }

    /// Seven convolutions (with bias), each followed by BN (optionally) and the activation;
    /// average pools after the 2nd and 4th; 16 channels flattened into the classifier.
    fn minionn(
        &self,
        c: usize,
        h: usize,
        w: usize,
        classes: usize,
        bn: bool,
    ) -> Result<Vec<Layer>, String> {
        if h < 4 || w < 4 {
            return Err(format!("minionn needs inputs of at least 4x4, got {h}x{w}"));
        }
        let plan: [(usize, usize, usize, bool); 7] = [
            (c, 64, 3, false),
            (64, 64, 3, true),
            (64, 64, 3, false),
            (64, 64, 3, true),
            (64, 64, 3, false),
            (64, 64, 1, false),
            (64, 16, 1, false),
        ];
        let mut layers = Vec::new();
        for (c_in, c_out, k, pool) in plan {
            layers.push(self.conv(c_in, c_out, k, 1, k / 2, true));
            if bn {
                layers.push(self.bn(c_out));
            }
            layers.push(self.act());
            if pool {
                layers.push(self.avg2());
            }
        }
        layers.push(Layer::Flatten(16 * (h / 4) * (w / 4)));
        layers.push(self.linear(16 * (h / 4) * (w / 4), classes));
        Ok(layers)
    }

    /// 13 convolutions in five groups; a group ends conv -> BN -> avgpool -> act; then
    /// 512 -> 512 -> 512 -> classes.
    fn vgg16(&self, c: usize, h: usize, w: usize, classes: usize) -> Result<Vec<Layer>, String> {
        if h < 32 || w < 32 {
            return Err(format!("vgg16 needs inputs of at least 32x32, got {h}x{w}"));
        }
        let groups: [&[usize]; 5] = [
            &[64, 64],
            &[128, 128],
            &[256, 256, 256],
            &[512, 512, 512],
            &[512, 512, 512],
        ];
        let mut layers = Vec::new();
        let mut c_in = c;
        for group in groups {
            for (i, &c_out) in group.iter().enumerate() {
                layers.push(self.conv(c_in, c_out, 3, 1, 1, true));
                layers.push(self.bn(c_out));
                if i + 1 == group.len() {
                    layers.push(self.avg2());
                }
                layers.push(self.act());
                c_in = c_out;
            }
        }
        layers.push(Layer::Flatten(512 * (h / 32) * (w / 32)));
        layers.push(self.linear(512 * (h / 32) * (w / 32), 512));
        layers.push(self.act());
        layers.push(self.linear(512, 512));
        layers.push(self.act());
        layers.push(self.linear(512, classes));
        Ok(layers)
    }

    /// `act(body(x) + shortcut(x))`; the shortcut is a 1x1 conv + BN projection when the
    /// block changes the shape, the identity otherwise.
    fn residual(&self, body: Vec<Layer>, c_in: usize, c_out: usize, stride: usize) -> Layer {
        let shortcut = if stride != 1 || c_in != c_out {
            vec![self.conv(c_in, c_out, 1, stride, 0, false), self.bn(c_out)]
        } else {
            Vec::new()
        };
        Layer::Residual(Residual {
            body,
            shortcut,
            act: (self.act)(),
        })
    }

    /// conv3x3 -> BN -> act -> conv3x3 -> BN, plus the shortcut, then act.
    fn basic_block(&self, c_in: usize, c_out: usize, stride: usize) -> Layer {
        let body = vec![
            self.conv(c_in, c_out, 3, stride, 1, false),
            self.bn(c_out),
            self.act(),
            self.conv(c_out, c_out, 3, 1, 1, false),
            self.bn(c_out),
        ];
        self.residual(body, c_in, c_out, stride)
    }

    fn stages(
        &self,
        layers: &mut Vec<Layer>,
        mut c_in: usize,
        widths: &[usize],
        blocks: usize,
        first_stride: &[usize],
    ) -> usize {
        for (&c_out, &stride) in widths.iter().zip(first_stride) {
            for b in 0..blocks {
                layers.push(self.basic_block(c_in, c_out, if b == 0 { stride } else { 1 }));
                c_in = c_out;
            }
        }
        c_in
    }

    fn resnet18(&self, c: usize, classes: usize) -> Vec<Layer> {
        let mut layers = vec![self.conv(c, 64, 3, 1, 1, false), self.bn(64), self.act()];
        let out = self.stages(&mut layers, 64, &[64, 128, 256, 512], 2, &[1, 2, 2, 2]);
        layers.push(Layer::GlobalAvgPool(out));
        layers.push(self.linear(out, classes));
        layers
    }

    fn cifar_resnet(&self, c: usize, classes: usize, n: usize) -> Vec<Layer> {
        let mut layers = vec![self.conv(c, 16, 3, 1, 1, false), self.bn(16), self.act()];
        let out = self.stages(&mut layers, 16, &[16, 32, 64], n, &[1, 2, 2]);
        layers.push(Layer::GlobalAvgPool(out));
        layers.push(self.linear(out, classes));
        layers
    }

    /// Bottleneck: 1x1 -> 3x3 (stride here, as torchvision) -> 1x1 x4, projection when needed.
    fn bottleneck(&self, c_in: usize, width: usize, stride: usize) -> Layer {
        let c_out = width * 4;
        let body = vec![
            self.conv(c_in, width, 1, 1, 0, false),
            self.bn(width),
            self.act(),
            self.conv(width, width, 3, stride, 1, false),
            self.bn(width),
            self.act(),
            self.conv(width, c_out, 1, 1, 0, false),
            self.bn(c_out),
        ];
        self.residual(body, c_in, c_out, stride)
    }

    /// torchvision's ResNet-50; the 3x3/2 max-pool of the stem becomes a 2x2/2 average pool
    /// (same output size on even inputs, and no padding for the secure engine to emulate).
    fn resnet50(&self, c: usize, classes: usize) -> Vec<Layer> {
        let mut layers = vec![
            self.conv(c, 64, 7, 2, 3, false),
            self.bn(64),
            self.act(),
            self.avg2(),
        ];
        let mut c_in = 64;
        for (width, blocks, stride) in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)] {
            for b in 0..blocks {
                layers.push(self.bottleneck(c_in, width, if b == 0 { stride } else { 1 }));
                c_in = width * 4;
            }
        }
        layers.push(Layer::GlobalAvgPool(c_in));
        layers.push(self.linear(c_in, classes));
        layers
    }
}
