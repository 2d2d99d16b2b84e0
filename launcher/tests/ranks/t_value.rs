//! Rank program for the value tests: `t_value CASE`. Each case checks its own results and exits
//! non-zero with a message on any mismatch; rank 0 prints `ok CASE` on success.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::process::ExitCode;

#[path = "harness.rs"]
mod harness;
use harness::{e, run_case, R};

use mpr::serde::{de::DeserializeOwned, Deserialize, Serialize, Serializer};
use mpr::{Error, World, ANY_SOURCE, ANY_TAG};

fn main() -> ExitCode {
    run_case(|world, case, _| match case {
        "shapes" => shapes(world),
        "big" => big(world),
        "corrupt" => corrupt(world),
        "unencodable" => unencodable(world),
        "dropped" => dropped(world),
        other => Err(format!("unknown case {other:?}")),
    })
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(crate = "mpr::serde")]
enum Shape {
    Point,
    Circle { r: f64 },
    Poly(Vec<(i32, i32)>),
    Group(Vec<Shape>),
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(crate = "mpr::serde")]
struct Sample {
    name: String,
    data: Vec<f64>,
}

/// Every value operation on the value `make(r)` of each rank `r`, every result checked.
fn all_ops<T>(w: &World, what: &str, make: impl Fn(usize) -> T) -> R<()>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (rank, n) = (w.rank(), w.size());
    let (left, right) = ((rank + n - 1) % n, (rank + 1) % n);
    let mine = make(rank);
    let fail = |op: &str, err: Error| format!("{what}: {op}: {err}");
    // A ring of isend_value / recv_value with wildcards.
    mpr::scope(|s| -> R<()> {
        let q = w
            .isend_value(s, &mine, right, 5)
            .map_err(|x| fail("isend_value", x))?;
        let (got, st) = w
            .recv_value::<T>(ANY_SOURCE, ANY_TAG)
            .map_err(|x| fail("recv_value", x))?;
        check!(
            got == make(left),
            "{what}: recv_value got {got:?} from {}",
            st.source()
        );
        check!(
            (st.source(), st.tag()) == (left, 5),
            "{what}: status {st:?}"
        );
        q.wait().map_err(|x| fail("isend_value wait", x))?;
        Ok(())
    })?;
    // The same ring into irecv_value (posted first, wildcards) and out of a matched probe.
    w.barrier().map_err(|x| fail("barrier", x))?;
    mpr::scope(|s| -> R<()> {
        let r = w
            .irecv_value::<T>(s, ANY_SOURCE, ANY_TAG)
            .map_err(|x| fail("irecv_value", x))?;
        let q = w
            .isend_value(s, &mine, right, 9)
            .map_err(|x| fail("isend_value", x))?;
        let (got, st) = r.wait().map_err(|x| fail("irecv_value wait", x))?;
        check!(
            got == make(left) && (st.source(), st.tag()) == (left, 9),
            "{what}: irecv_value got {got:?}, {st:?}"
        );
        q.wait().map_err(|x| fail("isend_value wait", x))?;
        Ok(())
    })?;
    w.barrier().map_err(|x| fail("barrier", x))?;
    mpr::scope(|s| -> R<()> {
        let q = w
            .isend_value(s, &mine, right, 10)
            .map_err(|x| fail("isend_value", x))?;
        let msg = w.mprobe(ANY_SOURCE, 10).map_err(|x| fail("mprobe", x))?;
        let (got, st) = msg
            .recv_value::<T>()
            .map_err(|x| fail("Message::recv_value", x))?;
        check!(
            got == make(left) && st.source() == left,
            "{what}: Message::recv_value got {got:?}"
        );
        q.wait().map_err(|x| fail("isend_value wait", x))?;
        Ok(())
    })?;
    // The wildcards above must not catch the messages below.
    w.barrier().map_err(|x| fail("barrier", x))?;
    // Blocking send_value, probed first: the status gives the encoded size.
    if rank == 0 {
        w.send_value(&mine, n - 1, 6)
            .map_err(|x| fail("send_value", x))?;
    }
    if rank == n - 1 {
        let st = w.probe(ANY_SOURCE, 6).map_err(|x| fail("probe", x))?;
        let (got, st2) = w
            .recv_value::<T>(st.source(), 6)
            .map_err(|x| fail("recv_value", x))?;
        check!(
            got == make(0) && st2 == st,
            "{what}: probed {st:?}, received {st2:?}"
        );
    }
    // ssend_value to the last rank, received with ANY_SOURCE.
    if rank == 0 && n > 1 {
        w.ssend_value(&mine, n - 1, 7)
            .map_err(|x| fail("ssend_value", x))?;
    }
    if rank == n - 1 && n > 1 {
        let (got, st) = w
            .recv_value::<T>(ANY_SOURCE, 7)
            .map_err(|x| fail("recv_value", x))?;
        check!(
            got == make(0) && st.source() == 0,
            "{what}: after ssend_value: {got:?}"
        );
    }
    let (got, st) = w
        .sendrecv_value::<T, T>(&mine, right, 8, left, 8)
        .map_err(|x| fail("sendrecv_value", x))?;
    check!(
        got == make(left) && st.source() == left,
        "{what}: sendrecv_value got {got:?}"
    );
    for root in [0, n - 1, n / 2] {
        let mut v = if rank == root {
            make(root)
        } else {
            make(n + 1)
        };
        w.broadcast_value(&mut v, root)
            .map_err(|x| fail("broadcast_value", x))?;
        check!(
            v == make(root),
            "{what}: broadcast_value from {root} gave {v:?}"
        );
        let all = w
            .gather_values(&mine, root)
            .map_err(|x| fail("gather_values", x))?;
        match all {
            Some(all) => {
                check!(
                    rank == root,
                    "{what}: gather_values gave Some at a non-root"
                );
                check!(
                    all.into_iter().eq((0..n).map(&make)),
                    "{what}: gather_values at {root}"
                );
            }
            None => check!(rank != root, "{what}: gather_values gave None at the root"),
        }
        let values: Vec<T> = if rank == root {
            (0..n).map(&make).collect()
        } else {
            Vec::new()
        };
        let got = w
            .scatter_values(&values, root)
            .map_err(|x| fail("scatter_values", x))?;
        check!(
            got == mine,
            "{what}: scatter_values from {root} gave {got:?}"
        );
    }
    let all = w
        .allgather_values(&mine)
        .map_err(|x| fail("allgather_values", x))?;
    check!(
        all.into_iter().eq((0..n).map(&make)),
        "{what}: allgather_values"
    );
    let out: Vec<T> = (0..n).map(|_| make(rank)).collect();
    let got = w
        .alltoall_values(&out)
        .map_err(|x| fail("alltoall_values", x))?;
    check!(
        got.into_iter().eq((0..n).map(&make)),
        "{what}: alltoall_values"
    );
    Ok(())
}

