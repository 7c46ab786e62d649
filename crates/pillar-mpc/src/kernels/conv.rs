//! 2-d convolution over Z_2^64 by im2col and the blocked matrix product.

use rayon::prelude::*;

use super::gemm::{NR, PARALLEL_WORK, gemm_packed};

/// Patch matrices smaller than this are filled on one thread.
const PARALLEL_COPY: usize = 1 << 15;
use crate::error::MpcError;

/// The shapes of a 2-d convolution: NCHW input, OIHW weight, square stride and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConvGeometry {
    /// Images per batch `N`.
    pub batch: usize,
    /// Input channels `C`.
    pub in_channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Output channels `O`.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl ConvGeometry {
    /// Most words of any one buffer (input, weight, output, one image's patch matrix): beyond
    /// any machine's memory, so only a guard against overflow; the dealer and the
    /// architecture check apply the real limits.
    const MAX_LEN: usize = 1 << 48;

    /// The geometry of an `[N, C, H, W]` input under an `[O, C, kh, kw]` weight (the input
    /// channel count is the caller's to check), validated.
    pub fn new(
        [batch, in_channels, height, width]: [usize; 4],
        [out_channels, kernel_h, kernel_w]: [usize; 3],
        stride: usize,
        padding: usize,
    ) -> Result<Self, MpcError> {
        let g = ConvGeometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            padding,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks that every dimension is positive and at most 2^16, the stride positive, the
    /// kernel within the padded input, and every buffer length (input, weight, output, patch
    /// matrix) at most `MAX_LEN`, formed with checked arithmetic.
    pub fn validate(&self) -> Result<(), MpcError> {
        // Geometries also arrive from peers (a dealer's client, a server's architecture):
        // bound every dimension first, so that the lengths below cannot overflow.
        const MAX_DIM: usize = 1 << 16;
        let dims = [
            self.batch,
            self.in_channels,
            self.height,
            self.width,
            self.out_channels,
            self.kernel_h,
            self.kernel_w,
            self.stride,
            self.padding,
        ];
        if dims.iter().any(|&d| d > MAX_DIM) {
            return Err(MpcError::invalid(
                "conv2d",
                format!("a dimension of {dims:?} is beyond {MAX_DIM}"),
            ));
        }
        if self.stride == 0 {
            return Err(MpcError::invalid("conv2d", "stride 0"));
        }
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return Err(MpcError::invalid("conv2d", "empty kernel"));
        }
        if self.kernel_h > self.height + 2 * self.padding
            || self.kernel_w > self.width + 2 * self.padding
        {
            return Err(MpcError::invalid(
                "conv2d",
                format!(
                    "{}x{} kernel does not fit the {}x{} input padded by {}",
                    self.kernel_h, self.kernel_w, self.height, self.width, self.padding
                ),
            ));
        }
        self.check_lens()
    }

    /// Checks that every buffer's length is a product that fits a word with room for sums:
    /// nine dimensions below 2^16 each still multiply far past 2^64, which would wrap to a
    /// small length in release builds and send a kernel beyond its slices.
    fn check_lens(&self) -> Result<(), MpcError> {
        let (oh, ow) = (self.out_h(), self.out_w());
        let (c, k) = (self.in_channels, [self.kernel_h, self.kernel_w]);
        let buffers: [(&str, Vec<usize>); 4] = [
            ("input", self.input_shape()),
            ("weight", self.weight_shape()),
            ("output", self.output_shape()),
            ("patch matrix of one image", vec![c, k[0], k[1], oh, ow]),
        ];
        for (what, dims) in buffers {
            let len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if len.is_none_or(|n| n > Self::MAX_LEN) {
                return Err(MpcError::invalid(
                    "conv2d",
                    format!(
                        "the {what} {dims:?} overflows the bound of 2^{} words on a buffer",
                        Self::MAX_LEN.trailing_zeros()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }

    /// `[N, C, H, W]`.
    pub fn input_shape(&self) -> Vec<usize> {
        vec![self.batch, self.in_channels, self.height, self.width]
    }

    /// `[O, C, kh, kw]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![
            self.out_channels,
            self.in_channels,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// `[N, O, OH, OW]`.
    pub fn output_shape(&self) -> Vec<usize> {
        vec![self.batch, self.out_channels, self.out_h(), self.out_w()]
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Elements of the weight.
    pub fn weight_len(&self) -> usize {
        self.weight_shape().iter().product()
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.output_shape().iter().product()
    }

    /// Words of one image's patch matrix (`C kh kw x OH OW`), what [`im2col`] builds.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w * self.out_h() * self.out_w()
    }
}

/// The `(C kh kw) x (OH OW)` patch matrix of one image (`CHW` slice).
pub fn im2col(g: &ConvGeometry, image: &[u64]) -> Vec<u64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let cols = oh * ow;
    let rows_per_channel = g.kernel_h * g.kernel_w;
    let mut out = vec![0u64; g.in_channels * rows_per_channel * cols];
    let fill = |(c, block): (usize, &mut [u64])| {
        let plane = &image[c * g.height * g.width..(c + 1) * g.height * g.width];
        for ky in 0..g.kernel_h {
            for kx in 0..g.kernel_w {
                let row = ky * g.kernel_w + kx;
                let dst = &mut block[row * cols..(row + 1) * cols];
                for y in 0..oh {
                    let iy = (y * g.stride + ky) as isize - g.padding as isize;
                    if iy < 0 || iy >= g.height as isize {
                        continue;
                    }
                    let src = &plane[iy as usize * g.width..(iy as usize + 1) * g.width];
                    for x in 0..ow {
                        let ix = (x * g.stride + kx) as isize - g.padding as isize;
                        if ix >= 0 && (ix as usize) < g.width {
                            dst[y * ow + x] = src[ix as usize];
                        }
                    }
                }
            }
        }
    };
    if out.len() >= PARALLEL_COPY {
        out.par_chunks_mut(rows_per_channel * cols)
            .enumerate()
            .for_each(fill);
    } else {
        out.chunks_mut(rows_per_channel * cols)
            .enumerate()
            .for_each(fill);
    }
    out
}

/// The wrapping convolution of `input` (NCHW) with `weight` (OIHW), without bias, NCHW out.
/// The geometry must be valid and the slices of its sizes (checked by the callers).
pub fn conv2d(g: &ConvGeometry, input: &[u64], weight: &[u64]) -> Vec<u64> {
    conv2d_with(g, input, None, weight, |_, _, _| {})
}

/// [`conv2d`] of `input + plus` (elementwise, when `plus` is given), each run of finished
/// output words passed through `epilogue(output channel, offset in the output, words)` while
/// still in cache. The sum is formed as the patches are gathered and the epilogue as the
/// product is stored, so neither costs a pass over memory of its own: what the preprocessed
/// protocol's server does with its share and the client's post, and its truncation after.
///
/// Per image, the patch matrix is gathered straight into the column panels the product
/// reads (no im2col matrix copied into panels after), in parallel over panels; then the
/// product, in parallel over blocks of output channels ([`gemm_packed`]).
pub fn conv2d_with<E>(
    g: &ConvGeometry,
    input: &[u64],
    plus: Option<&[u64]>,
    weight: &[u64],
    epilogue: E,
) -> Vec<u64>
where
    E: Fn(usize, usize, &mut [u64]) + Sync,
{
    let per_image_in = g.in_channels * g.height * g.width;
    let k = g.in_channels * g.kernel_h * g.kernel_w;
    let cols = g.out_h() * g.out_w();
    let per_image_out = g.out_channels * cols;
    let mut out = vec![0u64; g.output_len()];
    if out.is_empty() {
        return out;
    }
    let parallel = g.out_channels * k * cols >= PARALLEL_WORK;
    let mut packed = vec![0u64; cols.div_ceil(NR) * k * NR];
    for (b, out) in out.chunks_mut(per_image_out).enumerate() {
        let image = &input[b * per_image_in..(b + 1) * per_image_in];
        let plus = plus.map(|p| &p[b * per_image_in..(b + 1) * per_image_in]);
        pack_patches(g, image, plus, &mut packed, parallel);
        gemm_packed(
            g.out_channels,
            k,
            cols,
            weight,
            &packed,
            out,
            b * per_image_out,
            &epilogue,
            parallel,
        );
    }
    out
}

/// One image's patch matrix (`C kh kw x OH OW`, as [`im2col`] makes it) gathered into the
/// `NR`-column panels [`gemm_packed`] reads, from `image + plus`.
fn pack_patches(
    g: &ConvGeometry,
    image: &[u64],
    plus: Option<&[u64]>,
    packed: &mut [u64],
    parallel: bool,
) {
    let k = g.in_channels * g.kernel_h * g.kernel_w;
    let fill = |(jp, panel): (usize, &mut [u64])| match plus {
        Some(plus) => pack_panel(g, jp, panel, |i| image[i].wrapping_add(plus[i])),
        None => pack_panel(g, jp, panel, |i| image[i]),
    };
    if parallel {
        packed.par_chunks_mut(k * NR).enumerate().for_each(fill);
    } else {
        packed.chunks_mut(k * NR).enumerate().for_each(fill);
    }
}

/// Panel `jp` (output positions `jp NR ..`, `k` rows of `NR` words, zeros past the last
/// position) of the patch matrix, `at(i)` the input word at index `i` of the image. The
/// panel's positions fall into runs that share an output row; at stride 1 a run's taps are
/// a contiguous stretch of one input row, copied whole between the zeros of the padding
/// (every tap of a 1x1 convolution, all but the edges of a 3x3), with no test per word.
#[inline(always)]
fn pack_panel(g: &ConvGeometry, jp: usize, panel: &mut [u64], at: impl Fn(usize) -> u64) {
    let (ow, cols) = (g.out_w(), g.out_h() * g.out_w());
    let (h, w) = (g.height as isize, g.width as isize);
    let (stride, pad) = (g.stride as isize, g.padding as isize);
    let j0 = jp * NR;
    let lanes = NR.min(cols - j0);
    // (first lane, lanes, top and left input position of the first lane's window).
    let mut runs = [(0usize, 0usize, 0isize, 0isize); NR];
    let mut count = 0;
    let mut lane = 0;
    while lane < lanes {
        let (oy, ox) = ((j0 + lane) / ow, (j0 + lane) % ow);
        let len = (ow - ox).min(lanes - lane);
        runs[count] = (
            lane,
            len,
            oy as isize * stride - pad,
            ox as isize * stride - pad,
        );
        count += 1;
        lane += len;
    }
    let runs = &runs[..count];
    let plane = g.height * g.width;
    let mut p = 0;
    for c in 0..g.in_channels {
        for ky in 0..g.kernel_h as isize {
            for kx in 0..g.kernel_w as isize {
                let dst = &mut panel[p * NR..(p + 1) * NR];
                p += 1;
                dst[lanes..].fill(0);
                for &(lane0, len, iy0, ix0) in runs {
                    let d = &mut dst[lane0..lane0 + len];
                    let iy = iy0 + ky;
                    if !(0..h).contains(&iy) {
                        d.fill(0);
                        continue;
                    }
                    let row = c * plane + (iy * w) as usize;
                    let ix = ix0 + kx;
                    if stride == 1 {
                        // Lanes whose column is inside the image: [lo, hi).
                        let lo = (-ix).clamp(0, len as isize) as usize;
                        let hi = (w - ix).clamp(lo as isize, len as isize) as usize;
                        d[..lo].fill(0);
                        d[hi..].fill(0);
                        let start = (row as isize + ix) as usize;
                        for (t, d) in d[lo..hi].iter_mut().enumerate() {
                            *d = at(start + lo + t);
                        }
                    } else {
                        for (t, d) in d.iter_mut().enumerate() {
                            let x = ix + t as isize * stride;
                            *d = if (0..w).contains(&x) {
                                at(row + x as usize)
                            } else {
                                0
                            };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(g: &ConvGeometry, x: &[u64], w: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; g.output_len()];
        for b in 0..g.batch {
            for o in 0..g.out_channels {
                for y in 0..g.out_h() {
                    for xx in 0..g.out_w() {
                        let mut s = 0u64;
                        for c in 0..g.in_channels {
                            for ky in 0..g.kernel_h {
                                for kx in 0..g.kernel_w {
                                    let iy = (y * g.stride + ky) as isize - g.padding as isize;
                                    let ix = (xx * g.stride + kx) as isize - g.padding as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= g.height as isize
                                        || ix >= g.width as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * g.in_channels + c) * g.height + iy as usize)
                                        * g.width
                                        + ix as usize];
                                    let wv = w[((o * g.in_channels + c) * g.kernel_h + ky)
                                        * g.kernel_w
                                        + kx];
                                    s = s.wrapping_add(xv.wrapping_mul(wv));
                                }
                            }
                        }
                        out[((b * g.out_channels + o) * g.out_h() + y) * g.out_w() + xx] = s;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_convolution_matches_the_direct_loop() {
        for &(stride, padding, kh, kw) in &[(1, 0, 3, 3), (1, 1, 3, 3), (2, 1, 3, 2), (2, 0, 1, 1)]
        {
            let g = ConvGeometry {
                batch: 2,
                in_channels: 3,
                height: 7,
                width: 6,
                out_channels: 4,
                kernel_h: kh,
                kernel_w: kw,
                stride,
                padding,
            };
            g.validate().unwrap();
            let x: Vec<u64> = (0..g.input_len() as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let w: Vec<u64> = (0..g.weight_len() as u64)
                .map(|i| (i + 3).wrapping_mul(0xbf58_476d_1ce4_e5b9))
                .collect();
            assert_eq!(conv2d(&g, &x, &w), direct(&g, &x, &w));
        }
    }

    #[test]
    fn the_fused_sum_and_epilogue_are_those_of_separate_passes() {
        for &(o, stride, padding, k, hw) in &[
            (4, 1, 1, 3, 9),
            (6, 2, 1, 3, 11),
            (9, 1, 0, 1, 20),
            (5, 1, 3, 7, 12),
            // Wide enough for panels within one output row, large enough to run in parallel.
            (10, 1, 1, 3, 33),
            (8, 2, 3, 7, 40),
            (12, 1, 0, 1, 5),
        ] {
            let g = ConvGeometry {
                batch: 2,
                in_channels: 3,
                height: hw,
                width: hw + 1,
                out_channels: o,
                kernel_h: k,
                kernel_w: k,
                stride,
                padding,
            };
            g.validate().unwrap();
            let word = |i: u64, m: u64| i.wrapping_add(m).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let x: Vec<u64> = (0..g.input_len() as u64).map(|i| word(i, 1)).collect();
            let y: Vec<u64> = (0..g.input_len() as u64).map(|i| word(i, 5)).collect();
            let w: Vec<u64> = (0..g.weight_len() as u64).map(|i| word(i, 9)).collect();
            let sum: Vec<u64> = x.iter().zip(&y).map(|(a, b)| a.wrapping_add(*b)).collect();
            let plain = direct(&g, &sum, &w);
            let cols = g.out_h() * g.out_w();
            let want: Vec<u64> = plain
                .iter()
                .enumerate()
                .map(|(i, v)| (v >> 3) ^ ((i / cols) % o) as u64 ^ (i as u64) << 40)
                .collect();
            let got = conv2d_with(&g, &x, Some(&y), &w, |row, offset, words| {
                for (i, v) in words.iter_mut().enumerate() {
                    *v = (*v >> 3) ^ row as u64 ^ ((offset + i) as u64) << 40;
                }
            });
            assert_eq!(got, want, "{g:?}");
        }
    }

    #[test]
    fn bad_geometry_is_an_error() {
        let mut g = ConvGeometry {
            batch: 1,
            in_channels: 1,
            height: 2,
            width: 2,
            out_channels: 1,
            kernel_h: 5,
            kernel_w: 5,
            stride: 1,
            padding: 0,
        };
        assert!(g.validate().is_err());
        g.kernel_h = 1;
        g.kernel_w = 1;
        g.stride = 0;
        assert!(g.validate().is_err());
    }
}
