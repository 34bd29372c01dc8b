//! `--report FILE`: a markdown table of the `summary` lines of one results file, one column
//! per server (e.g. `parlor` and `parse-server` measured in the same run by `bench/compare`).

use serde_json::Value;

use crate::reference;

fn fmt_num(value: &Value) -> String {
    match value.as_f64() {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".to_owned(),
    }
}

pub fn markdown(text: &str) -> String {
    let summaries: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value["event"] == "summary")
        .collect();
    if summaries.is_empty() {
        return "no summary line in this file\n".to_owned();
    }
    let mut out = String::new();
    let has_http = summaries
        .iter()
        .any(|s| s["results"].as_array().is_some_and(|r| !r.is_empty()));
    if has_http {
        http_table(&summaries, &mut out);
    }
    fanout_table(&summaries, &mut out);
    for summary in &summaries {
        out.push_str(&format!(
            "\n{}: {} → {}, load average before {} after {}, {} cores ({}).",
            summary["label"].as_str().unwrap_or("?"),
            summary["date"].as_str().unwrap_or("?"),
            summary["finished"].as_str().unwrap_or("?"),
            summary["loadavg_before"],
            summary["loadavg_after"],
            summary["machine"]["nproc"],
            summary["machine"]["cpu_model"].as_str().unwrap_or("?"),
        ));
    }
    out.push('\n');
    out
}

/// The `live_fanout` rows, if any: one line per server and subscriber count.
fn fanout_table(summaries: &[Value], out: &mut String) {
    let rows: Vec<(&str, &Value)> = summaries
        .iter()
        .flat_map(|summary| {
            let label = summary["label"].as_str().unwrap_or("?");
            summary["live_fanout"]
                .as_array()
                .map(|rows| rows.iter().map(move |row| (label, row)).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str("| live_fanout | subscribers (connected) | delivered / expected (missing, dup.) | commit→receipt p50 / p99 / max ms | POST p99 ms | server RSS idle / subscribed / after / disconnected MB | server / load-gen CPU s | goal met |\n|---|---|---|---|---|---|---|---|\n");
    for (label, row) in rows {
        let rss = &row["rss_mb"];
        out.push_str(&format!(
            "| {label} | {} ({}) | {} / {} ({}, {}) | {} / {} / {} | {} | {} / {} / {} / {} | {} / {} | {} |\n",
            row["subscribers"],
            row["connected"],
            row["delivered"],
            row["expected"],
            row["missing"],
            row["duplicates"],
            fmt_num(&row["p50_ms"]),
            fmt_num(&row["p99_ms"]),
            fmt_num(&row["max_ms"]),
            fmt_num(&row["post_p99_ms"]),
            fmt_num(&rss["idle"]),
            fmt_num(&rss["subscribed"]),
            fmt_num(&rss["after"]),
            fmt_num(&rss["after_disconnect"]),
            fmt_num(&row["server_cpu_s"]),
            fmt_num(&row["load_generator_cpu_s"]),
            row["meets_goal"],
        ));
    }
    out.push_str(&format!(
        "\nReference: {}.\n",
        crate::fanout::PARSE_REFERENCE
    ));
}

/// The HTTP scenarios: one column per server.
fn http_table(summaries: &[Value], out: &mut String) {
    let labels: Vec<String> = summaries
        .iter()
        .map(|s| s["label"].as_str().unwrap_or("?").to_owned())
        .collect();
    out.push_str("| scenario | conns |");
    for label in &labels {
        out.push_str(&format!(" {label}: req/s (p50 / p99 ms) |"));
    }
    if labels.len() == 2 {
        out.push_str(&format!(" {} ÷ {} |", labels[0], labels[1]));
    }
    out.push_str(" Parse 9.10 reference (RESULTS.md; log-in: the issue) |\n|---|---|");
    for _ in 0..labels.len() + usize::from(labels.len() == 2) + 1 {
        out.push_str("---|");
    }
    out.push('\n');
    // Rows keyed by (scenario, connections, run) in the order of the first summary.
    let rows: Vec<(String, Value, Value)> = summaries[0]["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .map(|r| {
                    (
                        r["scenario"].as_str().unwrap_or_default().to_owned(),
                        r["connections"].clone(),
                        r["run"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (scenario, connections, run) in rows {
        let run_label = if run.as_u64().unwrap_or(1) > 1 {
            format!(" (run {run})")
        } else {
            String::new()
        };
        out.push_str(&format!("| {scenario}{run_label} | {connections} |"));
        let mut rps_values = Vec::new();
        for summary in summaries {
            let row = summary["results"].as_array().and_then(|results| {
                results.iter().find(|r| {
                    r["scenario"] == scenario.as_str()
                        && r["connections"] == connections
                        && r["run"] == run
                })
            });
            match row {
                Some(row) => {
                    let errors = row["errors"].as_u64().unwrap_or(0);
                    let errors = if errors > 0 {
                        format!(", {errors} errors")
                    } else {
                        String::new()
                    };
                    out.push_str(&format!(
                        " {} ({} / {}{errors}) |",
                        fmt_num(&row["rps_ok"]),
                        fmt_num(&row["p50_ms"]),
                        fmt_num(&row["p99_ms"])
                    ));
                    rps_values.push(row["rps_ok"].as_f64());
                }
                None => {
                    out.push_str(" – |");
                    rps_values.push(None);
                }
            }
        }
        if labels.len() == 2 {
            match (rps_values[0], rps_values[1]) {
                (Some(a), Some(b)) if b > 0.0 => out.push_str(&format!(" {:.1}× |", a / b)),
                _ => out.push_str(" – |"),
            }
        }
        match reference(&scenario) {
            Some(reference) if connections == 50 => {
                let (lo, hi) = reference.rps;
                let p99 = match reference.p99_ms {
                    Some((p99_lo, p99_hi)) => format!("p99 {p99_lo:.0}–{p99_hi:.0}"),
                    None => "p99 unknown".to_owned(),
                };
                out.push_str(&format!(
                    " {lo:.0}–{hi:.0} ({p99}); goal ≥ {:.0} req/s |",
                    reference.goal_factor * hi
                ))
            }
            _ if scenario == "history_during_log_ins" => out.push_str(" – (goal: p99 < 50 ms) |"),
            _ => out.push_str(" – |"),
        }
        out.push('\n');
    }
    out.push_str("| server RSS idle / after seed / peak (MB) | |");
    for summary in summaries {
        let memory = &summary["memory_mb"];
        out.push_str(&format!(
            " {} / {} / {} |",
            fmt_num(&memory["idle_rss"]),
            fmt_num(&memory["after_seed_rss"]),
            fmt_num(&memory["peak_rss"])
        ));
    }
    if labels.len() == 2 {
        out.push_str(" |");
    }
    out.push_str(" 135 / 267 / – (Node only, PostgreSQL not counted) |\n");
    out.push_str("| seed: messages/s (batch) | |");
    for summary in summaries {
        out.push_str(&format!(
            " {} ({}) |",
            fmt_num(&summary["seed"]["messages_per_s"]),
            summary["seed"]["batch_size"]
        ));
    }
    if labels.len() == 2 {
        out.push_str(" |");
    }
    out.push_str(" – |\n");
}
