//! The one matrix product the float reference needs (f64, over `matrixmultiply`).

/// `C = A B` with `A` `m x k` and `B` `k x n` given by their row and column strides, `C` a
/// row-major `m x n` slice. Panics if a slice is too short for the dimensions and strides
/// (checked here, so that the unsafe call below cannot read or write out of bounds).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    (rsa, csa): (usize, usize),
    b: &[f64],
    (rsb, csb): (usize, usize),
    c: &mut [f64],
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(a.len() >= last(m, k, rsa, csa), "dgemm: a too short");
    assert!(b.len() >= last(k, n, rsb, csb), "dgemm: b too short");
    assert!(c.len() >= m * n, "dgemm: c too short");
    if m == 0 || n == 0 {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: the asserts above bound every element the strides can reach inside the slices;
    // `c` does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
