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
}
