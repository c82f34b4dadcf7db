//! Scenario files: TOML descriptions of a run (the machine, sysctls by
//! their Linux names, the slab allocator, the seed, the workloads).
//!
//! Every error names the file, the key and the problem, so a user can fix
//! a scenario without reading code. Unknown keys are errors too: a typo
//! must not silently fall back to a default.
//!
//! ```toml
//! seed = 1
//! slab = "slub"                 # slub | slab | slob
//! report_interval = "500us"     # sampling period of `oxmm run --report`
//!
//! [machine]
//! cpus = 4                      # with `mem`: a single node
//! mem = "8G"
//! # or one table per node:
//! # [[machine.node]]
//! # mem = "4G"
//! # cpus = 2
//! kernel_image = "24M"
//! kernelcore = "50%"            # or movablecore = "2G"
//! distance = [[10, 21], [21, 10]]
//! reserved = [{ start = "0x20000000", size = "16M" }]
//!
//! [sysctl]
//! "vm.min_free_kbytes" = 65536
//!
//! [[workload]]
//! kind = "page_churn"
//! ops = 200000
//! ```

use std::fmt;
use std::path::Path;

use oxmm::kernel::CoreSize;
use toml::{Table, Value};

use crate::config::{MachineConfig, NodeConfig};
use crate::processes::{Limits, ProcessSpec};
use crate::workload::{PageChurn, SlabChurn, Workload};

/// The slab allocator a scenario asks for (`slab = ...`).
pub use oxmm::slab::SlabKind;

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Where it came from (a path, or `<default>`).
    pub source: String,
    /// The machine.
    pub machine: MachineConfig,
    /// Seed when the command line gives none.
    pub seed: u64,
    /// The slab allocator.
    pub slab: SlabKind,
    /// Sysctl writes applied after boot, in file order: (name, value).
    pub sysctls: Vec<(String, String)>,
    /// Files on the machine's tmpfs at boot (`[[machine.file]]`).
    pub files: Vec<MachineFile>,
    /// Workloads, in file order, run one after the other.
    pub workloads: Vec<Workload>,
    /// Processes (`[[process]]`), run concurrently after the workloads.
    pub processes: Vec<ProcessSpec>,
    /// How long the processes may run (`duration`), virtual ns from
    /// their start; those still running then are killed.
    pub duration_ns: Option<u64>,
    /// Virtual nanoseconds between two samples of `oxmm run --report`
    /// (`report_interval`); `None` lets the report pick one from the
    /// workloads' expected length.
    pub report_interval_ns: Option<u64>,
}

/// A scenario that cannot be used: file, key, problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// The key at fault (`machine.nodes[1].mem`), empty for a syntax error.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: key `{}`: {}", self.file, self.key, self.problem)
        }
    }
}

impl std::error::Error for ScenarioError {}

/// The scenario `oxmm run` uses without a file.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/default.toml");

