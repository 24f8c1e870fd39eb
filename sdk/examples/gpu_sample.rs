//! Prints GPU samples as NDJSON, one go-livepeer Kafka-shaped `gpu_stats`
//! event per line (`event.to_kafka_json()`).
//!
//! ```text
//! cargo build -p vouch-sdk --example gpu_sample
//! target/debug/examples/gpu_sample --count 5 --interval-ms 1000 [--key HEX64]
//! ```
//!
//! The binary loads NVML at run time, so it can be copied to any Linux box
//! with glibc; without a driver or GPU it prints `proxy` samples and says why
//! on stderr. Before each sample it waits `--interval-ms` (so the first GPM
//! interval is a full one). At the end it re-reads the raw GPU UUIDs and
//! checks that none of them appears in the output (exit status 3 if one does).

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vouch_sdk::gpu::GpuSampler;

struct Args {
    count: u64,
    interval: Duration,
    key: [u8; 32],
}

const USAGE: &str = "usage: gpu_sample [--count N] [--interval-ms M] [--key HEX64]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        count: 3,
        interval: Duration::from_millis(1000),
        // A fixed demonstration key: real deployments use a secret one.
        key: blake3::derive_key("vouch-sdk gpu_sample example pseudonym key", b""),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--count" => args.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--interval-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--interval-ms: {e}"))?;
                args.interval = Duration::from_millis(ms);
            }
            "--key" => {
                let bytes = hex::decode(value()?).map_err(|e| format!("--key: {e}"))?;
                args.key = bytes.try_into().map_err(|_| "--key must be 32 bytes".to_owned())?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The raw UUIDs, read independently of the sampler, for the privacy check.
fn raw_uuids() -> Vec<String> {
    let Ok(nvml) = nvml_wrapper::Nvml::init() else { return Vec::new() };
    let count = nvml.device_count().unwrap_or(0);
    (0..count).filter_map(|i| nvml.device_by_index(i).ok()?.uuid().ok()).collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut sampler = GpuSampler::new(args.key);
    match sampler.proxy_reason() {
        Some(reason) => eprintln!("gpu_sample: source proxy: {reason}"),
        None => eprintln!("gpu_sample: NVML loaded, {} GPU(s)", sampler.gpu_count()),
    }
    let mut printed = String::new();
    for _ in 0..args.count {
        std::thread::sleep(args.interval);
        for event in sampler.sample(now_ms()) {
            let line = event.to_kafka_json().to_string();
            println!("{line}");
            printed.push_str(&line);
            printed.push('\n');
        }
    }
    let uuids = raw_uuids();
    let leaked: Vec<&String> = uuids.iter().filter(|u| printed.contains(u.as_str())).collect();
    if !leaked.is_empty() {
        eprintln!("gpu_sample: PRIVACY FAILURE: {} raw GPU UUID(s) in the output", leaked.len());
        return ExitCode::from(3);
    }
    eprintln!("gpu_sample: privacy check passed ({} raw UUID(s) absent from output)", uuids.len());
    ExitCode::SUCCESS
}
