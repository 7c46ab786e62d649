//! Shape inference: every node checked against its operands, with the node named on error.

use crate::error::{NnError, node_error as err};
use crate::graph::{Graph, Node, Op, Pool};

fn chw(node: &Node, s: &[usize]) -> Result<(usize, usize, usize), NnError> {
    match *s {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(err(node, format!("expects a [C, H, W] input, got {s:?}"))),
    }
}

fn pooled(node: &Node, s: &[usize], p: Pool) -> Result<Vec<usize>, NnError> {
    let (c, h, w) = chw(node, s)?;
    let (oh, ow) = p.output(h, w).map_err(|e| err(node, e))?;
    Ok(vec![c, oh, ow])
}

fn bias_len(node: &Node, bias: Option<&crate::Tensor>, out: usize) -> Result<(), NnError> {
    match bias {
        Some(b) if b.shape() != [out] => Err(err(
            node,
            format!("bias of shape {:?}, expected [{out}]", b.shape()),
        )),
        _ => Ok(()),
    }
}

/// The weight's dimensions, if it has the `N` axes `layout` names.
fn weight_dims<const N: usize>(
    node: &Node,
    weight: &crate::Tensor,
    layout: &str,
) -> Result<[usize; N], NnError> {
    <[usize; N]>::try_from(weight.shape()).map_err(|_| {
        err(
            node,
            format!("weight of shape {:?}, expected {layout}", weight.shape()),
        )
    })
}

/// Errors unless the weight's `what` dimension equals the input's.
fn expect_match(node: &Node, what: &str, weight: usize, input: usize) -> Result<(), NnError> {
    if weight == input {
        Ok(())
    } else {
        Err(err(
            node,
            format!("weight expects {weight} {what}, the input has {input}"),
        ))
    }
}

/// Shapes of all values (index = value id), or the first node that does not fit.
pub(crate) fn infer(g: &Graph) -> Result<Vec<Vec<usize>>, NnError> {
    let mut shapes: Vec<Vec<usize>> = vec![g.input_shape.clone()];
    for (i, node) in g.nodes.iter().enumerate() {
        if node.inputs.len() != node.op.arity() {
            return Err(err(
                node,
                format!(
                    "takes {} input(s), has {}",
                    node.op.arity(),
                    node.inputs.len()
                ),
            ));
        }
        if let Some(&bad) = node.inputs.iter().find(|&&v| v > i) {
            return Err(err(
                node,
                format!("reads value {bad}, which is not computed before it"),
            ));
        }
        let s = &shapes[node.inputs[0]];
        let out = match &node.op {
            Op::Conv2d(conv) => {
                let (c, h, w) = chw(node, s)?;
                let [o, wc, kh, kw] = weight_dims(node, &conv.weight, "[O, C, kh, kw]")?;
                expect_match(node, "input channels", wc, c)?;
                if conv.stride == 0 || kh == 0 || kw == 0 {
                    return Err(err(node, "kernel and stride must be positive"));
                }
                let (ph, pw) = (h + 2 * conv.padding, w + 2 * conv.padding);
                if kh > ph || kw > pw {
                    return Err(err(
                        node,
                        format!("{kh}x{kw} kernel does not fit the padded {ph}x{pw} input"),
                    ));
                }
                bias_len(node, conv.bias.as_ref(), o)?;
                vec![o, (ph - kh) / conv.stride + 1, (pw - kw) / conv.stride + 1]
            }
            Op::BatchNorm(bn) => {
                let c = s.first().copied().unwrap_or(0);
                let lens = [bn.gamma.len(), bn.beta.len(), bn.mean.len(), bn.var.len()];
                if lens.iter().any(|&l| l != c) {
                    return Err(err(
                        node,
                        format!("parameters of lengths {lens:?} for {c} channels"),
                    ));
                }
                s.clone()
            }
            Op::Linear(lin) => {
                let &[f] = s.as_slice() else {
                    return Err(err(node, format!("expects a flat input, got {s:?}")));
                };
                let [out, inp] = weight_dims(node, &lin.weight, "[out, in]")?;
                expect_match(node, "features", inp, f)?;
                bias_len(node, lin.bias.as_ref(), out)?;
                vec![out]
            }
            Op::AvgPool(p) | Op::MaxPool(p) => pooled(node, s, *p)?,
            Op::GlobalAvgPool => {
                let (c, _, _) = chw(node, s)?;
                vec![c, 1, 1]
            }
            Op::Add => {
                let other = &shapes[node.inputs[1]];
                if other != s {
                    return Err(err(node, format!("adds {s:?} and {other:?}")));
                }
                s.clone()
            }
            Op::Flatten => vec![s.iter().product()],
            Op::Relu => s.clone(),
            Op::Clip(c) => {
                let finite = [c.min, c.max].iter().flatten().all(|v| v.is_finite());
                if !finite || matches!((c.min, c.max), (Some(lo), Some(hi)) if lo > hi) {
                    return Err(err(
                        node,
                        format!(
                            "bounds [{:?}, {:?}] must be finite with min <= max",
                            c.min, c.max
                        ),
                    ));
                }
                s.clone()
            }
            Op::PolyAct(p) => {
                if p.coefficients.is_empty() || p.coefficients.iter().any(|c| !c.is_finite()) {
                    return Err(err(node, "coefficients must be finite and at least one"));
                }
                s.clone()
            }
        };
        shapes.push(out);
    }
    if g.output > g.nodes.len() {
        return Err(NnError::Output {
            output: g.output,
            steps: g.nodes.len(),
        });
    }
    if let Some(t) = g.output_transform
        && shapes[g.output].len() != 1
    {
        return Err(NnError::Node {
            node: "output".into(),
            op: t.name(),
            detail: format!(
                "applies over the classes of a flat output, got {:?} (flatten first)",
                shapes[g.output]
            ),
        });
    }
    Ok(shapes)
}
