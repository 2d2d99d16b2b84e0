//! Reduction operators: the built-in [`Op`]s on the primitive numeric types, and user closures.
//!
//! Reductions are applied element-wise, `acc[i] = op(acc[i], x[i])`. Every operator here is
//! associative and commutative (floating-point sums only up to rounding): the algorithms combine
//! partial results in an order that depends on the communicator size, but every rank of one call
//! combines them in the same order, so all ranks get bit-identical results.

use bytemuck::Pod;

use crate::error::{Error, Result};

/// A built-in reduction operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Sum.
    Sum,
    /// Product.
    Prod,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Bitwise and (integers only).
    BitAnd,
    /// Bitwise or (integers only).
    BitOr,
    /// Bitwise exclusive or (integers only).
    BitXor,
    /// Logical and (integers only): 1 if both are nonzero, else 0 (MPI's `MPI_LAND`).
    And,
    /// Logical or (integers only): 1 if either is nonzero, else 0.
    Or,
    /// Logical exclusive or (integers only): 1 if exactly one is nonzero, else 0.
    Xor,
    /// The smallest value and its index, over `[value, index]` pairs (`[T; 2]`): ties go to
    /// the smaller index, as `MPI_MINLOC` does. See [`Reduce`] for the pairs.
    MinLoc,
    /// The largest value and its index, over `[value, index]` pairs (`[T; 2]`): ties go to
    /// the smaller index, as `MPI_MAXLOC` does.
    MaxLoc,
}

/// Element types the built-in [`Op`]s apply to: the primitive integers and floats, and pairs
/// `[T; 2]` of them.
///
/// A pair `[value, index]` is what [`Op::MinLoc`] and [`Op::MaxLoc`] reduce (the index in the
/// value's type, as MPI's `MPI_2INT` and `MPI_2DOUBLE_PRECISION`: exact for indices below 2^53
/// in an `f64`, 2^24 in an `f32`); the other operators apply to both halves of a pair.
///
/// ```
/// use mpr::Op;
/// let world = mpr::init()?;
/// let rank = world.rank();
/// let error = [((rank as f64) - 1.5).abs(), rank as f64]; // [value, where it is]
/// let mut worst = [[0.0f64; 2]];
/// world.allreduce(&[error], &mut worst, Op::MaxLoc)?;
/// println!("largest error {} on rank {}", worst[0][0], worst[0][1] as usize);
/// # Ok::<(), mpr::Error>(())
/// ```
///
/// Implement it for a type of your own to reduce it with the built-in operators' names (or use
/// the closure forms, [`Comm::allreduce_with`](crate::Comm::allreduce_with) and friends, which
/// need only `Pod`). The operation must be associative and commutative, and the same on every
/// rank:
///
/// ```
/// use mpr::{Error, Op, Reduce};
/// /// A complex number; `Sum` and `Prod` are the complex operations.
/// #[derive(Clone, Copy, Debug, PartialEq, mpr::Pod, mpr::Zeroable)]
/// #[repr(C)]
/// struct Complex { re: f64, im: f64 }
///
/// impl Reduce for Complex {
///     fn reduce(op: Op, acc: &mut [Self], x: &[Self]) -> mpr::Result<()> {
///         for (a, b) in acc.iter_mut().zip(x) {
///             *a = match op {
///                 Op::Sum => Complex { re: a.re + b.re, im: a.im + b.im },
///                 Op::Prod => Complex { re: a.re * b.re - a.im * b.im, im: a.re * b.im + a.im * b.re },
///                 _ => return Err(Error::InvalidArgument { what: "Complex", detail: format!("{op:?}") }),
///             };
///         }
///         Ok(())
///     }
/// }
///
/// let world = mpr::init()?;
/// let mut total = [Complex { re: 0.0, im: 0.0 }];
/// world.allreduce(&[Complex { re: 1.0, im: 2.0 }], &mut total, Op::Sum)?;
/// assert_eq!(total[0].im, 2.0 * world.size() as f64);
/// # Ok::<(), mpr::Error>(())
/// ```
pub trait Reduce: Pod + Send + Sync {
    /// `acc[i] = op(acc[i], x[i])` for every `i`; an error if `op` does not apply to the type.
    fn reduce(op: Op, acc: &mut [Self], x: &[Self]) -> Result<()>;
}

