//! The report's `index.html`: one static page (no script) with the run's
//! summary, the charts, links to the data, the scenario and the /proc
//! files at the end of the run.

use std::fmt::Write;

use oxmm_sim::sampler::TimeSeries;

use crate::plot::Chart;
use crate::report::{ms, snapshot_name, RunInfo, Snapshot, CSV};

/// What the page shows.
pub struct Page<'a> {
    /// The run.
    pub info: &'a RunInfo,
    /// The samples.
    pub series: &'a TimeSeries,
    /// The sampling period, virtual ns.
    pub interval_ns: u64,
    /// The charts written beside the page.
    pub charts: &'a [Chart],
    /// /proc right after boot.
    pub start: &'a Snapshot,
    /// /proc at the end.
    pub end: &'a Snapshot,
    /// Virtual time at the end, ns.
    pub now_ns: u64,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where Linux shows a file of `oxmm::proc::FILES`.
fn linux_path(file: &str) -> String {
    if file.starts_with("memblock/") {
        format!("/sys/kernel/debug/{file}")
    } else {
        format!("/proc/{file}")
    }
}

/// A byte count in KiB or MiB.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// A kB value: as is below 10 MiB, else in MiB with one decimal.
fn kb_mib(kb: u64) -> String {
    if kb < 10 << 10 {
        format!("{kb} kB")
    } else {
        format!("{}.{} MiB", kb / 1024, (kb % 1024) * 10 / 1024)
    }
}

/// The page's style sheet.
const STYLE: &str = "body{font-family:sans-serif;margin:24px;max-width:1180px;color:#222}\
h1{font-size:26px}h2{font-size:20px;margin-top:32px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{background:#f6f6f6;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px}\
img{border:1px solid #ddd;max-width:100%}figure{margin:16px 0}";