/// A dozen shapes through every value operation, and the Pod ones against the same data sent
/// as a slice.
fn shapes(w: &World) -> R<()> {
    all_ops(w, "String", |r| format!("rank {r} says ünïcode ✓"))?;
    all_ops(w, "empty String", |_| String::new())?;
    all_ops(w, "Vec<String>", |r| {
        (0..r).map(|i| "x".repeat(i)).collect::<Vec<_>>()
    })?;
    all_ops(w, "empty Vec<u64>", |_| Vec::<u64>::new())?;
    all_ops(w, "nested enum", |r| match r % 4 {
        0 => Shape::Point,
        1 => Shape::Circle { r: r as f64 / 3.0 },
        2 => Shape::Poly(vec![(r as i32, -1); r]),
        _ => Shape::Group(vec![
            Shape::Point,
            Shape::Group(vec![Shape::Circle { r: 1.0 }]),
        ]),
    })?;
    all_ops(w, "BTreeMap", |r| {
        (0..r * 10)
            .map(|i| (format!("k{i}"), vec![i as u32; i % 3]))
            .collect::<BTreeMap<_, _>>()
    })?;
    all_ops(w, "HashMap", |r| {
        (0..r as u64)
            .map(|i| (i, i.to_string()))
            .collect::<HashMap<_, _>>()
    })?;
    all_ops(w, "Option<Box<..>>", |r| {
        (r % 2 == 0).then(|| Box::new((r, 'λ')))
    })?;
    all_ops(w, "tuple", |r| {
        (r as u8, -(r as i64), r as f64 * 0.25, r % 2 == 1, ())
    })?;
    all_ops(w, "struct of String and Vec<f64>", |r| Sample {
        name: format!("s{r}"),
        data: (0..1000 * r).map(|i| i as f64).collect(),
    })?;
    all_ops(w, "Vec<Vec<f32>>", |r| vec![vec![r as f32; r]; r + 1])?;
    // A value large enough to go by rendezvous, and a run of them.
    all_ops(w, "1 MiB Vec<u32>", |r| vec![r as u32; 1 << 18])?;
    // The same data as a Pod slice and as a value arrive the same.
    let (rank, n) = (w.rank(), w.size());
    let data: Vec<f64> = (0..4096).map(|i| (i * (rank + 1)) as f64 / 7.0).collect();
    let (right, left) = ((rank + 1) % n, (rank + n - 1) % n);
    let mut as_pod = vec![0.0f64; data.len()];
    w.sendrecv(&data, right, 1, &mut as_pod, left, 1)
        .map_err(e)?;
    let (as_value, _) = w
        .sendrecv_value::<_, Vec<f64>>(&data, right, 2, left, 2)
        .map_err(e)?;
    check!(
        as_pod == as_value,
        "a Vec<f64> as Pod and as a value differ"
    );
    Ok(())
}