/// Parses a byte size: `4096`, `0x1000`, `64k`, `512M`, `4G`, `1T` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (&s[..], 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses a virtual-time duration into nanoseconds: a number with a unit,
/// `250ns`, `500us`, `1ms`, `2s` (`µs` is accepted for `us`).
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, key: &str, problem: impl Into<String>) -> ScenarioError {
        ScenarioError { file: self.file.to_string(), key: key.to_string(), problem: problem.into() }
    }
    fn size(&self, key: &str, v: &Value) -> Result<u64, ScenarioError> {
        match v {
            Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            Value::String(s) => parse_size(s)
                .ok_or_else(|| self.err(key, format!("`{s}` is not a size (use bytes or a number with K, M, G or T)"))),
            other => Err(self.err(key, format!("expected a size such as \"4G\", found {}", other.type_str()))),
        }
    }
    fn uint(&self, key: &str, v: &Value) -> Result<u64, ScenarioError> {
        match v {
            Value::Integer(i) if *i >= 0 => Ok(*i as u64),
            other => Err(self.err(key, format!("expected a non-negative integer, found {other}"))),
        }
    }
    fn table<'t>(&self, key: &str, v: &'t Value) -> Result<&'t Table, ScenarioError> {
        v.as_table().ok_or_else(|| self.err(key, format!("expected a table, found {}", v.type_str())))
    }
    fn core_size(&self, key: &str, v: &Value) -> Result<CoreSize, ScenarioError> {
        if let Value::String(s) = v {
            if let Some(p) = s.trim().strip_suffix('%') {
                return match p.trim().parse::<u64>() {
                    Ok(n) if n <= 100 => Ok(CoreSize::Percent(n)),
                    _ => Err(self.err(key, format!("`{s}` is not a percentage from 0% to 100%"))),
                };
            }
        }
        self.size(key, v).map(CoreSize::Bytes)
    }
    fn duration(&self, key: &str, v: &Value) -> Result<u64, ScenarioError> {
        match v {
            Value::Integer(0) => Ok(0),
            Value::String(s) => parse_duration(s).ok_or_else(|| {
                self.err(key, format!("`{s}` is not a duration (use a number with ns, us, ms or s, such as \"5ms\")"))
            }),
            other => Err(self.err(key, format!("expected a duration such as \"5ms\", found {}", other.type_str()))),
        }
    }
    fn boolean(&self, key: &str, v: &Value) -> Result<bool, ScenarioError> {
        v.as_bool().ok_or_else(|| self.err(key, format!("expected true or false, found {}", v.type_str())))
    }
    fn fraction(&self, key: &str, v: &Value) -> Result<f64, ScenarioError> {
        match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(f) if (0.0..=1.0).contains(&f) => Ok(f),
            _ => Err(self.err(key, "expected a number from 0 to 1")),
        }
    }
    fn string<'t>(&self, key: &str, v: &'t Value) -> Result<&'t str, ScenarioError> {
        v.as_str().ok_or_else(|| self.err(key, format!("expected a string, found {}", v.type_str())))
    }
    fn unknown(&self, prefix: &str, t: &Table, known: &[&str]) -> Result<(), ScenarioError> {
        for k in t.keys() {
            if !known.contains(&k.as_str()) {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                return Err(self.err(&key, format!("unknown key (known here: {})", known.join(", "))));
            }
        }
        Ok(())
    }
}

