//! Encodes and decodes the messages of issue 16 (a struct of a `String` and a `Vec<f64>` of 1,
//! 1 Ki and 1 Mi elements, and a few shapes of everyday messages) with each candidate format,
//! and prints the encoded size and the time to encode and to decode, medians of several runs.
//!
//!     cargo run --release --manifest-path benches/encodings/Cargo.toml

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Sample {
    name: String,
    data: Vec<f64>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
enum Task {
    Idle,
    Work { id: u64, args: Vec<String> },
    Result(u32, Option<Vec<i64>>),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median seconds of one call of `f`, over runs of enough calls to take about 20 ms each.
fn time(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-8);
    let reps = ((0.02 / once) as usize).clamp(1, 1_000_000);
    let runs = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    median(runs)
}

fn row<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(what: &str, v: &T) {
    let b2 = bincode2::config::standard();
    let cands: Vec<(&str, Vec<u8>, f64, f64)> = vec![
        {
            let e = postcard::to_allocvec(v).unwrap();
            assert_eq!(&postcard::from_bytes::<T>(&e).unwrap(), v);
            let te = time(|| drop(black_box(postcard::to_allocvec(black_box(v)).unwrap())));
            let td = time(|| drop(black_box(postcard::from_bytes::<T>(black_box(&e)).unwrap())));
            ("postcard 1", e, te, td)
        },
        {
            let e = bincode1::serialize(v).unwrap();
            assert_eq!(&bincode1::deserialize::<T>(&e).unwrap(), v);
            let te = time(|| drop(black_box(bincode1::serialize(black_box(v)).unwrap())));
            let td = time(|| drop(black_box(bincode1::deserialize::<T>(black_box(&e)).unwrap())));
            ("bincode 1", e, te, td)
        },
        {
            let e = bincode2::serde::encode_to_vec(v, b2).unwrap();
            let te = time(|| drop(black_box(bincode2::serde::encode_to_vec(black_box(v), b2).unwrap())));
            let td = time(|| {
                drop(black_box(
                    bincode2::serde::decode_from_slice::<T, _>(black_box(&e), b2).unwrap(),
                ))
            });
            ("bincode 2", e, te, td)
        },
        {
            let e = rmp_serde::to_vec(v).unwrap();
            assert_eq!(&rmp_serde::from_slice::<T>(&e).unwrap(), v);
            let te = time(|| drop(black_box(rmp_serde::to_vec(black_box(v)).unwrap())));
            let td = time(|| drop(black_box(rmp_serde::from_slice::<T>(black_box(&e)).unwrap())));
            ("MessagePack (rmp-serde 1)", e, te, td)
        },
        {
            let e = bitcode::serialize(v).unwrap();
            assert_eq!(&bitcode::deserialize::<T>(&e).unwrap(), v);
            let te = time(|| drop(black_box(bitcode::serialize(black_box(v)).unwrap())));
            let td = time(|| drop(black_box(bitcode::deserialize::<T>(black_box(&e)).unwrap())));
            ("bitcode 0.6 (serde)", e, te, td)
        },
    ];
    for (name, e, te, td) in cands {
        println!(
            "| {what} | {name} | {} | {:.3} | {:.3} |",
            e.len(),
            te * 1e6,
            td * 1e6
        );
    }
}

fn main() {
    println!("| message | format | encoded bytes | encode (us) | decode (us) |");
    println!("| --- | --- | --- | --- | --- |");
    for n in [1usize, 1024, 1 << 20] {
        let s = Sample {
            name: "temperature".into(),
            data: (0..n).map(|i| i as f64 * 0.5).collect(),
        };
        row(&format!("String + Vec<f64> of {n}"), &s);
    }
    let tasks: Vec<Task> = (0..100)
        .map(|i| match i % 3 {
            0 => Task::Idle,
            1 => Task::Work { id: i, args: vec![format!("arg{i}"); 3] },
            _ => Task::Result(i as u32, Some(vec![-(i as i64); 10])),
        })
        .collect();
    row("100 enums (tasks)", &tasks);
    let map: BTreeMap<String, u64> = (0..1000).map(|i| (format!("key{i}"), i)).collect();
    row("map of 1000 String -> u64", &map);
    row("Vec<u8> of 1 MiB", &vec![7u8; 1 << 20]);
}
