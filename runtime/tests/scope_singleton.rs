//! The request bookkeeping of `mpr::scope` in a world of one rank (no `mprun`, no sockets), so
//! that it also runs under Miri: `cargo +nightly miri test -p mpr --test scope_singleton`.
//! Messages to oneself go through the loopback transport, eager and rendezvous alike, and
//! exercise the same scope, request and engine code as messages to other ranks.

use mpr::Error;

fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One `init` per process: every scenario runs in this one test, in order.
#[test]
// The scope's promise holds whatever a Request's Drop does (today it has none, so forget is a
// drop); this keeps the promise tested should Request ever gain one.
#[allow(clippy::forget_non_drop)]
fn scopes_in_a_world_of_one() {
    let world = mpr::init().expect("singleton world");
    assert_eq!((world.rank(), world.size()), (0, 1));
    let eager = 1000;
    let big = if cfg!(miri) { 100_000 } else { 3 << 20 }; // above the eager limit either way

    // Send to self, then receive; wait and test.
    for (k, &n) in [0, 1, eager, big].iter().enumerate() {
        let out = pattern(k as u8, n);
        let mut inb = vec![0u8; n];
        mpr::scope(|s| {
            let a = world.isend(s, &out, 0, k as u32).unwrap();
            let mut b = world.irecv(s, &mut inb, 0, k as u32).unwrap();
            let st = loop {
                if let Some(st) = b.test().unwrap() {
                    break st;
                }
            };
            assert_eq!(st.bytes(), n);
            assert_eq!(a.wait().unwrap().bytes(), n);
            assert_eq!(
                b.wait().unwrap(),
                st,
                "wait after test returns the same status"
            );
        });
        assert_eq!(inb, out, "size {n}");
    }

    // Receive posted first, requests dropped unwaited: the scope completes them.
    let out = pattern(7, big);
    let mut inb = vec![0u8; big];
    mpr::scope(|s| {
        let _r = world.irecv(s, &mut inb, 0, 40).unwrap();
        let _q = world.isend(s, &out, 0, 40).unwrap();
    });
    assert_eq!(inb, out);

    // Leaked with mem::forget: the same.
    let mut small = [0u16; 8];
    mpr::scope(|s| {
        std::mem::forget(world.irecv(s, &mut small, 0, 41).unwrap());
        std::mem::forget(world.isend(s, &[9u16; 8], 0, 41).unwrap());
    });
    assert_eq!(small, [9u16; 8]);

    // wait_all and wait_any over several requests.
    let outs: Vec<Vec<u8>> = (0..5).map(|k| pattern(k, 10 + 300 * k as usize)).collect();
    let mut ins: Vec<Vec<u8>> = outs.iter().map(|o| vec![0u8; o.len()]).collect();
    mpr::scope(|s| {
        let sends: Vec<_> = outs
            .iter()
            .enumerate()
            .map(|(k, o)| world.isend(s, o, 0, 50 + k as u32).unwrap())
            .collect();
        let mut recvs: Vec<_> = ins
            .iter_mut()
            .enumerate()
            .map(|(k, i)| world.irecv(s, i, 0, 50 + k as u32).unwrap())
            .collect();
        let mut seen = Vec::new();
        while !recvs.is_empty() {
            let (_, st) = mpr::wait_any(&mut recvs).unwrap();
            seen.push(st.tag());
        }
        seen.sort_unstable();
        assert_eq!(seen, [50, 51, 52, 53, 54]);
        assert_eq!(mpr::wait_all(sends).unwrap().len(), 5);
        assert!(mpr::wait_any(&mut recvs).is_err(), "wait_any of nothing");
    });
    assert_eq!(ins, outs);

    // Truncation through a request, eager and rendezvous; the message is consumed.
    let mut tiny = [0u8; 4];
    let mut next = [0u8; 4];
    mpr::scope(|s| {
        let _a = world.isend(s, &[1u8; 10], 0, 60).unwrap();
        let _b = world.isend(s, &out, 0, 60).unwrap();
        let _c = world.isend(s, &[3u8; 4], 0, 60).unwrap();
        let r = world.irecv(s, &mut tiny, 0, 60).unwrap();
        assert!(matches!(
            r.wait(),
            Err(Error::Truncated {
                message_bytes: 10,
                buffer_bytes: 4,
                ..
            })
        ));
        let r = world.irecv(s, &mut next, 0, 60).unwrap();
        assert!(matches!(r.wait(), Err(Error::Truncated { .. })));
    });
    let st = world.recv(&mut next, 0, 60).unwrap();
    assert_eq!((st.bytes(), next), (4, [3u8; 4]));

    // A panic inside a scope: the scope settles its requests before the panic goes on.
    let mut caught_buf = vec![0u8; eager];
    let payload = pattern(3, eager);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mpr::scope(|s| {
            let _r = world.irecv(s, &mut caught_buf, 0, 70).unwrap();
            let _q = world.isend(s, &payload, 0, 70).unwrap();
            panic!("inside the scope");
        })
    }));
    assert!(caught.is_err());
    assert_eq!(caught_buf, payload);

    // A receive that can never be matched (nobody else exists): the scope still ends, with the
    // engine's "never complete" verdict, and the buffer is free again.
    let mut lonely = [0u8; 4];
    mpr::scope(|s| {
        let r = world.irecv(s, &mut lonely, 0, 99).unwrap();
        assert!(matches!(r.wait(), Err(Error::InvalidArgument { .. })));
        let _unmatched = world.irecv(s, &mut next, 0, 98).unwrap();
    });
    lonely[0] = 1;
    assert_eq!(lonely[0], 1);

    // Invalid ranks are errors, not panics.
    let mut b = [0u8; 1];
    mpr::scope(|s| {
        assert!(matches!(
            world.isend(s, &[1u8], 1, 0),
            Err(Error::InvalidRank { rank: 1, size: 1 })
        ));
        assert!(matches!(
            world.irecv(s, &mut b, 5, 0),
            Err(Error::InvalidRank { .. })
        ));
    });
    // Nonblocking collectives on one rank: the copy-only schedules complete at once.
    let send = [1.5f64, -2.0, 4.0];
    let mut sum = [0.0f64; 3];
    let mut data = [7u32; 5];
    mpr::scope(|s| {
        let a = world.iallreduce(s, &send, &mut sum, mpr::Op::Sum).unwrap();
        let b = world.ibroadcast(s, &mut data, 0).unwrap();
        let c = world.ibarrier(s).unwrap();
        mpr::wait_all(vec![a, b, c]).unwrap();
    });
    assert_eq!(sum, send);
    assert_eq!(data, [7u32; 5]);

    // Persistent requests to oneself, eager and rendezvous: the buffers are read and written
    // between starts, and a request left active is settled by the scope.
    for n in [8, big] {
        let mut out = vec![0u8; n];
        let mut inb = vec![0u8; n];
        mpr::scope(|s| {
            let mut send = world.send_init_mut(s, &mut out, 0, 40).unwrap();
            let mut recv = world.recv_init(s, &mut inb, 0, 40).unwrap();
            for round in 0..3u8 {
                send.buf_mut().unwrap().copy_from_slice(&pattern(round, n));
                recv.start().unwrap();
                send.start().unwrap();
                assert!(recv.buf().is_err() && send.start().is_err());
                send.wait().unwrap();
                assert_eq!(recv.wait().unwrap().bytes(), n);
                assert_eq!(recv.buf().unwrap(), &pattern(round, n)[..]);
            }
            send.buf_mut().unwrap().fill(9);
            recv.start().unwrap();
            send.start().unwrap();
            // Both dropped while active: the scope completes them before `inb` is ours again.
        });
        assert!(inb.iter().all(|&b| b == 9), "size {n}");
    }
    // An exchange over one buffer to oneself: a column out (packed), into another column
    // (packed) and a row (one block); then a packed receive dropped while active still lands.
    let mut m: Vec<u32> = (0..16).collect();
    mpr::scope(|s| {
        let col = |c: usize| mpr::Layout::subarray(&[4, 4], &[3, 1], &[0, c]).unwrap();
        let row3 = mpr::Layout::subarray(&[4, 4], &[1, 3], &[3, 0]).unwrap();
        let mut x = world
            .exchange_init(
                s,
                &mut m,
                &[(col(0), 0, 1), (col(1), 0, 2)],
                &[(col(3), 0, 1), (row3, 0, 2)],
            )
            .unwrap();
        for round in 0..3u32 {
            for (i, v) in x.buf_mut().unwrap()[..12].iter_mut().enumerate() {
                *v = 100 * round + i as u32;
            }
            x.start().unwrap();
            if round == 0 {
                // Reads while active: what no receive writes (elements 3, 7, 11 and 12..15
                // are written), in ascending blocks and in blocks that step back.
                let read = |l: mpr::Layout| x.read(&l).map(|b| b.concat());
                assert_eq!(read(mpr::Layout::vector(3, 1, 4)).unwrap(), [0, 4, 8]);
                let back = mpr::Layout::indexed(&[2, 1], &[5, 0]).unwrap();
                assert_eq!(read(back).unwrap(), [5, 6, 0]);
                assert!(read(mpr::Layout::vector(3, 1, 4 + 3)).is_err(), "reaches 7");
                assert!(read(mpr::Layout::indexed(&[1, 2], &[8, 6]).unwrap()).is_err());
                assert!(read(mpr::Layout::indexed(&[1, 1], &[9, 3]).unwrap()).is_err());
                assert!(read(mpr::Layout::contiguous(16)).is_err());
            }
            x.wait().unwrap();
            let b = x.buf().unwrap();
            assert_eq!(
                [b[3], b[7], b[11]],
                [100 * round, 100 * round + 4, 100 * round + 8]
            );
            assert_eq!(
                b[12..15],
                [100 * round + 1, 100 * round + 5, 100 * round + 9]
            );
        }
    });
    let mut col = vec![0u64; 12];
    mpr::scope(|s| {
        let l = mpr::Layout::vector(3, 1, 4);
        let mut r = world.recv_init_layout(s, &mut col, &l, 0, 41).unwrap();
        r.start().unwrap();
        world.send(&[5u64, 6, 7], 0, 41).unwrap();
    });
    assert_eq!([col[0], col[4], col[8], col[1]], [5, 6, 7, 0]);
    world.finalize().unwrap();
}
