//! `rill-lazyfs MOUNTPOINT --control SOCKET [--tear-seed N] [--sync-delay-us N]`: mounts an
//! empty lazy file system (see the library docs) on MOUNTPOINT, each fsync taking N µs
//! ([`LazyFs::with_sync_delay`]), prints `ready` on stdout once the mount and the
//! control socket are up, and serves control commands (`cut`, `restore`, `status`, `unmount`)
//! until `unmount`, SIGTERM or SIGINT; then it unmounts and exits.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;

use fuser::{Config, MountOption};
use rill_lazyfs::control::{Controller, Next};
use rill_lazyfs::fs::{LazyFs, Shared};
use rill_lazyfs::model::{TearRng, Tree};
use rill_lazyfs::LazyFsError;

struct Args {
    mountpoint: PathBuf,
    control: PathBuf,
    tear_seed: Option<u64>,
    sync_delay_us: u64,
}

const USAGE: &str = "rill-lazyfs MOUNTPOINT --control SOCKET [--tear-seed N] [--sync-delay-us N]";

fn parse_args() -> Result<Args, LazyFsError> {
    let mut mountpoint = None;
    let mut control = None;
    let mut tear_seed = None;
    let mut sync_delay_us = 0;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--control") => {
                control = Some(PathBuf::from(
                    args.next()
                        .ok_or_else(|| LazyFsError::Usage(USAGE.into()))?,
                ))
            }
            Some("--tear-seed") => {
                let v = args
                    .next()
                    .and_then(|v| v.to_str().and_then(|s| s.parse::<u64>().ok()))
                    .ok_or_else(|| LazyFsError::Usage(format!("--tear-seed N; {USAGE}")))?;
                tear_seed = Some(v);
            }
            Some("--sync-delay-us") => {
                sync_delay_us = args
                    .next()
                    .and_then(|v| v.to_str().and_then(|s| s.parse::<u64>().ok()))
                    .ok_or_else(|| LazyFsError::Usage(format!("--sync-delay-us N; {USAGE}")))?;
            }
            Some("-h" | "--help") => return Err(LazyFsError::Usage(USAGE.into())),
            _ if mountpoint.is_none() && !a.as_bytes().starts_with(b"-") => {
                mountpoint = Some(PathBuf::from(a))
            }
            _ => {
                return Err(LazyFsError::Usage(format!(
                    "unexpected argument {a:?}; {USAGE}"
                )))
            }
        }
    }
    Ok(Args {
        mountpoint: mountpoint.ok_or_else(|| LazyFsError::Usage(USAGE.into()))?,
        control: control.ok_or_else(|| LazyFsError::Usage(USAGE.into()))?,
        tear_seed,
        sync_delay_us,
    })
}

/// Blocks SIGTERM and SIGINT in every thread (call before spawning any) and returns a thread
/// that waits for either and then detaches the mount, so a killed test leaves no dead mount.
fn unmount_on_signal(mountpoint: PathBuf) -> Result<(), LazyFsError> {
    // SAFETY: plain signal-mask calls on a zeroed, then initialised, sigset_t.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(LazyFsError::io(
                "pthread_sigmask",
                std::io::Error::last_os_error(),
            ));
        }
        set
    };
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| LazyFsError::Usage("the mount point contains a NUL byte".into()))?;
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set; `sig` is a valid out pointer.
        unsafe { libc::sigwait(&set, &mut sig) };
        // SAFETY: `path` is a valid NUL-terminated string.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        std::process::exit(128 + sig);
    });
    Ok(())
}

fn run(args: Args) -> Result<(), LazyFsError> {
    unmount_on_signal(args.mountpoint.clone())?;
    let tree = Shared::new(Tree::new());
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("rill-lazyfs".into()),
        MountOption::Subtype("rill-lazyfs".into()),
    ];
    let session = fuser::spawn_mount(
        LazyFs::new(tree.clone())
            .with_sync_delay(std::time::Duration::from_micros(args.sync_delay_us)),
        &args.mountpoint,
        &config,
    )
    .map_err(|e| {
        LazyFsError::io(
            format!(
                "cannot mount FUSE on {} (needs /dev/fuse and root or fusermount3)",
                args.mountpoint.display()
            ),
            e,
        )
    })?;
    let _ = std::fs::remove_file(&args.control);
    let listener = UnixListener::bind(&args.control)
        .map_err(|e| LazyFsError::io(format!("bind {}", args.control.display()), e))?;
    println!("ready");
    let mut controller = Controller {
        tree,
        tear: args.tear_seed.map(TearRng::new),
        cuts: 0,
    };
    for conn in listener.incoming() {
        let conn = conn.map_err(|e| LazyFsError::io("accept on the control socket", e))?;
        match controller.serve(conn) {
            Ok(Next::Unmount) => break,
            Ok(Next::Continue) => {}
            // A client that went away mid-line is its problem, not the file system's.
            Err(e) => eprintln!("rill-lazyfs: {e}"),
        }
    }
    let _ = std::fs::remove_file(&args.control);
    session
        .umount_and_join()
        .map_err(|e| LazyFsError::io(format!("unmount {}", args.mountpoint.display()), e))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rill-lazyfs: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rill-lazyfs: {e}");
            ExitCode::FAILURE
        }
    }
}
