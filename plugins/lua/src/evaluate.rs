//! What a chunk of Lua run on the debug port returned, as the result set
//! the client sees (MySQL Proxy 0.8's debug plugin's mapping): a table of
//! tables is one row per inner table, with the first one's keys as
//! columns; another table is one row with a column per key; any other
//! value is one row of a column named `lua`.
//!
//! Where 0.8 crashed or lost information, this answers what a user would
//! expect: an empty table is a result with no rows, a table nested in a
//! cell is shown as a Lua table constructor (to a few levels), a number
//! is shown as Lua prints it (0.8 rounded every number to an integer),
//! and a result larger than [`RESULT_LIMIT`] is an error, not an
//! allocation the process may not survive.

use mlua::{Table, Value};
use mysql_proxy_plugin_abi::abi_stable::std_types::{RNone, ROption, RSome, RVec};
use mysql_proxy_plugin_abi::{ResponseColumn, ResultSetResponse};
use mysql_proxy_protocol::constants::ColumnType;

/// The most bytes of values one answer may hold.
pub const RESULT_LIMIT: usize = 16 << 20;

/// A row of cells (`RNone` is NULL).
type Row = Vec<ROption<RVec<u8>>>;

/// How deep a table nested in a cell is written out.
const NESTING_SHOWN: usize = 3;

/// `value` as the debug port's result set.
pub fn result_set(value: &Value) -> mlua::Result<ResultSetResponse> {
    let mut size = Size::default();
    let (names, rows) = match value {
        Value::Table(table) => {
            let entries = entries(table)?;
            let inner_tables: Option<Vec<&Table>> = entries
                .iter()
                .map(|(_, value)| match value {
                    Value::Table(inner) => Some(inner),
                    _ => None,
                })
                .collect();
            match inner_tables {
                Some(inner) if !inner.is_empty() => table_of_rows(&inner, &mut size)?,
                _ => {
                    let names = entries.iter().map(|(key, _)| key_name(key)).collect();
                    let row = entries
                        .iter()
                        .map(|(_, value)| cell(value, &mut size))
                        .collect::<mlua::Result<_>>()?;
                    let rows = if entries.is_empty() {
                        vec![]
                    } else {
                        vec![row]
                    };
                    (names, rows)
                }
            }
        }
        other => (vec!["lua".to_string()], vec![vec![cell(other, &mut size)?]]),
    };
    // A result set needs a column; an empty table has none.
    let names = if names.is_empty() {
        vec!["lua".to_string()]
    } else {
        names
    };
    Ok(ResultSetResponse {
        columns: names
            .into_iter()
            .map(|name| ResponseColumn {
                name: name.into(),
                column_type: ColumnType::VarString as u8,
            })
            .collect(),
        rows: rows.into_iter().map(RVec::from).collect(),
    })
}

/// One row per inner table, columns from the first one's keys (in Lua's
/// iteration order); a key another row lacks is NULL there.
fn table_of_rows(inner: &[&Table], size: &mut Size) -> mlua::Result<(Vec<String>, Vec<Row>)> {
    let keys: Vec<Value> = match inner.first() {
        Some(first) => entries(first)?.into_iter().map(|(key, _)| key).collect(),
        None => vec![],
    };
    let rows = inner
        .iter()
        .map(|row| {
            keys.iter()
                .map(|key| cell(&row.raw_get::<Value>(key.clone())?, size))
                .collect::<mlua::Result<Vec<_>>>()
        })
        .collect::<mlua::Result<_>>()?;
    Ok((keys.iter().map(key_name).collect(), rows))
}

/// A table's entries in `next()` order.
fn entries(table: &Table) -> mlua::Result<Vec<(Value, Value)>> {
    table.clone().pairs::<Value, Value>().collect()
}

/// A key as a column name: numbers as integers where they are.
fn key_name(key: &Value) -> String {
    scalar_text(key).unwrap_or_else(|| format!("{key:?}"))
}

/// A cell: NULL for nil, TRUE/FALSE, a number or string as Lua shows it,
/// a table as its constructor, anything else as `tostring` shows it.
fn cell(value: &Value, size: &mut Size) -> mlua::Result<ROption<RVec<u8>>> {
    let bytes = match value {
        Value::Nil => return Ok(RNone),
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Table(table) => {
            let mut text = String::new();
            write_table(table, NESTING_SHOWN, &mut text, size)?;
            text.into_bytes()
        }
        other => scalar_text(other)
            .unwrap_or_else(|| other.to_string().unwrap_or_default())
            .into_bytes(),
    };
    size.add(bytes.len())?;
    Ok(RSome(RVec::from(bytes)))
}

