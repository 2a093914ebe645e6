//! Native mirror handler (stub until the real one lands).

use std::path::PathBuf;
use std::sync::Arc;

use super::{Batch, Handler, HandlerError, Outcome};
use crate::rules::Filter;

pub struct MirrorHandler {}

impl MirrorHandler {
    pub fn new(_source: PathBuf, _destination: PathBuf, _filter: Arc<Filter>) -> MirrorHandler {
        MirrorHandler {}
    }
}

impl Handler for MirrorHandler {
    fn run(&self, _batch: &Batch) -> Result<Outcome, HandlerError> {
        Err(HandlerError::Other("mirror mode is not built yet".into()))
    }
}