/// Flattens `[sysctl]` into dotted names: `vm.x = 1` and `"vm.x" = 1` both give `vm.x`.
fn flatten(prefix: &str, t: &Table, out: &mut Vec<(String, Value)>) {
    for (k, v) in t {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Table(sub) => flatten(&name, sub, out),
            other => out.push((name, other.clone())),
        }
    }
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            key: String::new(),
            problem: format!("cannot read the file: {e}"),
        })?;
        Scenario::parse(&text, &file)
    }

    /// The embedded default scenario.
    pub fn default_scenario() -> Scenario {
        Scenario::parse(DEFAULT_SCENARIO, "<default scenario>").expect("the embedded default scenario is valid")
    }

    /// Parses scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let cx = Ctx { file };
        let root: Table = text.parse::<Table>().map_err(|e| {
            let msg = e.to_string().lines().next().unwrap_or("invalid TOML").to_string();
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            ScenarioError {
                file: file.to_string(),
                key: String::new(),
                problem: match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            }
        })?;
        cx.unknown(
            "",
            &root,
            &["seed", "slab", "machine", "sysctl", "workload", "process", "duration", "report_interval"],
        )?;
        let seed = root.get("seed").map(|v| cx.uint("seed", v)).transpose()?.unwrap_or(1);
        let report_interval_ns = match root.get("report_interval") {
            None => None,
            Some(Value::String(s)) => match parse_duration(s) {
                Some(ns) if ns > 0 => Some(ns),
                Some(_) => return Err(cx.err("report_interval", "the interval must be longer than 0")),
                None => {
                    return Err(cx.err(
                        "report_interval",
                        format!("`{s}` is not a duration (use a number with ns, us, ms or s, such as \"500us\")"),
                    ))
                }
            },
            Some(v) => {
                return Err(
                    cx.err("report_interval", format!("expected a duration such as \"1ms\", found {}", v.type_str()))
                )
            }
        };
        let slab = match root.get("slab") {
            None => SlabKind::Slub,
            Some(Value::String(s)) => match s.as_str() {
                "slub" => SlabKind::Slub,
                "slab" => SlabKind::Slab,
                "slob" => SlabKind::Slob,
                other => return Err(cx.err("slab", format!("`{other}` is not one of slub, slab, slob"))),
            },
            Some(v) => return Err(cx.err("slab", format!("expected \"slub\", \"slab\" or \"slob\", found {v}"))),
        };
        let machine = match root.get("machine") {
            None => MachineConfig::default(),
            Some(v) => parse_machine(&cx, cx.table("machine", v)?)?,
        };
        machine.validate().map_err(|e| {
            // Name the key as the file spelled it: [[machine.node]] or machine.nodes.
            let uses_node_tables = root.get("machine").and_then(|m| m.get("node")).is_some();
            let key = if uses_node_tables { e.key.replacen("machine.nodes[", "machine.node[", 1) } else { e.key };
            cx.err(&key, e.problem)
        })?;
        let mut sysctls = Vec::new();
        if let Some(v) = root.get("sysctl") {
            let mut flat = Vec::new();
            flatten("", cx.table("sysctl", v)?, &mut flat);
            for (name, val) in flat {
                let key = format!("sysctl.\"{name}\"");
                if !oxmm::sysctl::NAMES.contains(&name.as_str()) {
                    return Err(cx.err(&key, "unknown sysctl (see `oxmm sysctl -a` for the known ones)"));
                }
                let text = match &val {
                    Value::Integer(i) => i.to_string(),
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" "),
                    other => return Err(cx.err(&key, format!("expected a number, found {}", other.type_str()))),
                };
                sysctls.push((name, text));
            }
        }
        let mut workloads = Vec::new();
        if let Some(v) = root.get("workload") {
            let arr = v.as_array().ok_or_else(|| cx.err("workload", "expected [[workload]] tables"))?;
            for (i, w) in arr.iter().enumerate() {
                let key = format!("workload[{i}]");
                workloads.push(parse_workload(&cx, &key, cx.table(&key, w)?, &[])?);
            }
        }
        let mut processes = Vec::new();
        if let Some(v) = root.get("process") {
            let arr = v.as_array().ok_or_else(|| cx.err("process", "expected [[process]] tables"))?;
            for (i, p) in arr.iter().enumerate() {
                let key = format!("process[{i}]");
                processes.push(parse_process(&cx, &key, cx.table(&key, p)?)?);
            }
        }
        let duration_ns = match root.get("duration") {
            None => None,
            Some(v) => match cx.duration("duration", v)? {
                0 => return Err(cx.err("duration", "the duration must be longer than 0")),
                d => Some(d),
            },
        };
        let files = match root.get("machine").and_then(|m| m.get("file")) {
            None => Vec::new(),
            Some(v) => parse_files(&cx, v)?,
        };
        let machine = MachineConfig { slab, ..machine };
        Ok(Scenario {
            source: file.to_string(),
            machine,
            seed,
            slab,
            sysctls,
            files,
            workloads,
            processes,
            duration_ns,
            report_interval_ns,
        })
    }

    /// Virtual time the run is expected to take: the workloads one after
    /// the other, then the processes (`duration`, or until the last one
    /// is expected to end if they ran undisturbed).
    pub fn expected_virtual_ns(&self) -> u64 {
        let mem = self.machine.total_mem();
        let w: u64 = self.workloads.iter().map(|w| w.expected_virtual_ns_within(mem)).fold(0, u64::saturating_add);
        let p = self
            .duration_ns
            .unwrap_or_else(|| self.processes.iter().map(|p| p.expected_end_ns(mem)).max().unwrap_or(0));
        w.saturating_add(p)
    }
}

/// A file on the machine's tmpfs when it boots (`[[machine.file]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineFile {
    /// Where it is linked (`/dev/shm/data`); `file` processes open it by this path.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Written with data (pages allocated) rather than left sparse.
    pub data: bool,
}