/// Booleans, numbers and strings as text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Boolean(true) => Some("TRUE".into()),
        Value::Boolean(false) => Some("FALSE".into()),
        Value::Integer(n) => Some(n.to_string()),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(format!("{n:.0}")),
        Value::Number(n) => Some(n.to_string()),
        Value::String(text) => Some(text.to_string_lossy()),
        _ => None,
    }
}

/// `{1, 2, name = "x", nested = {...}}`, to `depth` levels.
fn write_table(table: &Table, depth: usize, out: &mut String, size: &mut Size) -> mlua::Result<()> {
    if depth == 0 {
        out.push_str("{...}");
        return Ok(());
    }
    out.push('{');
    for (n, (key, value)) in entries(table)?.into_iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        match &key {
            Value::String(name) => {
                out.push_str(&name.to_string_lossy());
                out.push_str(" = ");
            }
            other => {
                out.push('[');
                out.push_str(&key_name(other));
                out.push_str("] = ");
            }
        }
        let before = out.len();
        match &value {
            Value::Table(inner) => write_table(inner, depth - 1, out, size)?,
            Value::String(text) => out.push_str(&format!("{:?}", text.to_string_lossy())),
            other => out.push_str(
                &scalar_text(other).unwrap_or_else(|| other.to_string().unwrap_or_default()),
            ),
        }
        size.add(out.len() - before)?;
    }
    out.push('}');
    Ok(())
}

/// The bytes of values so far, refused beyond [`RESULT_LIMIT`].
#[derive(Default)]
struct Size(usize);

impl Size {
    fn add(&mut self, bytes: usize) -> mlua::Result<()> {
        self.0 = self.0.saturating_add(bytes);
        if self.0 > RESULT_LIMIT {
            return Err(mlua::Error::runtime(format!(
                "the result is larger than {} MiB",
                RESULT_LIMIT >> 20
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;

    fn evaluate(chunk: &str) -> mlua::Result<ResultSetResponse> {
        let lua = Lua::new();
        let value: Value = lua.load(chunk).eval()?;
        result_set(&value)
    }

    fn names(result: &ResultSetResponse) -> Vec<String> {
        result.columns.iter().map(|c| c.name.to_string()).collect()
    }

    fn rows(result: &ResultSetResponse) -> Vec<Vec<Option<String>>> {
        result
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| {
                        cell.as_ref()
                            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                            .into_option()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_scalar_is_one_row_of_column_lua() {
        let result = evaluate("return 1 + 1").unwrap();
        assert_eq!(names(&result), ["lua"]);
        assert_eq!(rows(&result), [[Some("2".to_string())]]);
        assert_eq!(rows(&evaluate("return nil").unwrap()), [[None]]);
        assert_eq!(
            rows(&evaluate("return true").unwrap()),
            [[Some("TRUE".into())]]
        );
        assert_eq!(
            rows(&evaluate("return 2.5").unwrap()),
            [[Some("2.5".into())]]
        );
    }

    #[test]
    fn a_table_of_scalars_is_one_row_with_a_column_per_key() {
        let result = evaluate("return { a = 'x' }").unwrap();
        assert_eq!(names(&result), ["a"]);
        assert_eq!(rows(&result), [[Some("x".to_string())]]);
        let result = evaluate("return { 'x', 'y' }").unwrap();
        assert_eq!(names(&result), ["1", "2"]);
    }

    #[test]
    fn a_table_of_tables_is_a_row_per_table() {
        let result = evaluate("return { { id = 1 }, { id = 2 }, { other = 3 } }").unwrap();
        assert_eq!(names(&result), ["id"]);
        assert_eq!(
            rows(&result),
            [[Some("1".to_string())], [Some("2".to_string())], [None]]
        );
    }

    #[test]
    fn what_crashed_0_8_has_an_answer() {
        let result = evaluate("return {}").unwrap();
        assert_eq!(names(&result), ["lua"]);
        assert!(rows(&result).is_empty());
        let result = evaluate("return { a = { b = { c = { d = { e = 1 } } } }, 1 }").unwrap();
        assert_eq!(names(&result).len(), 2);
        let all = rows(&result).concat();
        assert!(
            all.contains(&Some("{b = {c = {d = {...}}}}".to_string())),
            "{all:?}"
        );
        let error = evaluate("return string.rep('x', 17 * 1024 * 1024)").unwrap_err();
        assert!(error.to_string().contains("larger than 16 MiB"), "{error}");
    }
}
