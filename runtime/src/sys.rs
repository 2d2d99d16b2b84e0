//! The few raw operating-system calls mpr makes that std does not wrap.

/// Asks the kernel to send SIGKILL to this process when its parent (the launcher) exits, so that
/// no rank outlives the launcher. Returns false if the parent is already gone (or is not
/// `expected_parent`), in which case the caller should exit.
pub(crate) fn die_with_parent(expected_parent: Option<u32>) -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes only this process's
    // attributes; no memory is passed.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return true; // not fatal: the launcher still ends ranks through their process group
    }
    match expected_parent {
        // SAFETY: getppid has no arguments and cannot fail.
        Some(pid) => (unsafe { libc::getppid() }) as u32 == pid,
        None => true,
    }
}

/// A run of bytes in another process's memory: (address there, length). Never dereferenced
/// here; the kernel checks it against that process's mappings.
pub(crate) type Span = (u64, usize);

/// Copies `dst.len()` bytes from address `remote` in process `pid` into `dst`
/// (`process_vm_readv`: one copy, from the other process's memory straight into ours). Used for
/// large messages between ranks of one host (engine/pull.rs). Fails if the kernel refuses
/// (another user's process, a ptrace policy, a seccomp filter), the process is gone, or the range
/// is not mapped there.
pub(crate) fn pull(pid: u32, remote: u64, dst: &mut [u8]) -> std::io::Result<()> {
    let mut local = [libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    }];
    let mut far = [far_iovec((remote, dst.len()))];
    // SAFETY: the iovec covers `dst`, this process's memory borrowed mutably for the call.
    unsafe { cross_copy_vectored(pid, &mut local, &mut far, false) }
}

/// Copies `src` to address `remote` in process `pid` (`process_vm_writev`), as [`pull`] the
/// other way round.
pub(crate) fn push(pid: u32, src: &[u8], remote: u64) -> std::io::Result<()> {
    let mut local = [libc::iovec {
        iov_base: src.as_ptr().cast_mut().cast(),
        iov_len: src.len(),
    }];
    let mut far = [far_iovec((remote, src.len()))];
    // SAFETY: the iovec covers `src`, borrowed for the call; a write only reads it.
    unsafe { cross_copy_vectored(pid, &mut local, &mut far, true) }
}

/// [`pull`] from the runs `remote` of process `pid`, in turn, into several buffers in turn
/// (the blocks of a laid-out receive); both sides must hold the same number of bytes. Each
/// *remote* run costs the kernel a page-pinning pass of its own (about 40 ns for 4 KiB runs,
/// BENCHMARKS.md, "Issue 17"); local ones cost next to nothing from 1 KiB on.
pub(crate) fn pull_vectored(
    pid: u32,
    remote: &[Span],
    bufs: &mut [std::io::IoSliceMut<'_>],
) -> std::io::Result<()> {
    let mut local: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut far: Vec<libc::iovec> = remote.iter().copied().map(far_iovec).collect();
    // SAFETY: the iovecs cover `bufs`, this process's memory borrowed mutably for the call.
    unsafe { cross_copy_vectored(pid, &mut local, &mut far, false) }
}

/// [`push`] from several buffers in turn (the blocks of a laid-out send) to the runs `remote`
/// of process `pid`, as [`pull_vectored`] the other way round.
pub(crate) fn push_vectored<'a>(
    pid: u32,
    bufs: impl Iterator<Item = &'a [u8]>,
    remote: &[Span],
) -> std::io::Result<()> {
    let mut local: Vec<libc::iovec> = bufs
        .map(|b| libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut far: Vec<libc::iovec> = remote.iter().copied().map(far_iovec).collect();
    // SAFETY: the iovecs cover the caller's slices, borrowed for the call; a write only reads
    // them.
    unsafe { cross_copy_vectored(pid, &mut local, &mut far, true) }
}

/// A run of another process's memory as the iovec the kernel takes; never dereferenced here.
fn far_iovec((addr, len): Span) -> libc::iovec {
    libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: len,
    }
}

