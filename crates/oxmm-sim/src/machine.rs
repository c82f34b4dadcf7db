//! The simulated machine: host-backed RAM, CPUs, the virtual clock, the
//! seeded random source, the scheduler, and the booted mm.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxmm::hal::Hal;
use oxmm::mm_init::{self, BootError};
use oxmm::Kernel;

use crate::config::{ConfigError, MachineConfig};
use crate::ram::HostRam;
use crate::rng::SimRng;
use crate::sched::Scheduler;

thread_local! {
    /// The CPU this host thread runs, in threaded mode (usize::MAX: none).
    static BOUND_CPU: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The machine's per-call services for the core.
pub struct SimHal {
    cpu: Arc<AtomicUsize>,
    nr_cpus: usize,
    clock_ns: AtomicU64,
}

impl SimHal {
    /// Makes `cpu` the running CPU. The deterministic scheduler switches
    /// CPUs on one host thread, so one value per machine suffices.
    pub fn set_cpu(&self, cpu: usize) {
        assert!(cpu < self.nr_cpus, "cpu {cpu} out of range");
        self.cpu.store(cpu, Relaxed);
    }
    /// Binds the calling host thread to a simulated CPU, for threaded mode
    /// (see [`Machine::enter_threaded`]). A host thread drives one machine.
    pub fn bind_thread(&self, cpu: usize) {
        assert!(cpu < self.nr_cpus, "cpu {cpu} out of range");
        BOUND_CPU.with(|c| c.set(cpu));
    }
    /// Advances the virtual clock.
    pub fn advance(&self, ns: u64) {
        self.clock_ns.fetch_add(ns, Relaxed);
    }
}

impl Hal for SimHal {
    #[inline]
    fn current_cpu(&self) -> usize {
        let bound = BOUND_CPU.with(|c| c.get());
        if bound != usize::MAX {
            bound
        } else {
            self.cpu.load(Relaxed)
        }
    }
    fn cpu_cell(&self) -> Option<Arc<AtomicUsize>> {
        Some(self.cpu.clone())
    }
    fn nr_cpu_ids(&self) -> usize {
        self.nr_cpus
    }
    fn now_ns(&self) -> u64 {
        self.clock_ns.load(Relaxed)
    }
}

/// Why a machine could not be built.
#[derive(Debug)]
pub enum SimError {
    /// The description is invalid.
    Config(ConfigError),
    /// The host refused the RAM mapping.
    HostRam(std::io::Error),
    /// The mm failed to boot.
    Boot(BootError),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Config(e) => write!(f, "{e}"),
            SimError::HostRam(e) => write!(f, "cannot reserve host memory for simulated RAM: {e}"),
            SimError::Boot(e) => write!(f, "boot failed: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// A booted machine.
pub struct Machine {
    /// The description it was built from.
    pub config: MachineConfig,
    /// The memory-management subsystem.
    pub kernel: Kernel,
    /// The HAL shared with the kernel.
    pub hal: Arc<SimHal>,
    /// The seeded random source.
    pub rng: SimRng,
    /// Timed events on the virtual clock.
    pub sched: Scheduler,
    /// Host time boot took.
    pub boot_time: Duration,
    /// Named tmpfs files (`/dev/shm`) that processes left behind.
    pub tmpfs: crate::file_io::Tmpfs,
    /// Virtual time of the next periodic kernel work.
    next_vmstat_ns: u64,
    next_reap_ns: u64,
}

/// Period of `vmstat_update` (`vm.stat_interval`: 1 s).
pub const VMSTAT_INTERVAL_NS: u64 = 1_000_000_000;

impl Machine {
    /// Builds and boots a machine; `seed` feeds every random choice.
    pub fn boot(config: &MachineConfig, seed: u64) -> Result<Machine, SimError> {
        config.validate().map_err(SimError::Config)?;
        let t0 = Instant::now();
        let ram = HostRam::new(config.phys_size()).map_err(SimError::HostRam)?;
        let mem = Arc::new(ram.into_phys());
        let hal = Arc::new(SimHal {
            cpu: Arc::new(AtomicUsize::new(0)),
            nr_cpus: config.nr_cpus(),
            clock_ns: AtomicU64::new(0),
        });
        let kernel = mm_init::boot(&config.boot_params(), mem, hal.clone()).map_err(SimError::Boot)?;
        Ok(Machine {
            config: config.clone(),
            kernel,
            hal,
            rng: SimRng::new(seed),
            sched: Scheduler::new(config.nr_cpus()),
            boot_time: t0.elapsed(),
            tmpfs: crate::file_io::Tmpfs::default(),
            next_vmstat_ns: VMSTAT_INTERVAL_NS,
            next_reap_ns: oxmm::slab::slab::REAPTIMEOUT_AC_NS,
        })
    }

    /// Virtual nanoseconds since boot.
    pub fn now_ns(&self) -> u64 {
        self.hal.now_ns()
    }

    /// Advances the virtual clock and runs the periodic kernel work that
    /// came due, each on its CPU as Linux's per-CPU work items run:
    /// `vmstat_update` every second (pcp high decay) and SLAB's
    /// `cache_reap` every two seconds. The running CPU is restored after.
    pub fn advance(&mut self, ns: u64) {
        self.hal.advance(ns);
        let now = self.hal.now_ns();
        if now < self.next_vmstat_ns && now < self.next_reap_ns {
            return;
        }
        let cur = self.kernel.this_cpu();
        if now >= self.next_vmstat_ns {
            for cpu in 0..self.config.nr_cpus() {
                self.hal.set_cpu(cpu);
                self.kernel.vmstat_update(cpu);
            }
            self.next_vmstat_ns = now + VMSTAT_INTERVAL_NS;
        }
        if now >= self.next_reap_ns {
            self.kernel.slab_cache_reap();
            self.next_reap_ns = now + oxmm::slab::slab::REAPTIMEOUT_AC_NS;
        }
        self.hal.set_cpu(cur);
    }

    /// Switches to threaded mode: from now on each host thread that uses
    /// the kernel must first call [`SimHal::bind_thread`] with its own CPU,
    /// and the kernel asks the HAL for the running CPU on every call.
    pub fn enter_threaded(&self) {
        self.kernel.threaded.store(true, Relaxed);
    }

    /// Back to one host thread driving every CPU (after the threads joined).
    pub fn leave_threaded(&self) {
        self.kernel.threaded.store(false, Relaxed);
    }
}
