//! The order of a walk over a graph's values and the moment each value is freed, computed once
//! per graph (tract's `SimplePlan`): every executor (the float reference here, the fixed-point
//! mirror and the secure runner in `pillar-infer`) walks its graph through [`Schedule::walk`],
//! so the value-freeing loop is written once.

use crate::error::NnError;
use crate::graph::ValueId;

/// The values each step reads, and after which step each value is read no more.
///
/// Value 0 is the input; step `i` computes value `i + 1`. A value is dropped right after the
/// last step that reads it, unless it is the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Per step, the values it reads.
    inputs: Vec<Vec<ValueId>>,
    /// Per step, the values no later step reads (and that are not the output).
    frees: Vec<Vec<ValueId>>,
    output: ValueId,
}

impl Schedule {
    /// The schedule of steps reading `inputs` (step `i` may read values `0..=i`) and returning
    /// `output`. Errors name the first step that reads a value not yet computed.
    pub fn new(inputs: Vec<Vec<ValueId>>, output: ValueId) -> Result<Schedule, NnError> {
        let steps = inputs.len();
        if output > steps {
            return Err(NnError::Output { output, steps });
        }
        // The last step reading each value; a value nobody reads is freed once computed.
        let mut last: Vec<usize> = (0..=steps).map(|v| v.saturating_sub(1)).collect();
        for (i, reads) in inputs.iter().enumerate() {
            if let Some(&value) = reads.iter().find(|&&v| v > i) {
                return Err(NnError::ReadsAhead { step: i, value });
            }
            for &v in reads {
                last[v] = i;
            }
        }
        let mut frees = vec![Vec::new(); steps];
        for (v, &step) in last.iter().enumerate() {
            if v != output && steps > 0 {
                frees[step].push(v);
            }
        }
        Ok(Schedule {
            inputs,
            frees,
            output,
        })
    }

    /// Steps in the walk.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no steps (the graph returns its input).
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The values step `i` reads.
    pub fn inputs(&self, i: usize) -> &[ValueId] {
        &self.inputs[i]
    }

    /// The values freed after step `i`: those it was the last to read (a value no step reads
    /// right after it is computed), never the output.
    pub fn frees(&self, i: usize) -> &[ValueId] {
        &self.frees[i]
    }

    /// The value returned.
    pub fn output(&self) -> ValueId {
        self.output
    }

    /// [`Schedule::walk`] for steps that cannot fail.
    pub fn run<V>(&self, input: V, mut step: impl FnMut(usize, &[&V]) -> V) -> V {
        match self.walk(input, |i, x| Ok::<V, std::convert::Infallible>(step(i, x))) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Runs every step in order from `input`: `step(i, operands)` computes value `i + 1` from
    /// the values step `i` reads, in the order it reads them. Each value is dropped right
    /// after its last reader; the output is returned.
    pub fn walk<V, E>(
        &self,
        input: V,
        mut step: impl FnMut(usize, &[&V]) -> Result<V, E>,
    ) -> Result<V, E> {
        let mut values: Vec<Option<V>> = std::iter::repeat_with(|| None)
            .take(self.len() + 1)
            .collect();
        values[0] = Some(input);
        for (i, reads) in self.inputs.iter().enumerate() {
            let y = {
                let operands: Vec<&V> = reads
                    .iter()
                    .map(|&v| {
                        values[v]
                            .as_ref()
                            .expect("Schedule::new checked that every value is computed first")
                    })
                    .collect();
                step(i, &operands)?
            };
            values[i + 1] = Some(y);
            for &v in &self.frees[i] {
                values[v] = None;
            }
        }
        Ok(values[self.output]
            .take()
            .expect("the output is never freed"))
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    #[test]
    fn values_are_freed_after_their_last_reader() {
        // 0 -> 1 -> 2, and 3 = 1 + 2: value 1 lives until step 2.
        let s = Schedule::new(vec![vec![0], vec![1], vec![1, 2]], 3).unwrap();
        assert_eq!(s.frees, vec![vec![0], vec![], vec![1, 2]]);
        let live = std::cell::RefCell::new(Vec::new());
        let out = s
            .walk(1i64, |i, x| {
                live.borrow_mut().push(x.len());
                Ok::<_, ()>(match i {
                    2 => *x[0] + *x[1],
                    _ => *x[0] * 10,
                })
            })
            .unwrap();
        assert_eq!(out, 110);
        assert_eq!(*live.borrow(), vec![1, 1, 2]);
    }

    #[test]
    fn reading_ahead_and_a_missing_output_are_refused() {
        assert!(Schedule::new(vec![vec![1]], 1).is_err());
        assert!(Schedule::new(vec![vec![0]], 2).is_err());
        let empty = Schedule::new(vec![], 0).unwrap();
        assert_eq!(empty.walk(7, |_, _| Err::<i32, ()>(())), Ok(7));
    }
}
