//! Where a daemon's control socket is when `[daemon] socket` does not say: a name derived
//! from the configuration directory alone, so that daemons of different directories never
//! collide and a client finds its daemon from `--config-dir` without reading anything.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::DEFAULT_CONFIG_DIR;
use super::paths::resolve;

/// The directory of the default sockets, and whether it is the `/tmp` fallback.
pub(super) fn socket_base() -> (PathBuf, bool) {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        (PathBuf::from("/run/clsync"), false)
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        (PathBuf::from(x).join("clsync"), false)
    } else {
        (PathBuf::from(format!("/tmp/clsync-{uid}")), true)
    }
}

/// Where a daemon without `[daemon] socket` listens: `/run/clsync/clsync.sock` for
/// `/etc/clsync` (root), `clsync-<hash>.sock` beside it for other configuration directories,
/// so that daemons of different directories never collide and clients find theirs from
/// the directory alone. Non-root daemons use `$XDG_RUNTIME_DIR/clsync` (or
/// `/tmp/clsync-<uid>`, which must be their own, mode 0700).
pub fn default_socket(dir: &Path) -> PathBuf {
    let (base, _) = socket_base();
    let canon = dir
        .canonicalize()
        .unwrap_or_else(|_| resolve(Path::new("/"), &dir.to_string_lossy()));
    if canon == Path::new(DEFAULT_CONFIG_DIR) {
        return base.join("clsync.sock");
    }
    let h = fnv1a(canon.as_os_str().as_bytes());
    base.join(format!("clsync-{:08x}.sock", h as u32))
}

/// FNV-1a: stable across builds and platforms, unlike the std hasher.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