/// Renders the page.
pub fn index(p: &Page) -> String {
    let info = p.info;
    let mut s = String::with_capacity(64 << 10);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(s, "<title>oxmm run: {} (seed {})</title>", escape(&info.scenario), info.seed);
    let _ = writeln!(s, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(s, "<h1>oxmm run: {} (seed {})</h1>", escape(&info.scenario), info.seed);
    summary(p, &mut s);
    s.push_str("<h2>Charts</h2>\n");
    if p.charts.is_empty() {
        s.push_str("<p>No chart: the run took no sample with a nonzero value.</p>\n");
    }
    for c in p.charts {
        let stem = escape(&c.stem);
        let _ = writeln!(
            s,
            "<figure id=\"{stem}\"><img src=\"{stem}.svg\" alt=\"{t}\" width=\"1100\" height=\"520\">\
             <figcaption>{t}: <a href=\"{stem}.svg\">SVG</a>, <a href=\"{stem}.png\">PNG</a></figcaption></figure>",
            t = escape(&c.title)
        );
    }
    data(p, &mut s);
    s.push_str("<h2>Scenario</h2>\n");
    let _ =
        writeln!(s, "<p><a href=\"scenario.toml\">scenario.toml</a></p>\n<pre>{}</pre>", escape(&info.scenario_text));
    s.push_str("<h2>/proc at the end of the run</h2>\n<p>");
    for (i, (name, _)) in p.end.iter().enumerate() {
        if i > 0 {
            s.push_str(" · ");
        }
        let _ = write!(s, "<a href=\"#{id}\">{}</a>", escape(&linux_path(name)), id = escape(&snapshot_name(name)));
    }
    s.push_str("</p>\n");
    for (name, text) in p.end {
        let file = escape(&snapshot_name(name));
        let _ = writeln!(
            s,
            "<h3 id=\"{file}\">{}</h3>\n<p><a href=\"proc-end/{file}\">end</a>, \
             <a href=\"proc-start/{file}\">after boot</a></p>\n<pre>{}</pre>",
            escape(&linux_path(name)),
            escape(text)
        );
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// The summary table.
fn summary(p: &Page, s: &mut String) {
    let info = p.info;
    s.push_str("<h2>Summary</h2>\n<table>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(k), v);
    };
    row("scenario", escape(&info.scenario));
    row("seed", info.seed.to_string());
    row("machine", escape(&info.machine));
    row("virtual time", ms(p.now_ns));
    row("samples", format!("{} rows, every {} of virtual time", p.series.rows.len(), ms(p.interval_ns)));
    for (i, w) in info.workloads.iter().enumerate() {
        row(
            &format!("workload {i}"),
            format!(
                "{}<br>{} allocations, {} failed, {} frees, peak {} live; virtual time {} to {}",
                escape(&w.describe),
                w.stats.allocs,
                w.stats.failures,
                w.stats.frees,
                size(w.stats.peak_live_bytes),
                ms(w.start_ns),
                ms(w.end_ns)
            ),
        );
    }
    s.push_str("</table>\n");
    if !info.processes.is_empty() {
        s.push_str(
            "<h3>Processes</h3>\n<table>\n<tr><th>name</th><th>pid</th><th>cpu</th><th>start</th><th>end</th>\
             <th>minor faults</th><th>major faults</th><th>peak RSS</th><th>what it did</th></tr>\n",
        );
        for p in &info.processes {
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |x| x.to_string());
            let t = |v: Option<u64>| v.map_or("-".to_string(), ms);
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td>{}<br>{}</td></tr>",
                escape(&p.name),
                opt(p.pid),
                p.cpu,
                t(p.start_ns),
                t(p.end_ns),
                p.minor_faults,
                p.major_faults,
                size(p.peak_rss_bytes),
                escape(&p.describe),
                escape(&crate::report::process_facts(p))
            );
        }
        s.push_str("</table>\n");
    }
    // Start, end and extremes of the meminfo columns.
    let ts = p.series;
    let fields: Vec<usize> =
        ts.columns.iter().enumerate().filter(|(_, c)| c.name.ends_with("_kB")).map(|(i, _)| i).collect();
    if ts.rows.is_empty() || fields.is_empty() {
        return;
    }
    s.push_str("<h3>/proc/meminfo over the run</h3>\n<table>\n<tr><th>field</th><th>start</th><th>min</th><th>max</th><th>end</th></tr>\n");
    for i in fields {
        let v = ts.values(i);
        if v.iter().all(|&x| x == 0) {
            continue;
        }
        let (first, last) = (v[0], v[v.len() - 1]);
        let (min, max) = (v.iter().copied().min().unwrap_or(0), v.iter().copied().max().unwrap_or(0));
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(ts.columns[i].name.trim_end_matches("_kB")),
            kb_mib(first),
            kb_mib(min),
            kb_mib(max),
            kb_mib(last)
        );
    }
    s.push_str("</table>\n");
}

/// The data section: the CSV and its columns, and the snapshots.
fn data(p: &Page, s: &mut String) {
    s.push_str("<h2>Data</h2>\n");
    let _ = writeln!(
        s,
        "<p><a href=\"{CSV}\">{CSV}</a>: {} rows of {} columns; time in virtual ms, \
         meminfo fields in kB (<code>_kB</code>), vmstat counters as Linux counts them, \
         zone free memory in pages, each process's VmRSS in kB (<code>rss_&lt;name&gt;_kB</code>, \
         0 while it does not run).</p>",
        p.series.rows.len(),
        p.series.columns.len() + 1
    );
    let cols: Vec<String> = p.series.columns.iter().map(|c| format!("<code>{}</code>", escape(&c.name))).collect();
    let _ = writeln!(s, "<p>Columns: <code>time_ms</code>, {}.</p>", cols.join(", "));
    s.push_str("<p>/proc snapshots: ");
    for (i, (name, _)) in p.start.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let f = escape(&snapshot_name(name));
        let _ = write!(
            s,
            "{} (<a href=\"proc-start/{f}\">after boot</a>, <a href=\"proc-end/{f}\">end</a>)",
            escape(&linux_path(name))
        );
    }
    s.push_str(".</p>\n");
}
