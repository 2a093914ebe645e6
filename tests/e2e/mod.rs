pub mod harness;

mod live;
