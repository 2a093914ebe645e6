//! `user` / `group`: the identity handler processes run with, looked up once at load so
//! that a typo is a configuration error at its line, not a failure at the first run.

use super::model::RunAs;

/// Which of the two keys a lookup failed on (the diagnostic points at that key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LookupError {
    User(String),
    Group(String),
}

/// Looks up `user` (a name or a numeric uid) and `group` (default: the user's primary group).
pub(super) fn lookup_run_as(user: &str, group: Option<&str>) -> Result<RunAs, LookupError> {
    let u = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    }
    .map_err(|e| LookupError::User(format!("cannot look up user {user:?}: {e}")))?
    .ok_or_else(|| LookupError::User(format!("no such user {user:?}")))?;
    let gid = match group {
        None => u.gid.as_raw(),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(g)
                .map_err(|e| LookupError::Group(format!("cannot look up group {g:?}: {e}")))?
                .ok_or_else(|| LookupError::Group(format!("no such group {g:?}")))?
                .gid
                .as_raw(),
        },
    };
    Ok(RunAs {
        user: u.name,
        uid: u.uid.as_raw(),
        gid,
    })
}