/// 64 MiB through send_value and broadcast_value.
fn big(w: &World) -> R<()> {
    let n = 64 << 20;
    let make = |r: usize| -> Vec<u8> { (0..n).map(|i| ((i * 7 + r) % 251) as u8).collect() };
    if w.rank() == 0 {
        for dest in 1..w.size() {
            w.send_value(&make(dest), dest, 0).map_err(e)?;
        }
    } else {
        let (got, st) = w.recv_value::<Vec<u8>>(0, ANY_TAG).map_err(e)?;
        check!(
            got == make(w.rank()),
            "64 MiB by send_value differ ({} bytes)",
            st.bytes()
        );
    }
    let mut v = if w.rank() == 0 { make(9) } else { Vec::new() };
    w.broadcast_value(&mut v, 0).map_err(e)?;
    check!(v == make(9), "64 MiB by broadcast_value differ");
    Ok(())
}

/// Bytes that are not the type asked for are `Error::Decode` naming the source and tag, and
/// the message is consumed; a claimed length far beyond the message allocates nothing big.
fn corrupt(w: &World) -> R<()> {
    let me = w.rank();
    let cases: [(&str, Vec<u8>); 5] = [
        ("an enum variant that does not exist", vec![200, 1, 2]),
        ("a string that is not UTF-8", vec![2, 0xff, 0xfe]),
        ("a value cut short", {
            let mut b = postcard_like_vec_of_three();
            b.pop();
            b
        }),
        (
            "a length of 2^60 elements in 10 bytes",
            vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 1],
        ),
        ("bytes left over", {
            let mut b = postcard_like_vec_of_three();
            b.push(0);
            b
        }),
    ];
    for (k, (what, bytes)) in cases.iter().enumerate() {
        let tag = 40 + k as u32;
        w.send(bytes, me, tag).map_err(e)?;
        match w.recv_value::<Vec<String>>(ANY_SOURCE, ANY_TAG) {
            Err(Error::Decode {
                source,
                tag: Some(t),
                ..
            }) if source == me && t == tag => {}
            other => return Err(format!("{what}: expected Error::Decode, got {other:?}")),
        }
    }
    // An enum variant that does not exist, decoded as the enum.
    w.send(&[200u8, 1], me, 50).map_err(e)?;
    let got = w.recv_value::<Shape>(me, 50);
    check!(
        matches!(got, Err(Error::Decode { .. })),
        "a bad variant gave {got:?}"
    );
    let text = got.unwrap_err().to_string();
    check!(
        text.contains(&format!("rank {me}")) && text.contains("tag 50"),
        "message {text:?}"
    );
    // Each bad message was consumed: nothing is left.
    check!(
        w.iprobe(ANY_SOURCE, ANY_TAG).map_err(e)?.is_none(),
        "a bad message was left queued"
    );
    Ok(())
}

