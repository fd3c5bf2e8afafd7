//! Running out of file descriptors on purpose: the highest descriptor this process has open, and a lower soft
//! `RLIMIT_NOFILE`, for tests of accept backoff under EMFILE (run in a re-executed child process).

/// The highest file descriptor this process has open.
pub fn highest_open_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

/// Sets this process' soft limit on open files.
pub fn set_soft_nofile(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            soft <= limit.rlim_max,
            "hard limit {} too low",
            limit.rlim_max
        );
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}
