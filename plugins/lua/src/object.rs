//! Lua objects backed by Rust, as MySQL Proxy 0.8's userdata behaved:
//! keys read through [`Object::get`], written through [`Object::set`]
//! (nothing writable unless an object says so), errors raised with the
//! script's location.

use mlua::{AnyUserData, Lua, MetaMethod, UserData, UserDataFields, Value};

use crate::queries::{raising, reply};

/// A userdata whose keys are read and written through [`Object::get`] and
/// [`Object::set`].
pub(crate) trait Object: UserData + Send + Sync + 'static {
    /// How scripts name the object, for errors.
    const PATH: &'static str;

    /// The value of `key`, or the message of the error it raises.
    fn get(&self, lua: &Lua, key: &Value) -> mlua::Result<Result<Value, String>>;

    /// Sets `key`, or answers the message of the error it raises (by
    /// default: no key is writable).
    fn set(&self, lua: &Lua, key: &Value, value: Value) -> mlua::Result<Result<(), String>> {
        let _ = (lua, value);
        Ok(Err(not_writable(Self::PATH, key)))
    }
}

/// Registers the `__index` and `__newindex` of an [`Object`].
pub(crate) fn object_fields<T: Object, F: UserDataFields<T>>(fields: &mut F) {
    fields.add_meta_field_with(MetaMethod::Index, |lua| {
        let get = lua.create_function(|lua, (object, key): (AnyUserData, Value)| {
            let answer = object.borrow::<T>()?.get(lua, &key)?;
            reply(lua, answer)
        })?;
        raising(lua, get)
    });
    fields.add_meta_field_with(MetaMethod::NewIndex, |lua| {
        let set =
            lua.create_function(|lua, (object, key, value): (AnyUserData, Value, Value)| {
                let answer = object.borrow::<T>()?.set(lua, &key, value)?;
                reply(lua, answer.map(|()| Value::Nil))
            })?;
        raising(lua, set)
    });
}

/// A string key's bytes; other keys read nil on every object.
pub(crate) fn key_bytes(key: &Value) -> Option<mlua::BorrowedBytes> {
    match key {
        Value::String(key) => Some(key.as_bytes()),
        _ => None,
    }
}

/// `<path>.<key> is not writable` (`<path>[<n>]` for a number).
pub(crate) fn not_writable(path: &str, key: &Value) -> String {
    let key = match key {
        Value::String(key) => format!(".{}", key.to_string_lossy()),
        Value::Integer(n) => format!("[{n}]"),
        Value::Number(n) => format!("[{n}]"),
        _ => "[...]".to_string(),
    };
    format!("{path}{key} is not writable")
}
