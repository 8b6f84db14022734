//! The admin port's queries and the tables they return.

use mysql_proxy_plugin_abi::{
    abi_stable::nonexhaustive_enum::NonExhaustive,
    abi_stable::std_types::{RNone, ROption, RSome, RVec},
    BackendState, HostHandle, OkResponse, Response, ResponseColumn, ResultSetResponse, SqlError,
};
use std::time::{SystemTime, UNIX_EPOCH};

use mysql_proxy_protocol::constants::ColumnType;

/// The commands `SELECT * FROM help` lists.
const HELP: &[(&str, &str)] = &[
    ("SELECT * FROM help", "shows this help"),
    (
        "SELECT * FROM backends",
        "lists the backends and their state",
    ),
    (
        "UPDATE backends SET state='offline' WHERE backend_ndx=N",
        "takes a backend out: no new clients, current sessions stay",
    ),
    (
        "UPDATE backends SET state='online' WHERE backend_ndx=N",
        "puts an offline backend back (up or down as health checks find it)",
    ),
    (
        "SELECT * FROM connections",
        "lists the client sessions: user, backend, state, command, ...",
    ),
    ("KILL [CONNECTION] id", "ends client session id"),
    (
        "KILL QUERY id",
        "has the backend kill the query session id runs (needs --health-check-user)",
    ),
];

/// Session settings client libraries send when they connect; the admin port
/// has none of them to change, so it acknowledges them.
const SESSION_SETTINGS: &[&str] = &[
    "set names ",
    "set character set ",
    "set character_set_",
    "set autocommit",
    "set sql_mode",
    "set time_zone",
    "set session ",
    "set @@session.",
];

/// Answers one COM_QUERY text.
pub fn answer(query: &str, host: &HostHandle) -> Result<Response, SqlError> {
    let normalized = normalize(query);
    match normalized.as_str() {
        "select * from backends" => Ok(backends(host)),
        "select * from connections" => Ok(Response::ResultSet(host.connections())),
        "select * from help" => Ok(help()),
        text if SESSION_SETTINGS.iter().any(|p| text.starts_with(p)) => {
            Ok(Response::Ok(OkResponse::default()))
        }
        text if text.starts_with("select @@") => system_variables(query),
        text if text.starts_with("update backends ") => update_backend_state(text, host),
        text if text.starts_with("kill ") => kill(text, host),
        _ => Err(SqlError::new(
            1105,
            "07000",
            "use 'SELECT * FROM help' to see the supported commands",
        )),
    }
}

/// `SELECT @@a, @@session.b [LIMIT n]`: the few variables client libraries
/// read when they connect (MySQL Proxy's admin port refused these, which
/// broke drivers that need them).
fn system_variables(query: &str) -> Result<Response, SqlError> {
    let list = query.trim().trim_end_matches(';').trim();
    let list = list.get("select".len()..).unwrap_or_default();
    let lower = list.to_lowercase();
    let list = match lower.rfind(" limit ") {
        Some(at) => list.get(..at).unwrap_or(list),
        None => list,
    };
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for item in list.split(',').map(str::trim) {
        let name = item.trim_start_matches("@@").to_lowercase();
        let name = name
            .strip_prefix("session.")
            .or_else(|| name.strip_prefix("global."))
            .unwrap_or(&name);
        let value = match name {
            "version_comment" => RSome("mysql-proxy admin"),
            "version" => RSome("5.0.99-agent-admin"),
            "max_allowed_packet" => RSome("16777216"),
            "wait_timeout" | "interactive_timeout" => RSome("28800"),
            "autocommit" => RSome("1"),
            "sql_mode" => RSome(""),
            "socket" => RNone,
            _ => {
                return Err(SqlError::new(
                    1193,
                    "HY000",
                    format!("Unknown system variable '{name}'"),
                ))
            }
        };
        columns.push(column(item, ColumnType::VarString));
        values.push(value.map(|v| RVec::from(v.as_bytes().to_vec())));
    }
    Ok(Response::ResultSet(ResultSetResponse {
        columns: RVec::from(columns),
        rows: RVec::from(vec![RVec::from(values)]),
    }))
}

