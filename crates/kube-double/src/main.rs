//! `kube-double`: the Kubernetes API test double as a process, for
//! benchmarks. Not a Kubernetes implementation.
//!
//! ```text
//! kube-double [--listen 127.0.0.1:0] [--kubeconfig-out FILE]
//!             [--seed-configmaps N --namespace NS --size BYTES]
//!             [--established-delay-ms MS] [--pods-delay-ms MS] [--token T]
//! ```
//! Prints `listening on http://ADDR` once serving (after seeding), writes
//! the kubeconfig then, and runs until SIGTERM or SIGINT.

use kube_double::{ApiDouble, Options};
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

struct Args {
    opts: Options,
    kubeconfig_out: Option<String>,
    seed: usize,
    namespace: String,
    size: usize,
}

fn usage() -> &'static str {
    "usage: kube-double [--listen ADDR] [--kubeconfig-out FILE] [--seed-configmaps N --namespace NS --size BYTES] [--established-delay-ms MS] [--pods-delay-ms MS] [--token T]"
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        opts: Options::default(),
        kubeconfig_out: None,
        seed: 0,
        namespace: "default".into(),
        size: 2048,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(usage().into());
        }
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--listen" => {
                a.opts.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?;
            }
            "--kubeconfig-out" => a.kubeconfig_out = Some(value()?),
            "--seed-configmaps" => a.seed = num(value()?)? as usize,
            "--namespace" => a.namespace = value()?,
            "--size" => a.size = num(value()?)? as usize,
            "--established-delay-ms" => {
                a.opts.established_delay = Duration::from_millis(num(value()?)?)
            }
            "--pods-delay-ms" => a.opts.pods_delay = Duration::from_millis(num(value()?)?),
            "--token" => a.opts.required_token = Some(value()?),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let api = match ApiDouble::try_start(args.opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kube-double: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    for i in 0..args.seed {
        // Printable filler of the asked size, different per object.
        let filler: String = (0..args.size)
            .map(|j| (b'a' + ((i * 7 + j * 13) % 26) as u8) as char)
            .collect();
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("bench-{i:06}"), "namespace": args.namespace,
                         "labels": {"app.kubernetes.io/part-of": "lifeboat-bench"}},
            "data": {"payload": filler},
        });
        if let Err(e) = api.try_insert(obj) {
            eprintln!("kube-double: seeding failed: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(path) = &args.kubeconfig_out
        && let Err(e) = api.write_kubeconfig(path)
    {
        eprintln!("kube-double: cannot write {path}: {e}");
        return ExitCode::from(1);
    }
    println!("listening on {}", api.url());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-double: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("kube-double: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    api.shutdown();
    ExitCode::SUCCESS
}