fn parse_files(cx: &Ctx, v: &Value) -> Result<Vec<MachineFile>, ScenarioError> {
    let arr = v.as_array().ok_or_else(|| cx.err("machine.file", "expected [[machine.file]] tables"))?;
    let mut files: Vec<MachineFile> = Vec::new();
    for (i, f) in arr.iter().enumerate() {
        let key = format!("machine.file[{i}]");
        let t = cx.table(&key, f)?;
        cx.unknown(&key, t, &["path", "size", "fill"])?;
        let path = match t.get("path") {
            Some(v) => cx.string(&format!("{key}.path"), v)?.to_string(),
            None => return Err(cx.err(&key, "a file needs a `path`")),
        };
        if !path.starts_with('/') || path.ends_with('/') || path.contains("//") || path.contains('\0') {
            return Err(cx.err(&format!("{key}.path"), format!("`{path}` is not an absolute file path")));
        }
        if files.iter().any(|f| f.path == path) {
            return Err(cx.err(&format!("{key}.path"), format!("`{path}` is already a file of the machine")));
        }
        let size = match t.get("size") {
            Some(v) => cx.size(&format!("{key}.size"), v)?,
            None => return Err(cx.err(&key, "a file needs a `size`")),
        };
        let data = match t.get("fill") {
            None => true,
            Some(v) => match cx.string(&format!("{key}.fill"), v)? {
                "data" => true,
                "sparse" => false,
                other => return Err(cx.err(&format!("{key}.fill"), format!("`{other}` is not one of data, sparse"))),
            },
        };
        files.push(MachineFile { path, size, data });
    }
    Ok(files)
}

fn parse_machine(cx: &Ctx, t: &Table) -> Result<MachineConfig, ScenarioError> {
    cx.unknown(
        "machine",
        t,
        &[
            "mem",
            "cpus",
            "node",
            "nodes",
            "distance",
            "pci_hole",
            "reserved",
            "kernel_image",
            "kernelcore",
            "movablecore",
            "la57",
            "file",
        ],
    )?;
    let mut m = MachineConfig::default();
    let node_list = match (t.get("node"), t.get("nodes")) {
        (Some(_), Some(_)) => {
            return Err(cx.err("machine.node", "give either [[machine.node]] or machine.nodes, not both"))
        }
        (Some(v), None) => Some(("machine.node", v)),
        (None, Some(v)) => Some(("machine.nodes", v)),
        (None, None) => None,
    };
    match node_list {
        Some((name, v)) => {
            if t.contains_key("mem") {
                return Err(cx.err("machine.mem", format!("give the memory per node in {name}, not both")));
            }
            let arr = v.as_array().ok_or_else(|| cx.err(name, "expected an array of node tables"))?;
            let default_cpus = t.get("cpus").map(|v| cx.uint("machine.cpus", v)).transpose()?;
            let mut nodes = Vec::new();
            for (i, n) in arr.iter().enumerate() {
                let key = format!("{name}[{i}]");
                let nt = cx.table(&key, n)?;
                cx.unknown(&key, nt, &["mem", "cpus"])?;
                let mem =
                    cx.size(&format!("{key}.mem"), nt.get("mem").ok_or_else(|| cx.err(&key, "missing `mem`"))?)?;
                let cpus = match nt.get("cpus") {
                    Some(v) => cx.uint(&format!("{key}.cpus"), v)? as usize,
                    None => default_cpus.map(|c| c as usize / arr.len().max(1)).unwrap_or(1),
                };
                nodes.push(NodeConfig { mem, cpus });
            }
            m.nodes = nodes;
        }
        None => {
            let mem = t.get("mem").map(|v| cx.size("machine.mem", v)).transpose()?.unwrap_or(m.nodes[0].mem);
            let cpus = t.get("cpus").map(|v| cx.uint("machine.cpus", v)).transpose()?.unwrap_or(2) as usize;
            m.nodes = vec![NodeConfig { mem, cpus }];
        }
    }
    if let Some(v) = t.get("distance") {
        let rows = v.as_array().ok_or_else(|| cx.err("machine.distance", "expected a table of rows"))?;
        let mut d = Vec::new();
        for (a, r) in rows.iter().enumerate() {
            let key = format!("machine.distance[{a}]");
            let cols = r.as_array().ok_or_else(|| cx.err(&key, "expected a row of numbers"))?;
            let mut row = Vec::new();
            for (b, x) in cols.iter().enumerate() {
                let x = cx.uint(&format!("machine.distance[{a}][{b}]"), x)?;
                if x > 254 {
                    return Err(cx.err(&format!("machine.distance[{a}][{b}]"), "distances go up to 254"));
                }
                row.push(x as u8);
            }
            d.push(row);
        }
        m.distance = Some(d);
    }
    if let Some(v) = t.get("pci_hole") {
        m.pci_hole = v.as_bool().ok_or_else(|| cx.err("machine.pci_hole", "expected true or false"))?;
    }
    if let Some(v) = t.get("la57") {
        m.la57 = v.as_bool().ok_or_else(|| cx.err("machine.la57", "expected true or false"))?;
    }
    if let Some(v) = t.get("reserved") {
        let arr = v.as_array().ok_or_else(|| cx.err("machine.reserved", "expected an array of {start, size}"))?;
        for (i, r) in arr.iter().enumerate() {
            let key = format!("machine.reserved[{i}]");
            let rt = cx.table(&key, r)?;
            cx.unknown(&key, rt, &["start", "size"])?;
            let start =
                cx.size(&format!("{key}.start"), rt.get("start").ok_or_else(|| cx.err(&key, "missing `start`"))?)?;
            let size =
                cx.size(&format!("{key}.size"), rt.get("size").ok_or_else(|| cx.err(&key, "missing `size`"))?)?;
            m.reserved.push((start, size));
        }
    }
    if let Some(v) = t.get("kernel_image") {
        m.kernel_image = cx.size("machine.kernel_image", v)?;
    }
    if let Some(v) = t.get("kernelcore") {
        m.kernelcore = Some(cx.core_size("machine.kernelcore", v)?);
    }
    if let Some(v) = t.get("movablecore") {
        m.movablecore = Some(cx.core_size("machine.movablecore", v)?);
    }
    Ok(m)
}