/// Lower case, single spaces, no trailing semicolons.
fn normalize(query: &str) -> String {
    query
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn column(name: &str, column_type: ColumnType) -> ResponseColumn {
    ResponseColumn {
        name: name.into(),
        column_type: column_type as u8,
    }
}

fn text(value: impl ToString) -> ROption<RVec<u8>> {
    RSome(RVec::from(value.to_string().into_bytes()))
}

/// `KILL [CONNECTION] <id>` / `KILL QUERY <id>` (already normalized), as
/// MySQL's.
fn kill(text: &str, host: &HostHandle) -> Result<Response, SqlError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (query_only, id) = match words.as_slice() {
        ["kill", id] | ["kill", "connection", id] => (false, *id),
        ["kill", "query", id] => (true, *id),
        _ => {
            return Err(SqlError::new(
                1064,
                "42000",
                "usage: KILL [CONNECTION | QUERY] <id>",
            ))
        }
    };
    let id: u64 = id
        .parse()
        .map_err(|_| SqlError::new(1064, "42000", format!("not a connection id: {id}")))?;
    host.kill(id, query_only)
        .into_result()
        .map(|()| Response::Ok(OkResponse::default()))
}

/// `UPDATE backends SET state = '<offline|online>' WHERE backend_ndx = <n>`
/// (already normalized).
fn update_backend_state(text: &str, host: &HostHandle) -> Result<Response, SqlError> {
    let usage = || {
        SqlError::new(
            1105,
            "07000",
            "expected: UPDATE backends SET state = 'offline' (or 'online') WHERE backend_ndx = <n>",
        )
    };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let rest = compact
        .strip_prefix("updatebackendssetstate=")
        .ok_or_else(usage)?;
    let (state, ndx) = rest.split_once("wherebackend_ndx=").ok_or_else(usage)?;
    let (state, reason) = match state.trim_matches(|c| c == '\'' || c == '"') {
        "offline" => (BackendState::Offline, "taken offline by an operator"),
        "online" => (BackendState::Unknown, "put back online by an operator"),
        _ => return Err(usage()),
    };
    let ndx: u32 = ndx.parse().map_err(|_| usage())?;
    let internal = ndx.checked_sub(1).ok_or_else(|| {
        SqlError::new(1105, "07000", format!("no backend with backend_ndx {ndx}"))
    })?;
    host.set_backend_state(internal, NonExhaustive::new(state), reason.into())
        .into_result()
        .map_err(|message| SqlError::new(1105, "07000", message.to_string()))?;
    Ok(Response::Ok(OkResponse {
        affected_rows: 1,
        ..OkResponse::default()
    }))
}

fn backends(host: &HostHandle) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rows = host
        .backends()
        .into_iter()
        .map(|b| {
            RVec::from(vec![
                text(b.ndx() + 1),
                text(b.address()),
                text(b.state().as_enum().map_or("?", |state| state.name())),
                text(b.backend_type().as_enum().map_or("?", |kind| kind.name())),
                RNone,
                text(b.connected_clients()),
                text(b.weight()),
                text(b.idle_connections()),
                text(b.connects()),
                text(b.connect_failures()),
                text(b.queries()),
                text(b.bytes()),
                text(b.errors()),
                text(now.saturating_sub(b.state_since())),
                text(b.state_reason()),
            ])
        })
        .collect();
    Response::ResultSet(ResultSetResponse {
        columns: RVec::from(vec![
            // MySQL Proxy's columns first, in its order.
            column("backend_ndx", ColumnType::Long),
            column("address", ColumnType::VarString),
            column("state", ColumnType::VarString),
            column("type", ColumnType::VarString),
            column("uuid", ColumnType::VarString),
            column("connected_clients", ColumnType::Long),
            column("weight", ColumnType::Long),
            column("idle_connections", ColumnType::Long),
            column("connects", ColumnType::LongLong),
            column("connect_failures", ColumnType::LongLong),
            column("queries", ColumnType::LongLong),
            column("bytes", ColumnType::LongLong),
            column("errors", ColumnType::LongLong),
            column("state_age_s", ColumnType::LongLong),
            column("state_reason", ColumnType::VarString),
        ]),
        rows,
    })
}

fn help() -> Response {
    Response::ResultSet(ResultSetResponse {
        columns: RVec::from(vec![
            column("command", ColumnType::VarString),
            column("description", ColumnType::VarString),
        ]),
        rows: HELP
            .iter()
            .map(|(command, description)| RVec::from(vec![text(command), text(description)]))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn queries_match_whatever_their_case_and_spacing() {
        assert_eq!(
            normalize("  SELECT *\n FROM   Backends ;"),
            "select * from backends"
        );
    }
}
