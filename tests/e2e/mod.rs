pub mod harness;

mod check;
mod control;
mod ctl;
mod fanout;
mod filters;
mod handler_failures;
mod jobs;
mod live;
mod modes;
mod names;
mod privileges;
mod reload;
mod remote;
mod stress;
mod systemd;
mod two_way;
mod verify;