/// The workload kinds, for error messages.
const KINDS: &str = "page_churn, slab_churn, anon, fork_server, heap_churn, memory_hog, file, replay";

/// Keys of a `[[process]]` table besides its workload's.
const PROCESS_KEYS: &[&str] = &["name", "start", "limits"];

/// Parses a `[[process]]` table: its own keys, then its workload's.
fn parse_process(cx: &Ctx, key: &str, t: &Table) -> Result<ProcessSpec, ScenarioError> {
    let workload = parse_workload(cx, key, t, PROCESS_KEYS)?;
    if !workload.is_user() {
        let kind = t.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
        return Err(cx.err(
            &format!("{key}.kind"),
            format!(
                "`{kind}` is a kernel workload: it runs as a [[workload]], not as a process \
                 (process kinds: anon, fork_server, heap_churn, memory_hog, file, replay)"
            ),
        ));
    }
    let name = match t.get("name") {
        None => t.get("kind").and_then(|v| v.as_str()).unwrap_or("process").to_string(),
        Some(v) => {
            let n = cx.string(&format!("{key}.name"), v)?;
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                return Err(cx.err(
                    &format!("{key}.name"),
                    format!("`{n}` is not a process name (use letters, digits, `_`, `-` and `.`)"),
                ));
            }
            n.to_string()
        }
    };
    let start_ns = t.get("start").map(|v| cx.duration(&format!("{key}.start"), v)).transpose()?.unwrap_or(0);
    let mut limits = Limits::default();
    if let Some(v) = t.get("limits") {
        let lk = format!("{key}.limits");
        let lt = cx.table(&lk, v)?;
        cx.unknown(&lk, lt, &["as", "data", "stack", "memlock"])?;
        let limit = |name: &str| -> Result<Option<u64>, ScenarioError> {
            let k = format!("{lk}.{name}");
            match lt.get(name) {
                None => Ok(None),
                Some(Value::String(s)) if s == "unlimited" || s == "infinity" => {
                    Ok(Some(oxmm::mm_types::RLIM_INFINITY))
                }
                Some(v) => cx.size(&k, v).map(Some),
            }
        };
        limits.address_space = limit("as")?;
        limits.data = limit("data")?;
        limits.stack = limit("stack")?;
        limits.memlock = limit("memlock")?;
    }
    Ok(ProcessSpec { name, start_ns, limits, workload })
}

