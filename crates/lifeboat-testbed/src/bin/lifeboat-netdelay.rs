//! `lifeboat-netdelay --queue N --delay-us US [--ready-file PATH]`: holds
//! every packet of NFQUEUE `N` (in the network namespace it runs in) for
//! `US` microseconds, then accepts it; exits when stdin closes, after
//! releasing what it holds. Started by lifeboat-testbed's `Bed::set_latency`
//! (docs/testbed.md); the logic is `lifeboat_testbed::netdelay`.

fn main() {
    let opts = match lifeboat_testbed::netdelay::parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lifeboat-netdelay: {e}");
            std::process::exit(2);
        }
    };
    match lifeboat_testbed::netdelay::run(&opts) {
        Ok(stats) => eprintln!(
            "lifeboat-netdelay: queue {} done: {} packets released, at most {} held at once, \
             {} dropped by the kernel (their device went down)",
            opts.queue, stats.released, stats.most_held, stats.vanished
        ),
        Err(e) => {
            eprintln!(
                "lifeboat-netdelay: queue {}: {e} (needs root and the kernel's nfnetlink_queue)",
                opts.queue
            );
            std::process::exit(1);
        }
    }
}