/// The loop under [`pull`], [`push`] and their vectored forms: the bytes of `local` (this
/// process), in order, between them and the runs `far` (process `pid`), in order, at most
/// `IOV_MAX` iovecs a side per call, resumed after partial transfers. Both sides must hold the
/// same number of bytes (`InvalidInput` otherwise, before anything is copied).
///
/// # Safety
/// Every iovec of `local` covers memory of this process valid for the call: writable by the
/// kernel for a read (`write` false), readable for a write.
unsafe fn cross_copy_vectored(
    pid: u32,
    local: &mut [libc::iovec],
    far: &mut [libc::iovec],
    write: bool,
) -> std::io::Result<()> {
    const IOV_MAX: usize = 1024;
    let total = |v: &[libc::iovec]| v.iter().try_fold(0usize, |s, x| s.checked_add(x.iov_len));
    if total(local).is_none() || total(local) != total(far) {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    let (mut i, mut j) = (0, 0);
    loop {
        while i < local.len() && local[i].iov_len == 0 {
            i += 1;
        }
        while j < far.len() && far[j].iov_len == 0 {
            j += 1;
        }
        if i == local.len() {
            return Ok(()); // and so is `far`, holding as many bytes
        }
        let k = (local.len() - i).min(IOV_MAX);
        let kf = (far.len() - j).min(IOV_MAX);
        let (here, there) = (local[i..].as_ptr(), far[j..].as_ptr());
        // SAFETY: the caller's promise for the `k` local iovecs; the remote ones name another
        // process's memory, which the kernel checks (EFAULT) and which cannot be this one's.
        let n = unsafe {
            let (k, kf) = (k as libc::c_ulong, kf as libc::c_ulong);
            if write {
                libc::process_vm_writev(pid as libc::pid_t, here, k, there, kf, 0)
            } else {
                libc::process_vm_readv(pid as libc::pid_t, here, k, there, kf, 0)
            }
        };
        match n {
            n if n > 0 => {
                advance(local, &mut i, n as usize);
                advance(far, &mut j, n as usize);
            }
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Moves the iovecs `v[*i..]` on by `n` bytes done: whole ones are skipped, a partial one
/// shrinks from its start.
fn advance(v: &mut [libc::iovec], i: &mut usize, mut n: usize) {
    while n > 0 && *i < v.len() {
        let x = &mut v[*i];
        if n >= x.iov_len {
            n -= x.iov_len;
            *i += 1;
        } else {
            x.iov_base = x.iov_base.cast::<u8>().wrapping_add(n).cast();
            x.iov_len -= n;
            n = 0;
        }
    }
}

/// Lets other processes of this user read and write this one's memory with
/// `process_vm_readv`/`writev` where a Yama ptrace policy (`kernel.yama.ptrace_scope = 1`, the
/// default on Ubuntu) would allow it only to ancestors: ranks are siblings. Without Yama the
/// call fails harmlessly (such kernels already allow it to the same user).
pub(crate) fn allow_peers_to_copy() {
    // SAFETY: prctl(PR_SET_PTRACER) takes a pid value and changes only this process's
    // attributes; no memory is passed.
    let _ = unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) };
}

/// Can this process read another's memory (same user, no ptrace policy or seccomp filter in the
/// way)? Asked once per local link: a one-byte read at address 0, which the kernel answers with
/// EFAULT only after the permission check has passed.
pub(crate) fn can_reach(pid: u32) -> bool {
    let mut b = [0u8; 1];
    match pull(pid, 0, &mut b) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EFAULT),
    }
}