/// The encoding of `vec!["abc", "", "z"]` as a `Vec<String>`, written by hand (a length, then
/// each string's length and bytes): the test does not depend on the encoder it checks.
fn postcard_like_vec_of_three() -> Vec<u8> {
    vec![3, 3, b'a', b'b', b'c', 0, 1, b'z']
}

/// A type whose `Serialize` fails on one rank.
struct Refuses(bool);

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 {
            Err(mpr::serde::ser::Error::custom(
                "this rank's value refuses to be encoded",
            ))
        } else {
            s.serialize_u8(1)
        }
    }
}

impl<'de> Deserialize<'de> for Refuses {
    fn deserialize<D: mpr::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(|_| Refuses(false))
    }
}

/// A rank that cannot encode its value gets `Error::Encode`; the others an error naming it; no
/// rank waits, and the communicator goes on working.
fn unencodable(w: &World) -> R<()> {
    let (rank, n) = (w.rank(), w.size());
    let bad = n - 1;
    let v = Refuses(rank == bad);
    let expect = |op: &str, r: mpr::Result<()>| -> R<()> {
        match (rank == bad, r) {
            (true, Err(Error::Encode { .. })) => Ok(()),
            (false, Err(Error::InvalidArgument { detail, .. }))
                if detail.contains(&format!("rank {bad}")) =>
            {
                Ok(())
            }
            (_, other) => Err(format!("{op}: rank {rank} got {other:?}")),
        }
    };
    expect("allgather_values", w.allgather_values(&v).map(drop))?;
    expect(
        "alltoall_values",
        w.alltoall_values(&(0..n).map(|_| Refuses(rank == bad)).collect::<Vec<_>>())
            .map(drop),
    )?;
    let mut b = Refuses(rank == bad);
    expect("broadcast_value", w.broadcast_value(&mut b, bad))?;
    let g = w.gather_values(&v, 0).map(drop);
    if rank == 0 || rank == bad {
        expect("gather_values", g)?;
    } else {
        g.map_err(e)?;
    }
    // The wrong number of values at a scatter's root: an error there, and at the others.
    let got = w.scatter_values(&[7u8], 0);
    check!(
        got.is_err() || n == 1,
        "scatter_values of 1 value to {n} ranks gave {got:?}"
    );
    // And the communicator still works.
    let all = w.allgather_values(&rank).map_err(e)?;
    check!(
        all == (0..n).collect::<Vec<_>>(),
        "allgather_values after the errors: {all:?}"
    );
    Ok(())
}

/// Value sends whose requests are dropped or leaked before they complete still arrive whole:
/// the request owns the encoding, and the scope keeps it until the send is done.
fn dropped(w: &World) -> R<()> {
    let rank = w.rank();
    check!(w.size() >= 2, "needs 2 ranks");
    let big = |k: usize| -> String { char::from(b'a' + k as u8).to_string().repeat(3 << 20) };
    if rank == 0 {
        mpr::scope(|s| -> R<()> {
            for k in 0..4 {
                let v = big(k);
                let r = w.isend_value(s, &v, 1, k as u32).map_err(e)?;
                if k % 2 == 0 {
                    drop(r);
                } else {
                    std::mem::forget(r);
                }
                // `v` is dropped here, long before the receiver has taken the message.
            }
            // Let the receiver start only now (the sends are still pending: rendezvous).
            w.send(&[1u8], 1, 99).map_err(e)?;
            Ok(())
        })?;
    }
    if rank == 1 {
        let mut go = [0u8];
        w.recv(&mut go, 0, 99).map_err(e)?;
        for k in 0..4 {
            let (got, _) = w.recv_value::<String>(0, k as u32).map_err(e)?;
            check!(
                got == big(k),
                "value send {k} arrived different ({} bytes)",
                got.len()
            );
        }
    }
    Ok(())
}