/// Parses an access pattern from `pattern` and its keys (`skew`,
/// `stride`, `hot_fraction`, `hot_share`) of table `t` at `key`.
fn parse_pattern(cx: &Ctx, key: &str, t: &Table) -> Result<crate::user_workloads::Pattern, ScenarioError> {
    use crate::user_workloads::Pattern;
    let frac = |name: &str, default: f64| -> Result<f64, ScenarioError> {
        t.get(name).map_or(Ok(default), |v| cx.fraction(&format!("{key}.{name}"), v))
    };
    let pattern = match t.get("pattern") {
        None => "random",
        Some(v) => cx.string(&format!("{key}.pattern"), v)?,
    };
    Ok(match pattern {
        "sequential" => Pattern::Sequential,
        "random" => Pattern::Random,
        "zipf" => {
            let skew = match t.get("skew") {
                None => 1.0,
                Some(v) => v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).unwrap_or(f64::NAN),
            };
            if !(skew > 0.0 && skew < 10.0) {
                return Err(cx.err(&format!("{key}.skew"), "expected a number between 0 and 10"));
            }
            Pattern::Zipf(skew)
        }
        "strided" => Pattern::Strided(match t.get("stride") {
            Some(v) => cx.uint(&format!("{key}.stride"), v)?.max(1),
            None => 16,
        }),
        "hotcold" => Pattern::HotCold { hot_fraction: frac("hot_fraction", 0.1)?, hot_share: frac("hot_share", 0.9)? },
        other => {
            return Err(cx.err(
                &format!("{key}.pattern"),
                format!("`{other}` is not a pattern (known: sequential, random, zipf, strided, hotcold)"),
            ))
        }
    })
}

