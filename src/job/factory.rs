//! Which handler runs a job's batches: the job's mode and destination decide, once, when
//! the job starts. The only place that names the concrete handlers, so that the rest of the
//! job sees a [`Handler`] and nothing else.

use std::sync::Arc;

use crate::config::{Destination, JobConfig, Mode};
use crate::handler::Handler;
use crate::handler::command::CommandHandler;
use crate::handler::mirror::MirrorHandler;
use crate::handler::rclone::RcloneHandler;
use crate::handler::rsync::RsyncHandler;
use crate::rules::Filter;

/// The handler for `config`, filtering by `filter`; `progress`: full syncs report their
/// progress. Fails for a combination no handler serves (the mirror to a remote destination;
/// the configuration refuses it first).
pub fn handler_for(
    config: &JobConfig,
    filter: &Arc<Filter>,
    progress: bool,
) -> anyhow::Result<Arc<dyn Handler>> {
    Ok(match (&config.mode, &config.destination) {
        (Mode::Mirror, Destination::Local(dst)) => Arc::new(
            MirrorHandler::new(config.source.clone(), dst.clone(), filter.clone())
                .with_timeout(config.rsync.timeout)
                .with_workers(config.workers),
        ),
        (Mode::Mirror, Destination::Remote(_)) => {
            anyhow::bail!("mode \"mirror\" needs a local destination")
        }
        (Mode::Rsync, dst) => Arc::new(
            RsyncHandler::new(
                config.source.clone(),
                dst.clone(),
                config.rsync.clone(),
                filter.clone(),
            )
            .counting_changes(config.verify_interval.is_some())
            .showing_progress(progress)
            .with_workers(config.workers),
        ),
        (Mode::Rclone(r), Destination::Remote(dst)) => Arc::new(RcloneHandler::new(
            config.source.clone(),
            dst.clone(),
            r.clone(),
            config.rsync.clone(),
        )),
        (Mode::Rclone(_), Destination::Local(_)) => {
            anyhow::bail!("mode \"rclone\" needs an rclone remote (`remote:path`)")
        }
        (Mode::Command(c), dst) => Arc::new(CommandHandler::new(
            config.name.clone(),
            config.source.clone(),
            dst.clone(),
            c.clone(),
            config.rsync.clone(),
            filter.clone(),
        )),
    })
}