/// The process id of the peer of a connected Unix-domain socket, as the kernel recorded it when
/// the connection was made (SO_PEERCRED), translated into this process's pid namespace.
pub(crate) fn peer_pid(fd: std::os::fd::BorrowedFd<'_>) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (the size of `cred`) into `cred`, and
    // updates `len`; both live on this stack frame for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

/// Sleeps while `word` holds `expected`, at most `timeout` (FUTEX_WAIT on a word that may live in
/// memory shared with other processes, so not the private variant). Returns early when woken,
/// when the value differs already, on a signal, or on timeout: callers re-check their condition.
pub(crate) fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: std::time::Duration,
) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the kernel reads the aligned 4-byte word behind the reference (alive for the
    // call) and the timespec on this stack frame; it writes neither.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake_all(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the word's address as a key; no memory is read or written.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Whether process `pid` still exists (a zombie not yet reaped counts as existing).
pub(crate) fn process_exists(pid: u32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call prctl")]
    fn parent_check() {
        assert!(super::die_with_parent(None));
        assert!(super::die_with_parent(Some(
            std::os::unix::process::parent_id()
        )));
        assert!(!super::die_with_parent(Some(u32::MAX)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call process_vm_readv")]
    fn pull_copies_from_a_process_and_fails_cleanly() {
        let src: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; src.len()];
        let me = std::process::id();
        super::pull(me, src.as_ptr() as u64, &mut dst).unwrap();
        assert_eq!(dst, src);
        super::pull(me, src.as_ptr() as u64, &mut []).unwrap();
        // An unmapped address, and a process that does not exist.
        assert!(super::pull(me, 8, &mut dst[..16]).is_err());
        assert!(super::pull(u32::MAX >> 1, src.as_ptr() as u64, &mut dst[..16]).is_err());
        // And back the other way, into the middle of a buffer.
        let mut out = [0u8; 64];
        super::push(me, &src[..32], out[16..].as_mut_ptr() as u64).unwrap();
        assert_eq!(&out[16..48], &src[..32]);
        assert!(out[..16].iter().chain(&out[48..]).all(|&b| b == 0));
        assert!(super::push(me, &src[..32], 8).is_err());
        assert!(super::can_reach(me));
        assert!(!super::can_reach(u32::MAX >> 1));
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call process_vm_readv")]
    fn vectored_copies_scatter_on_both_sides() {
        use std::io::{ErrorKind, IoSliceMut};
        let me = std::process::id();
        // 3000 remote runs of 5 bytes every 7 and 1500 local blocks of 10 every 13: more
        // iovecs than one call takes on either side, and runs that never line up.
        let src: Vec<u8> = (0..3000 * 7u32).map(|i| (i % 253) as u8).collect();
        let far: Vec<super::Span> = (0..3000)
            .map(|k| (src.as_ptr() as u64 + 7 * k, 5))
            .collect();
        let want: Vec<u8> = (0..3000)
            .flat_map(|k| src[7 * k..7 * k + 5].to_vec())
            .collect();
        let mut dst = vec![0u8; 1500 * 13];
        let mut bufs: Vec<IoSliceMut<'_>> = dst
            .chunks_mut(13)
            .map(|c| IoSliceMut::new(&mut c[..10]))
            .collect();
        super::pull_vectored(me, &far, &mut bufs).unwrap();
        drop(bufs);
        let got: Vec<u8> = dst.chunks(13).flat_map(|c| c[..10].to_vec()).collect();
        assert_eq!(got, want);
        assert!(dst.chunks(13).all(|c| c[10..].iter().all(|&b| b == 0)));
        // And back, into runs of another buffer: its gaps stay untouched.
        let mut back = vec![0u8; src.len()];
        let base = back.as_mut_ptr() as u64;
        let into: Vec<super::Span> = (0..3000).map(|k| (base + 7 * k, 5)).collect();
        super::push_vectored(me, dst.chunks(13).map(|c| &c[..10]), &into).unwrap();
        for (k, run) in back.chunks(7).enumerate() {
            assert_eq!(run[..5], src[7 * k..7 * k + 5], "run {k}");
            assert_eq!(run[5..], [0, 0], "gap {k}");
        }
        // Sides of different lengths copy nothing; a bad remote run fails the copy.
        let mut small = [0u8; 4];
        let e = super::pull_vectored(me, &far[..1], &mut [IoSliceMut::new(&mut small)]);
        assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(small, [0; 4]);
        let bad = [far[0], (8, 5)];
        let mut ten = [0u8; 10];
        assert!(super::pull_vectored(me, &bad, &mut [IoSliceMut::new(&mut ten)]).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call futex or kill")]
    fn futex_wakes_a_sleeper_and_times_out() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::time::{Duration, Instant};
        let w = std::sync::Arc::new(AtomicU32::new(0));
        // A different value returns at once; the same one sleeps until the timeout.
        let t = Instant::now();
        super::futex_wait(&w, 1, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        super::futex_wait(&w, 0, Duration::from_millis(20));
        assert!(t.elapsed() >= Duration::from_millis(20));
        let w2 = w.clone();
        let sleeper = std::thread::spawn(move || {
            let t = Instant::now();
            while w2.load(Ordering::SeqCst) == 0 {
                super::futex_wait(&w2, 0, Duration::from_secs(10));
            }
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::SeqCst);
        super::futex_wake_all(&w);
        assert!(sleeper.join().unwrap() < Duration::from_secs(5));
        assert!(super::process_exists(std::process::id()));
        assert!(!super::process_exists(u32::MAX >> 2));
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot call getsockopt")]
    fn peer_pid_of_a_socket_pair_is_this_process() {
        use std::os::fd::AsFd;
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(super::peer_pid(a.as_fd()), Some(std::process::id()));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(super::peer_pid(tcp.as_fd()), None);
    }
}