/// `acc[i] = f(acc[i], x[i])`, monomorphized per operator so the loop vectorizes.
#[inline(always)]
fn zip_apply<T: Copy>(acc: &mut [T], x: &[T], f: impl Fn(T, T) -> T) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a = f(*a, b);
    }
}

fn not_for(op: Op, ty: &str) -> Error {
    let detail = match op {
        Op::MinLoc | Op::MaxLoc => {
            format!("{op:?} applies to [value, index] pairs ([{ty}; 2]), not to {ty}")
        }
        _ => format!("{op:?} does not apply to {ty}"),
    };
    Error::InvalidArgument {
        what: "reduction",
        detail,
    }
}

/// Logical truth of an integer, and back.
macro_rules! logical {
    ($t:ty, $f:expr) => {
        |a: $t, b: $t| -> $t { <$t>::from($f(a != 0, b != 0)) }
    };
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl Reduce for $t {
            fn reduce(op: Op, acc: &mut [Self], x: &[Self]) -> Result<()> {
                match op {
                    Op::Sum => zip_apply(acc, x, <$t>::wrapping_add),
                    Op::Prod => zip_apply(acc, x, <$t>::wrapping_mul),
                    Op::Min => zip_apply(acc, x, |a: $t, b| a.min(b)),
                    Op::Max => zip_apply(acc, x, |a: $t, b| a.max(b)),
                    Op::BitAnd => zip_apply(acc, x, |a, b| a & b),
                    Op::BitOr => zip_apply(acc, x, |a, b| a | b),
                    Op::BitXor => zip_apply(acc, x, |a, b| a ^ b),
                    Op::And => zip_apply(acc, x, logical!($t, |a, b| a && b)),
                    Op::Or => zip_apply(acc, x, logical!($t, |a, b| a || b)),
                    Op::Xor => zip_apply(acc, x, logical!($t, |a: bool, b: bool| a != b)),
                    Op::MinLoc | Op::MaxLoc => return Err(not_for(op, stringify!($t))),
                }
                Ok(())
            }
        }
    )*};
}
integers!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

macro_rules! floats {
    ($($t:ty),*) => {$(
        impl Reduce for $t {
            fn reduce(op: Op, acc: &mut [Self], x: &[Self]) -> Result<()> {
                match op {
                    Op::Sum => zip_apply(acc, x, |a, b| a + b),
                    Op::Prod => zip_apply(acc, x, |a, b| a * b),
                    Op::Min => zip_apply(acc, x, <$t>::min),
                    Op::Max => zip_apply(acc, x, <$t>::max),
                    Op::BitAnd | Op::BitOr | Op::BitXor | Op::And | Op::Or | Op::Xor
                    | Op::MinLoc | Op::MaxLoc => return Err(not_for(op, stringify!($t))),
                }
                Ok(())
            }
        }
    )*};
}
floats!(f32, f64);

/// `[value, index]` pairs: [`Op::MinLoc`] and [`Op::MaxLoc`] compare values and keep the pair
/// that wins (the smaller index on a tie); the other operators apply to both halves.
impl<T: Reduce + PartialOrd> Reduce for [T; 2] {
    fn reduce(op: Op, acc: &mut [Self], x: &[Self]) -> Result<()> {
        // A value that is not ordered with the other (NaN) never wins.
        let wins =
            |b: &[T; 2], a: &[T; 2], better: std::cmp::Ordering| match b[0].partial_cmp(&a[0]) {
                Some(o) if o == better => true,
                Some(std::cmp::Ordering::Equal) => b[1] < a[1],
                _ => false,
            };
        match op {
            Op::MinLoc | Op::MaxLoc => {
                let better = if op == Op::MinLoc {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                };
                for (a, b) in acc.iter_mut().zip(x) {
                    if wins(b, a, better) {
                        *a = *b;
                    }
                }
                Ok(())
            }
            _ => T::reduce(op, bytemuck::cast_slice_mut(acc), bytemuck::cast_slice(x)),
        }
    }
}

