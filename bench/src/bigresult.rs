//! A large result set: a table of about 1 GiB filled in the server, then read
//! whole (`SELECT` of every row) by the light client, which walks packet
//! headers and discards rows, so the client costs little next to the relay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::light::{LightConn, ResultCount};

/// Payload bytes of the `pad` column of each row.
pub const ROW_BYTES: u64 = 1020;
/// On the wire a row is a 4-byte header, a 3-byte length and the value.
pub const WIRE_ROW_BYTES: u64 = ROW_BYTES + 7;
pub const TABLE: &str = "big";

/// Rows needed for a result of `bytes` on the wire.
pub fn rows_for(bytes: u64) -> u64 {
    bytes.div_ceil(WIRE_ROW_BYTES)
}

/// Creates and fills `test.big` with `rows` rows, in chunks (each an
/// INSERT ... SELECT from the SEQUENCE engine).
pub fn fill(
    conn: &mut mysql::Conn,
    rows: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let q = |conn: &mut mysql::Conn, sql: &str| {
        conn.query_drop(sql).map_err(|e| format!("`{sql}`: {e}"))
    };
    q(conn, &format!("DROP TABLE IF EXISTS {TABLE}"))?;
    q(
        conn,
        &format!(
            "CREATE TABLE {TABLE} (id INT UNSIGNED NOT NULL PRIMARY KEY, \
             pad VARCHAR({ROW_BYTES}) NOT NULL) ENGINE=InnoDB"
        ),
    )?;
    const CHUNK: u64 = 131_072;
    let began = Instant::now();
    let mut done = 0;
    while done < rows {
        let n = CHUNK.min(rows - done);
        q(
            conn,
            &format!(
                "INSERT INTO {TABLE} SELECT seq, REPEAT(CHAR(65 + seq % 26), {ROW_BYTES}) \
                 FROM seq_{}_to_{}",
                done + 1,
                done + n
            ),
        )?;
        done += n;
        progress(&format!(
            "filled {done}/{rows} rows ({:.0} MiB) in {:.1?}",
            (done * WIRE_ROW_BYTES) as f64 / (1u64 << 20) as f64,
            began.elapsed()
        ));
    }
    Ok(())
}

/// Reads the whole table through `addr`; returns what came and how long it took.
pub fn read_all(addr: SocketAddr) -> Result<(ResultCount, Duration), String> {
    let mut conn = LightConn::connect(addr, "root", "test", 256 * 1024, Duration::from_secs(120))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let began = Instant::now();
    let count = conn
        .query(&format!("SELECT pad FROM {TABLE}"))
        .map_err(|e| format!("reading {TABLE} through {addr}: {e}"))?;
    let took = began.elapsed();
    conn.quit().map_err(|e| format!("quit: {e}"))?;
    Ok((count, took))
}
