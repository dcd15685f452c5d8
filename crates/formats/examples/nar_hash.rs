//! `cargo run --release -p nivis-formats --example nar_hash -- PATH`: the
//! SHA-256 of PATH's NAR in base16 and its size, through the NAR dump alone,
//! for measuring it without building the whole CLI. In the environment,
//! `NAR_LOW_WATER` overrides the dump's hand-over policy, `NAR_NULL_SINK`
//! throws the bytes away unhashed (the walker's work alone), and
//! `NAR_THREAD_TIMES` prints each thread's CPU time.

use nivis_formats::nar::dump_path_with_low_water;
use nivis_formats::{HashAlgorithm, Hasher};

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: nar_hash PATH");
    let low_water = std::env::var("NAR_LOW_WATER").map_or(512 * 1024, |value| value.parse::<u64>().expect("a number of bytes"));
    if std::env::var_os("NAR_NULL_SINK").is_some() {
        // Only the walker's work: the bytes go nowhere.
        let size = dump_path_with_low_water(std::path::Path::new(&path), &mut std::io::sink(), low_water).unwrap();
        println!("{size}");
        return;
    }
    let mut hasher = Hasher::new(HashAlgorithm::Sha256);
    match dump_path_with_low_water(std::path::Path::new(&path), &mut hasher, low_water) {
        Ok(size) => {
            println!("{} {size}", hasher.finish().to_base16());
            if std::env::var_os("NAR_THREAD_TIMES").is_some() {
                // The calling thread is the consumer; the rest is the walker's.
                let seconds = |who| {
                    // SAFETY: getrusage fills the plain struct.
                    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                    unsafe { libc::getrusage(who, &mut usage) };
                    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                    (time(usage.ru_utime), time(usage.ru_stime))
                };
                let (consumer_user, consumer_sys) = seconds(libc::RUSAGE_THREAD);
                let (all_user, all_sys) = seconds(libc::RUSAGE_SELF);
                eprintln!(
                    "consumer user {consumer_user:.3} sys {consumer_sys:.3}; walker user {:.3} sys {:.3}",
                    all_user - consumer_user,
                    all_sys - consumer_sys
                );
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}