/// How a reduction folds a partial result into another, element-wise and in place:
/// `f(acc, x, x_lower)` sets `acc[i] = op(x[i], acc[i])` when `x` holds the contribution of lower
/// ranks than `acc` (`x_lower`), else `op(acc[i], x[i])`. Keeping that order is what makes every
/// rank's result bit-identical; the built-in operators are commutative and ignore it.
pub(crate) type Combiner<'a, T> = &'a CombineFn<'a, T>;

/// The function behind a [`Combiner`].
pub(crate) type CombineFn<'f, T> = dyn Fn(&mut [T], &[T], bool) -> Result<()> + 'f;

/// The combiner of a built-in operator, after checking up front that it applies to `T` (so that
/// no rank fails midway through a collective). With `par = Some(n)`, vectors of at least `n`
/// elements are folded by rayon's threads in chunks (see [`crate::Tuning::par_reduce`]).
pub(crate) fn builtin<T: Reduce>(op: Op, par: Option<usize>) -> Result<Box<CombineFn<'static, T>>> {
    let mut one = [T::zeroed()];
    T::reduce(op, &mut one, &[T::zeroed()])?;
    Ok(Box::new(
        move |acc: &mut [T], x: &[T], _x_lower: bool| match par {
            Some(min) if acc.len() >= min => par_reduce(op, acc, x),
            _ => T::reduce(op, acc, x),
        },
    ))
}

/// [`Reduce::reduce`] on rayon's threads, in chunks of at least 64 KiB.
fn par_reduce<T: Reduce>(op: Op, acc: &mut [T], x: &[T]) -> Result<()> {
    use rayon::prelude::*;
    let chunk = ((64 << 10) / std::mem::size_of::<T>().max(1)).max(1);
    acc.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .try_for_each(|(a, b)| T::reduce(op, a, b))
}

