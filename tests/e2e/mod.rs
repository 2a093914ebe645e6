pub mod harness;

mod check;
mod filters;
mod jobs;
mod live;
mod names;
mod stress;
mod systemd;
