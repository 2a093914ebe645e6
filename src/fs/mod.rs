//! The file-system layer: how the daemon touches anything inside a job's source or
//! destination.
//!
//! Whoever can write the source, or owns a directory at the destination, may swap any
//! directory for a symlink at any moment. So a path below a job's root, used through this
//! layer, is never handed to the kernel as one string from `/`: it is resolved *beneath* a
//! handle on the root
//! ([`Root`]), with no symlink followed in any component (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` where the kernel has it, else an
//! `O_NOFOLLOW | O_DIRECTORY` walk one component at a time). An operation on a leaf goes
//! through a handle on its parent and the `*at` call, so what was checked is what is used.
//! A component that is a symlink or not a directory fails the operation (`ELOOP`,
//! `ENOTDIR`); callers leave such a path to a full comparison, never follow it.
//! Handle-relative resolution has no `PATH_MAX`: longer paths are resolved in pieces.

mod attrs;
mod beneath;
mod dirs;
mod listing;
mod lookup;
mod meta;

pub use attrs::{Attrs, set_attrs_at, set_attrs_fd};
pub use beneath::{Root, mknod_at, open_dir};
pub use dirs::Dirs;
pub use listing::list;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use listing::{open_dir_read, read_entries};
pub use lookup::{Lookup, lstat_beneath};
pub use meta::Meta;
