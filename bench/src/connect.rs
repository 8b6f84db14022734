//! Connection churn: client threads each loop over connect + handshake/auth +
//! `SELECT 1` + COM_QUIT, a new connection per query, for a fixed time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::light::LightConn;

/// What one churn run did.
#[derive(Clone, Debug, Default)]
pub struct Churn {
    pub cycles: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
}

impl Churn {
    pub fn rate(&self) -> f64 {
        self.cycles as f64 / self.seconds
    }
}

/// `threads` clients cycling for `seconds` against `addr`.
pub fn churn(addr: SocketAddr, threads: u32, seconds: f64) -> Churn {
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut done = Churn::default();
                while !stop.load(Ordering::Relaxed) {
                    match cycle(addr) {
                        Ok(()) => done.cycles += 1,
                        Err(e) => {
                            done.errors += 1;
                            done.first_error.get_or_insert(e);
                            // Do not spin on a persistent failure.
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                done
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = Churn::default();
    for w in workers {
        let done = w.join().unwrap_or_else(|_| Churn {
            errors: 1,
            first_error: Some("a client thread panicked".into()),
            ..Churn::default()
        });
        total.cycles += done.cycles;
        total.errors += done.errors;
        if total.first_error.is_none() {
            total.first_error = done.first_error;
        }
    }
    total.seconds = began.elapsed().as_secs_f64();
    total
}

fn cycle(addr: SocketAddr) -> Result<(), String> {
    let mut conn = LightConn::connect(addr, "root", "test", 4096, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    conn.query("SELECT 1")
        .map_err(|e| format!("SELECT 1: {e}"))?;
    conn.quit().map_err(|e| format!("quit: {e}"))
}
