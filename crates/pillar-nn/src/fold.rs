//! BatchNorm folding: a BatchNorm right after a convolution or linear layer is an affine map
//! per output channel, so it can be merged into that layer's weights and bias. Exact in real
//! arithmetic, it saves the secure engine two Beaver products per BatchNorm layer.

use crate::error::NnError;
use crate::graph::{Graph, Op};
use crate::tensor::Tensor;
use crate::typed::TypedGraph;

/// Scales output channel `o` of `weight` (its first axis) by `scale[o]` and maps the bias to
/// `scale * b + shift`.
fn fold_into(
    weight: &mut Tensor,
    bias: &mut Option<Tensor>,
    affine: &[(f64, f64)],
) -> Result<(), NnError> {
    let out = affine.len();
    let per = weight.len() / out.max(1);
    for (o, chunk) in weight.data_mut().chunks_mut(per).enumerate() {
        // One rounding to f32 per folded parameter.
        chunk
            .iter_mut()
            .for_each(|w| *w = (f64::from(*w) * affine[o].0) as f32);
    }
    let old: Vec<f32> = match bias {
        Some(b) => b.data().to_vec(),
        None => vec![0.0; out],
    };
    let new = old
        .iter()
        .zip(affine)
        .map(|(b, (s, t))| (f64::from(*b) * s + t) as f32)
        .collect();
    *bias = Some(Tensor::new(vec![out], new)?);
    Ok(())
}

/// The graph with every foldable BatchNorm merged into the layer before it. A BatchNorm is
/// foldable when it reads a Conv2d or Linear output that nothing else reads; others stay.
/// Folding changes no shape, so the folded values keep the shapes already known.
pub(crate) fn fold_batchnorm(g: &TypedGraph) -> Result<TypedGraph, NnError> {
    let readers = g.readers();
    let mut out = Graph::new(g.input_shape.clone());
    let mut shapes = vec![g.shapes()[0].clone()];
    // New value id of each old value.
    let mut map: Vec<usize> = vec![0; g.nodes.len() + 1];
    for (i, node) in g.nodes.iter().enumerate() {
        if let Op::BatchNorm(bn) = &node.op {
            let src = node.inputs[0];
            if src > 0 && readers[src] == 1 {
                let target = &mut out.nodes[map[src] - 1];
                let affine = bn.affine();
                let folded = match &mut target.op {
                    Op::Conv2d(c) => fold_into(&mut c.weight, &mut c.bias, &affine).map(|()| true),
                    Op::Linear(l) => fold_into(&mut l.weight, &mut l.bias, &affine).map(|()| true),
                    _ => Ok(false),
                }?;
                if folded {
                    map[i + 1] = map[src];
                    continue;
                }
            }
        }
        let inputs = node.inputs.iter().map(|&v| map[v]).collect();
        map[i + 1] = out.push(node.name.clone(), node.op.clone(), inputs);
        shapes.push(g.shapes()[i + 1].clone());
    }
    out.output = map[g.output];
    out.output_transform = g.output_transform;
    TypedGraph::with_shapes(out, shapes)
}
