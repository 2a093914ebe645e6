pub mod harness;

mod check;
mod filters;
mod handler_failures;
mod jobs;
mod live;
mod modes;
mod names;
mod stress;
mod systemd;
