//! The admin port's queries and the tables they return.

use mysql_proxy_plugin_abi::{
    abi_stable::std_types::{RNone, ROption, RSome, RVec},
    HostHandle, Response, ResponseColumn, ResultSetResponse, SqlError,
};
use mysql_proxy_protocol::constants::ColumnType;

/// The commands `SELECT * FROM help` lists.
const HELP: &[(&str, &str)] = &[
    ("SELECT * FROM help", "shows this help"),
    (
        "SELECT * FROM backends",
        "lists the backends and their state",
    ),
];

/// Answers one COM_QUERY text.
pub fn answer(query: &str, host: &HostHandle) -> Result<Response, SqlError> {
    match normalize(query).as_str() {
        "select * from backends" => Ok(backends(host)),
        "select * from help" => Ok(help()),
        _ => Err(SqlError::new(
            1105,
            "07000",
            "use 'SELECT * FROM help' to see the supported commands",
        )),
    }
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

fn backends(host: &HostHandle) -> Response {
    let rows = host
        .backends()
        .into_iter()
        .map(|b| {
            RVec::from(vec![
                text(b.ndx + 1),
                text(b.address),
                text(b.state.name()),
                text(b.backend_type.name()),
                RNone,
                text(b.connected_clients),
            ])
        })
        .collect();
    Response::ResultSet(ResultSetResponse {
        columns: RVec::from(vec![
            column("backend_ndx", ColumnType::Long),
            column("address", ColumnType::VarString),
            column("state", ColumnType::VarString),
            column("type", ColumnType::VarString),
            column("uuid", ColumnType::VarString),
            column("connected_clients", ColumnType::Long),
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
