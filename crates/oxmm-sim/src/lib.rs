//! # oxmm-sim: the simulated machine around oxmm
//!
//! Host-backed RAM ([`ram`]), the machine description and its firmware map
//! ([`config`]), the booted machine with its clock, random source and
//! scheduler ([`machine`], [`rng`], [`sched`]), scenario files
//! ([`scenario`]), the workloads they run ([`workload`],
//! [`user_workloads`], [`file_io`]) and the processes that run them
//! concurrently on the virtual clock ([`processes`]), and time series
//! of the machine's counters on the virtual clock ([`sampler`]), and real
//! programs' memory traces with their replay engine ([`trace`]).

#![warn(missing_docs)]

pub mod config;
pub mod file_io;
pub mod machine;
pub mod processes;
pub mod ram;
pub mod rng;
pub mod sampler;
pub mod scenario;
pub mod sched;
pub mod trace;
pub mod user_workloads;
pub mod workload;

pub use config::MachineConfig;
pub use machine::{Machine, SimError};
