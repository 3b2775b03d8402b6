//! What the io_uring executors need from the machine, checked before any of them starts,
//! and where each executor runs.

use anyhow::{bail, Result};
use glommio::Placement;

/// Checks what glommio needs before any executor starts, with a fix in the message.
pub fn preflight() -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    const NEED: u64 = 512 * 1024;
    if rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < NEED {
        bail!(
            "the memlock limit is {} KiB; the io_uring executors need at least {} KiB.\n\
             Fix: `ulimit -l 65536` in this shell (raise the hard limit in \
             /etc/security/limits.conf: `* - memlock 65536`), `LimitMEMLOCK=64M` in a systemd \
             unit, or `--ulimit memlock=67108864:67108864` for docker run",
            lim.rlim_cur / 1024,
            NEED / 1024
        );
    }
    // An io_uring_setup with a tiny ring tells whether the kernel offers io_uring at all.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup writes at most sizeof(io_uring_params) = 120 bytes into params.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "io_uring is not available ({err}). The node needs Linux 5.8 or newer with \
             io_uring enabled: check `sysctl kernel.io_uring_disabled` (must be 0); in a \
             container, docker's default seccomp profile blocks io_uring: run with \
             `--security-opt seccomp=unconfined` or a profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register"
        );
    }
    // SAFETY: fd is a descriptor we own.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// The placement of an executor configured with CPU `cpu` (-1: unpinned).
pub fn placement(cpu: i64) -> Placement {
    if cpu >= 0 {
        Placement::Fixed(cpu as usize)
    } else {
        Placement::Unbound
    }
}
