pub mod harness;

mod check;
mod control;
mod ctl;
mod filters;
mod jobs;
mod live;
mod names;
mod reload;
mod stress;