/// Parses the workload of a `[[workload]]` or `[[process]]` table; `extra`
/// are the keys the table may have besides the kind's.
fn parse_workload(cx: &Ctx, key: &str, t: &Table, extra: &[&str]) -> Result<Workload, ScenarioError> {
    let kind = match t.get("kind") {
        None => return Err(cx.err(&format!("{key}.kind"), format!("missing `kind` (known: {KINDS})"))),
        Some(v) => cx.string(&format!("{key}.kind"), v)?,
    };
    let unknown = |known: &[&str]| {
        let mut all = known.to_vec();
        all.extend_from_slice(extra);
        cx.unknown(key, t, &all)
    };
    let k = |name: &str| format!("{key}.{name}");
    match kind {
        "page_churn" => {
            unknown(&["kind", "ops", "max_live", "max_order", "cpu"])?;
            let mut w = PageChurn::default();
            if let Some(v) = t.get("ops") {
                w.ops = cx.uint(&k("ops"), v)?;
            }
            if let Some(v) = t.get("max_live") {
                w.max_live_bytes = cx.size(&k("max_live"), v)?;
            }
            if let Some(v) = t.get("max_order") {
                let o = cx.uint(&k("max_order"), v)?;
                if o > oxmm::types::MAX_PAGE_ORDER as u64 {
                    return Err(cx.err(&k("max_order"), "orders go from 0 to 10"));
                }
                w.max_order = o as u32;
            }
            Ok(Workload::PageChurn(w))
        }
        "slab_churn" => {
            unknown(&["kind", "ops", "max_live"])?;
            let mut w = SlabChurn::default();
            if let Some(v) = t.get("ops") {
                w.ops = cx.uint(&k("ops"), v)?;
            }
            if let Some(v) = t.get("max_live") {
                w.max_live = cx.uint(&k("max_live"), v)?;
            }
            Ok(Workload::SlabChurn(w))
        }
        "anon" => {
            use crate::user_workloads::{AnonAccess, AnonPhase};
            let pattern_keys = ["pattern", "skew", "stride", "hot_fraction", "hot_share"];
            let mut known = vec!["kind", "size", "accesses", "write_ratio", "phases"];
            known.extend(pattern_keys);
            unknown(&known)?;
            let mut w = AnonAccess::default();
            if let Some(v) = t.get("size") {
                w.size = cx.size(&k("size"), v)?;
            }
            if let Some(v) = t.get("accesses") {
                w.accesses = cx.uint(&k("accesses"), v)?;
            }
            if let Some(v) = t.get("write_ratio") {
                w.write_ratio = cx.fraction(&k("write_ratio"), v)?;
            }
            w.pattern = parse_pattern(cx, key, t)?;
            if let Some(v) = t.get("phases") {
                if let Some(other) = ["accesses"].iter().chain(&pattern_keys).find(|n| t.contains_key(**n)) {
                    return Err(
                        cx.err(&k(other), "give the accesses and the pattern in each of `phases`, not beside them")
                    );
                }
                let arr = v.as_array().ok_or_else(|| cx.err(&k("phases"), "expected an array of phase tables"))?;
                if arr.is_empty() {
                    return Err(cx.err(&k("phases"), "expected at least one phase"));
                }
                for (i, p) in arr.iter().enumerate() {
                    let pk = format!("{key}.phases[{i}]");
                    let pt = cx.table(&pk, p)?;
                    let mut known = vec!["accesses", "write_ratio"];
                    known.extend(pattern_keys);
                    cx.unknown(&pk, pt, &known)?;
                    let accesses = match pt.get("accesses") {
                        Some(v) => cx.uint(&format!("{pk}.accesses"), v)?,
                        None => return Err(cx.err(&pk, "missing `accesses`")),
                    };
                    let write_ratio = match pt.get("write_ratio") {
                        Some(v) => cx.fraction(&format!("{pk}.write_ratio"), v)?,
                        None => w.write_ratio,
                    };
                    w.phases.push(AnonPhase { accesses, write_ratio, pattern: parse_pattern(cx, &pk, pt)? });
                }
            }
            Ok(Workload::Anon(w))
        }
        "fork_server" => {
            use crate::user_workloads::ForkServer;
            unknown(&["kind", "size", "children", "touch_fraction"])?;
            let mut w = ForkServer::default();
            if let Some(v) = t.get("size") {
                w.size = cx.size(&k("size"), v)?;
            }
            if let Some(v) = t.get("children") {
                w.children = cx.uint(&k("children"), v)?;
            }
            if let Some(v) = t.get("touch_fraction") {
                w.touch_fraction = cx.fraction(&k("touch_fraction"), v)?;
            }
            Ok(Workload::ForkServer(w))
        }
        "heap_churn" => {
            use crate::user_workloads::HeapChurn;
            unknown(&["kind", "ops", "max_live", "max_size"])?;
            let mut w = HeapChurn::default();
            if let Some(v) = t.get("ops") {
                w.ops = cx.uint(&k("ops"), v)?;
            }
            if let Some(v) = t.get("max_live") {
                w.max_live = cx.uint(&k("max_live"), v)?.max(1);
            }
            if let Some(v) = t.get("max_size") {
                w.max_size = cx.size(&k("max_size"), v)?.max(16);
            }
            Ok(Workload::HeapChurn(w))
        }
        "memory_hog" => {
            use crate::user_workloads::MemoryHog;
            unknown(&["kind", "step", "limit", "max_steps"])?;
            let mut w = MemoryHog::default();
            if let Some(v) = t.get("step") {
                w.step = cx.size(&k("step"), v)?.max(4096);
            }
            if let Some(v) = t.get("limit") {
                w.limit = cx.size(&k("limit"), v)?;
            }
            if let Some(v) = t.get("max_steps") {
                w.max_steps = cx.uint(&k("max_steps"), v)?;
            }
            Ok(Workload::MemoryHog(w))
        }
        "file" => {
            use crate::file_io::{FileIo, FileMode, FilePattern};
            unknown(&[
                "kind",
                "mode",
                "pattern",
                "file_size",
                "io_size",
                "ops",
                "write_ratio",
                "mmap",
                "keep",
                "path",
            ])?;
            let mut w = FileIo::default();
            if let Some(v) = t.get("mode") {
                w.mode = match cx.string(&k("mode"), v)? {
                    "read" => FileMode::Read,
                    "write" => FileMode::Write,
                    "append" => FileMode::Append,
                    "readwrite" => FileMode::ReadWrite,
                    other => {
                        return Err(cx.err(
                            &k("mode"),
                            format!("`{other}` is not a mode (known: read, write, append, readwrite)"),
                        ))
                    }
                };
            }
            if let Some(v) = t.get("pattern") {
                w.pattern = match cx.string(&k("pattern"), v)? {
                    "sequential" => FilePattern::Sequential,
                    "random" => FilePattern::Random,
                    other => {
                        return Err(cx.err(
                            &k("pattern"),
                            format!("`{other}` is not a file pattern (known: sequential, random)"),
                        ))
                    }
                };
            }
            if let Some(v) = t.get("file_size") {
                w.file_size = cx.size(&k("file_size"), v)?;
            }
            if let Some(v) = t.get("io_size") {
                w.io_size = cx.size(&k("io_size"), v)?;
            }
            if let Some(v) = t.get("ops") {
                w.ops = cx.uint(&k("ops"), v)?;
            }
            if let Some(v) = t.get("write_ratio") {
                if w.mode != FileMode::ReadWrite {
                    return Err(cx.err(&k("write_ratio"), "only mode = \"readwrite\" takes a write ratio"));
                }
                w.write_ratio = cx.fraction(&k("write_ratio"), v)?;
            }
            if let Some(v) = t.get("mmap") {
                w.mmap = cx.boolean(&k("mmap"), v)?;
            }
            if let Some(v) = t.get("keep") {
                w.keep = cx.boolean(&k("keep"), v)?;
            }
            if let Some(v) = t.get("path") {
                let p = cx.string(&k("path"), v)?;
                if !p.starts_with('/') || p.ends_with('/') || p.contains('\0') {
                    return Err(cx.err(&k("path"), format!("`{p}` is not an absolute file path")));
                }
                w.path = Some(p.to_string());
            }
            if w.io_size == 0 || w.io_size > 64 << 20 {
                return Err(cx.err(&k("io_size"), "expected a size from 1 byte to 64 MiB"));
            }
            if w.file_size == 0 || w.file_size > 1 << 40 {
                return Err(cx.err(&k("file_size"), "expected a size from 1 byte to 1 TiB"));
            }
            if w.mmap && w.mode == FileMode::Append {
                return Err(cx.err(&k("mmap"), "appending goes through write(2): mode = \"append\" cannot use mmap"));
            }
            Ok(Workload::File(w))
        }
        "replay" => {
            use crate::trace::process::TraceReplay;
            unknown(&["kind", "trace", "format"])?;
            let shown = match t.get("trace") {
                Some(v) => cx.string(&k("trace"), v)?,
                None => return Err(cx.err(&k("trace"), "missing `trace`: the path of a trace file")),
            };
            let format = match t.get("format") {
                None => None,
                Some(v) => Some(
                    cx.string(&k("format"), v)?.parse::<crate::trace::Format>().map_err(|e| cx.err(&k("format"), e))?,
                ),
            };
            // A relative path is relative to the scenario file.
            let base = Path::new(cx.file).parent().unwrap_or(Path::new(""));
            let path = base.join(shown);
            let r = TraceReplay::load(&path, shown, format).map_err(|e| cx.err(&k("trace"), e))?;
            Ok(Workload::Replay(r))
        }
        other => Err(cx.err(&k("kind"), format!("`{other}` is not a workload kind (known: {KINDS})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ns"), Some(250));
        assert_eq!(parse_duration("500us"), Some(500_000));
        assert_eq!(parse_duration("500 µs"), Some(500_000));
        assert_eq!(parse_duration("1ms"), Some(1_000_000));
        assert_eq!(parse_duration("2s"), Some(2_000_000_000));
        assert_eq!(parse_duration("1_000us"), Some(1_000_000));
        for bad in ["", "ms", "5", "5m", "1.5ms", "-1ms", "99999999999999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn report_interval_is_a_duration() {
        let sc = Scenario::parse("report_interval = \"2ms\"\n", "t.toml").unwrap();
        assert_eq!(sc.report_interval_ns, Some(2_000_000));
        assert_eq!(Scenario::default_scenario().report_interval_ns, None);
        let e = Scenario::parse("report_interval = 5\n", "t.toml").unwrap_err();
        assert_eq!(e.key, "report_interval");
        let e = Scenario::parse("report_interval = \"0ms\"\n", "t.toml").unwrap_err();
        assert!(e.problem.contains("longer than 0"), "{e}");
    }
}