/// The combiner of a user closure.
pub(crate) fn user<T: Pod>(f: impl Fn(&T, &T) -> T) -> impl Fn(&mut [T], &[T], bool) -> Result<()> {
    move |acc: &mut [T], x: &[T], x_lower: bool| {
        for (a, b) in acc.iter_mut().zip(x) {
            *a = if x_lower { f(b, a) } else { f(a, b) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins() {
        let mut a = [1i32, 5, -3];
        i32::reduce(Op::Sum, &mut a, &[2, 2, 2]).unwrap();
        assert_eq!(a, [3, 7, -1]);
        i32::reduce(Op::Max, &mut a, &[4, 4, 4]).unwrap();
        assert_eq!(a, [4, 7, 4]);
        let mut b = [0b1100u8];
        u8::reduce(Op::BitXor, &mut b, &[0b1010]).unwrap();
        assert_eq!(b, [0b0110]);
        let mut f = [1.5f64, -2.0];
        f64::reduce(Op::Prod, &mut f, &[2.0, 3.0]).unwrap();
        assert_eq!(f, [3.0, -6.0]);
        assert!(f64::reduce(Op::BitAnd, &mut f, &[1.0, 1.0]).is_err());
        assert!(builtin::<f32>(Op::BitOr, None).is_err());
        let c = builtin::<u16>(Op::BitOr, None).unwrap();
        let mut acc = [1u16, 2];
        c(&mut acc, &[4, 8], true).unwrap();
        assert_eq!(acc, [5, 10]);
        let cat = user(|a: &u32, b: &u32| a * 10 + b);
        let mut acc = [2u32];
        cat(&mut acc, &[1], true).unwrap();
        assert_eq!(acc, [12], "lower ranks' data first");
        cat(&mut acc, &[3], false).unwrap();
        assert_eq!(acc, [123]);
        let mut w = [u64::MAX];
        u64::reduce(Op::Sum, &mut w, &[2]).unwrap();
        assert_eq!(w, [1], "integer sums wrap");
    }

    #[test]
    fn logical_and_located() {
        let mut l = [0i32, 3, 0, -1];
        i32::reduce(Op::And, &mut l, &[5, 7, 0, 0]).unwrap();
        assert_eq!(l, [0, 1, 0, 0]);
        let mut l = [0u8, 3, 0, 9];
        u8::reduce(Op::Or, &mut l, &[5, 0, 0, 0]).unwrap();
        assert_eq!(l, [1, 1, 0, 1]);
        let mut l = [0u64, 3, 0, 9];
        u64::reduce(Op::Xor, &mut l, &[5, 4, 0, 0]).unwrap();
        assert_eq!(l, [1, 0, 0, 1]);
        assert!(f64::reduce(Op::And, &mut [1.0], &[1.0]).is_err());
        let e = i32::reduce(Op::MinLoc, &mut [1], &[2]).unwrap_err();
        assert!(e.to_string().contains("[i32; 2]"), "{e}");

        let mut m = [[3.0f64, 7.0], [1.0, 4.0], [2.0, 9.0], [f64::NAN, 1.0]];
        let x = [[2.0, 8.0], [1.0, 2.0], [5.0, 0.0], [0.0, 3.0]];
        <[f64; 2]>::reduce(Op::MinLoc, &mut m, &x).unwrap();
        assert_eq!(
            m[..3],
            [[2.0, 8.0], [1.0, 2.0], [2.0, 9.0]],
            "smaller value; tie: smaller index"
        );
        assert!(m[3][0].is_nan(), "an unordered value never wins");
        let mut m = [[3i32, 7], [1, 4], [2, 9]];
        <[i32; 2]>::reduce(Op::MaxLoc, &mut m, &[[2, 8], [1, 2], [5, 0]]).unwrap();
        assert_eq!(m, [[3, 7], [1, 2], [5, 0]]);
        let mut s = [[1u32, 2]];
        <[u32; 2]>::reduce(Op::Sum, &mut s, &[[10, 20]]).unwrap();
        assert_eq!(s, [[11, 22]], "other operators apply to both halves");
        // Commutative, so every rank of any tree gets the same pair.
        let (a, b) = ([[1.0f32, 5.0]], [[1.0f32, 3.0]]);
        let (mut ab, mut ba) = (a, b);
        <[f32; 2]>::reduce(Op::MaxLoc, &mut ab, &b).unwrap();
        <[f32; 2]>::reduce(Op::MaxLoc, &mut ba, &a).unwrap();
        assert_eq!(ab, ba);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "rayon's crossbeam-epoch trips Miri's Stacked Borrows checks"
    )]
    fn parallel_fold_matches_serial() {
        let x: Vec<f64> = (0..300_000).map(|i| (i % 97) as f64 * 0.25).collect();
        let mut serial: Vec<f64> = (0..300_000).map(|i| (i % 13) as f64).collect();
        let mut parallel = serial.clone();
        builtin::<f64>(Op::Sum, None).unwrap()(&mut serial, &x, false).unwrap();
        builtin::<f64>(Op::Sum, Some(1000)).unwrap()(&mut parallel, &x, false).unwrap();
        assert_eq!(
            serial, parallel,
            "element-wise folds are the same in any chunking"
        );
    }

    /// Times the fold of 4 Mi f32 serially and on rayon: `cargo test --release -p mpr --lib
    /// fold_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn fold_timing() {
        let x = vec![1.0f32; 4 << 20];
        let mut acc = vec![2.0f32; 4 << 20];
        for (name, par) in [
            ("serial", None),
            ("rayon", Some(1)),
            ("serial", None),
            ("rayon", Some(1)),
        ] {
            let f = builtin::<f32>(Op::Sum, par).unwrap();
            let t = std::time::Instant::now();
            for _ in 0..20 {
                f(&mut acc, &x, false).unwrap();
            }
            println!(
                "{name}: {:.0} us per 16 MiB fold",
                t.elapsed().as_secs_f64() * 1e6 / 20.0
            );
        }
    }
}
