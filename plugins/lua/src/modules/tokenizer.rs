//! `mysql.tokenizer` (global `tokenizer`): MySQL Proxy 0.8's C module
//! binding the SQL tokenizer of `crate::tokenizer`, with its one function,
//! `tokenize(sql)`.
//!
//! How it behaves, and the choices MySQL Proxy 0.8 left to us:
//!
//! - `tokenize(sql)` takes a string (or a number in its string form) and
//!   returns the token list as 0.8 did: a userdata, not a table, so
//!   `#tokens` counts the tokens and `tokens[i]` (1-based; a number, or a
//!   string Lua converts to one, truncated) is a token, or nothing out of
//!   range; another key raises `bad argument #2 to '?' (number expected,
//!   got string)`. `tokens[i] = nil` frees a token (it reads nil
//!   afterwards, `#tokens` is unchanged); assigning anything else raises
//!   `bad argument #3 to '?' (nil expected, got ...)`. As a userdata it
//!   cannot be walked with `ipairs` or `pairs`, as in 0.8.
//! - A token is a userdata too, with `text` (its bytes), `token_id`
//!   (0.8's number) and `token_name` (`TK_SQL_SELECT`, ...); another key
//!   raises `tokens[...] has no <key> field`, as in 0.8, and assigning a
//!   key raises Lua's own "attempt to index" error (0.8's token had no
//!   `__newindex` either).
//! - 0.8 read `tokens[0]` and negative indexes before its array (a crash
//!   or garbage), and a token kept by a script pointed into the list, so
//!   it was freed with it (`tokens[i] = nil`, or the list collected): here
//!   an index below 1 reads nothing, and a token stays valid for as long
//!   as the script keeps it.
//! - The module exports `tokenize` only, with no `TK_*` constants: 0.8's
//!   C module had none (scripts compare `token_name`), and a script that
//!   used them here would not run on 0.8. The token numbers are
//!   `TokenId::number`, the names `TokenId::name`.

use std::sync::Arc;

use mlua::{Lua, MetaMethod, MultiValue, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::{
    argument, check_integer, check_string, count, describe, function, type_error, Context, Failure,
};
use crate::tokenizer::{tokenize, Token};

/// `mysql.tokenizer`'s table.
pub fn open(lua: &Lua, _: &Context) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    module.raw_set(
        "tokenize",
        function(lua, |lua, args| {
            let sql = check_string(lua, args, 1)?;
            let tokens = tokenize(&sql.as_bytes())
                .into_iter()
                .map(|token| Some(Arc::new(token)))
                .collect();
            Ok(Value::UserData(lua.create_userdata(Tokens(tokens))?))
        })?,
    )?;
    describe(
        &module,
        "LuaMySQLTokenizer - the SQL tokenizer of MySQL Proxy",
        "LuaMySQLTokenizer 0.1",
    )?;
    Ok(module)
}

/// A token list: `None` where a script freed the token.
struct Tokens(Vec<Option<Arc<Token>>>);

impl UserData for Tokens {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with(MetaMethod::Index, |lua| function(lua, tokens_index));
        fields.add_meta_field_with(MetaMethod::NewIndex, |lua| function(lua, tokens_new_index));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Lua 5.1 passes `#u` a second operand (nil): taken and ignored.
        methods.add_meta_method(MetaMethod::Len, |_, this, _: MultiValue| {
            Ok(count(this.0.len()))
        });
    }
}

/// `tokens[i]`: the token, nil if freed, nothing out of range.
fn tokens_index(lua: &Lua, args: &MultiValue) -> Result<Value, Failure> {
    let index = check_integer(lua, args, 2)?;
    let token = {
        let tokens = this(lua, args)?;
        match slot(&tokens, index) {
            Some(Some(token)) => Arc::clone(token),
            Some(None) | None => return Ok(Value::Nil),
        }
    };
    Ok(Value::UserData(lua.create_userdata(TokenObject(token))?))
}

/// `tokens[i] = nil`: frees the token (out of range: nothing to free).
fn tokens_new_index(lua: &Lua, args: &MultiValue) -> Result<Value, Failure> {
    let index = check_integer(lua, args, 2)?;
    if !matches!(argument(args, 3), Some(Value::Nil)) {
        return Err(type_error(lua, args, 3, "nil"));
    }
    let Some(Value::UserData(object)) = argument(args, 1) else {
        return Err(type_error(lua, args, 1, "tokens"));
    };
    let mut tokens = object
        .borrow_mut::<Tokens>()
        .map_err(|_| type_error(lua, args, 1, "tokens"))?;
    let slot = usize::try_from(index)
        .ok()
        .and_then(|index| index.checked_sub(1))
        .and_then(|index| tokens.0.get_mut(index));
    if let Some(slot) = slot {
        *slot = None;
    }
    Ok(Value::Nil)
}

/// The list a metamethod got as its first argument.
fn this(lua: &Lua, args: &MultiValue) -> Result<mlua::UserDataRef<Tokens>, Failure> {
    match argument(args, 1) {
        Some(Value::UserData(object)) => object
            .borrow::<Tokens>()
            .map_err(|_| type_error(lua, args, 1, "tokens")),
        _ => Err(type_error(lua, args, 1, "tokens")),
    }
}

/// The slot at 1-based `index`, `None` out of range.
fn slot(tokens: &Tokens, index: i64) -> Option<&Option<Arc<Token>>> {
    let index = usize::try_from(index).ok()?.checked_sub(1)?;
    tokens.0.get(index)
}

/// A token as scripts see it.
struct TokenObject(Arc<Token>);

impl UserData for TokenObject {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with(MetaMethod::Index, |lua| function(lua, token_index));
    }
}

/// `token.text`, `token.token_id`, `token.token_name`.
fn token_index(lua: &Lua, args: &MultiValue) -> Result<Value, Failure> {
    let key = check_string(lua, args, 2)?;
    let token = match argument(args, 1) {
        Some(Value::UserData(object)) => object
            .borrow::<TokenObject>()
            .map(|token| Arc::clone(&token.0))
            .map_err(|_| type_error(lua, args, 1, "token"))?,
        _ => return Err(type_error(lua, args, 1, "token")),
    };
    let key = key.as_bytes();
    Ok(match &*key {
        b"text" => Value::String(lua.create_string(&token.text)?),
        b"token_id" => Value::Integer(token.id.number()),
        b"token_name" => Value::String(lua.create_string(token.name())?),
        other => {
            let message = format!(
                "tokens[...] has no {} field",
                String::from_utf8_lossy(other)
            );
            return Err(Failure::Raise(message));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{exec, lua};
    use crate::tokenizer::TokenId;

    #[test]
    fn tokenize_returns_the_tokens_as_0_8_showed_them() {
        let lua = lua();
        exec(
            &lua,
            r##"
            require("mysql.tokenizer")
            local tokens = tokenizer.tokenize("SELECT count(*) FROM `t` WHERE a = 'x''y' /* c */")
            local expected = {
                { "TK_SQL_SELECT", "SELECT" }, { "TK_FUNCTION", "count" },
                { "TK_OBRACE", "(" }, { "TK_STAR", "*" }, { "TK_CBRACE", ")" },
                { "TK_SQL_FROM", "FROM" }, { "TK_LITERAL", "t" },
                { "TK_SQL_WHERE", "WHERE" }, { "TK_LITERAL", "a" }, { "TK_EQ", "=" },
                { "TK_STRING", "x'y" }, { "TK_COMMENT", " c " },
            }
            assert(type(tokens) == "userdata")
            assert(#tokens == #expected, #tokens)
            for i = 1, #tokens do
                local token = tokens[i]
                assert(type(token) == "userdata")
                assert(token.token_name == expected[i][1], i .. ": " .. token.token_name)
                assert(token["text"] == expected[i][2], i .. ": " .. token.text)
                assert(type(token.token_id) == "number")
            end
            assert(tokens[1].token_id == 204 and tokens[3].token_id == 16)
            assert(tokens[#tokens + 1] == nil and tokens[0] == nil and tokens[-1] == nil)
            assert(select("#", tokens[99]) == 1)
            assert(tokens["2"].text == "count" and tokens[2.9].text == "count")
            assert(#tokenizer.tokenize("") == 0)
            assert(tokenizer.tokenize(12)[1].token_name == "TK_INTEGER")
            "##,
        );
    }

    #[test]
    fn token_ids_and_names_are_the_tokenizer_s() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("mysql.tokenizer")
            local t = tokenizer.tokenize("/*!50000 x */ <> != := && ||")
            ids, names = {}, {}
            for i = 1, #t do ids[i] = t[i].token_id names[i] = t[i].token_name end
            "#,
        );
        let ids: Vec<i64> = lua.globals().get("ids").unwrap();
        let names: Vec<String> = lua.globals().get("names").unwrap();
        let expected = [
            TokenId::CommentMysql,
            TokenId::Ne,
            TokenId::Ne,
            TokenId::Assign,
            TokenId::LogicalAnd,
            TokenId::LogicalOr,
        ];
        assert_eq!(
            ids,
            expected.iter().map(|id| id.number()).collect::<Vec<_>>()
        );
        assert_eq!(
            names,
            expected.iter().map(|id| id.name()).collect::<Vec<_>>()
        );
        assert_eq!(ids[0], 261);
    }

    #[test]
    fn text_is_bytes() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("mysql.tokenizer")
            local t = tokenizer.tokenize("SELECT '\255\0\128' , \200")
            assert(t[2].token_name == "TK_STRING" and t[2].text == "\255\0\128")
            assert(t[4].token_name == "TK_UNKNOWN" and t[4].text == "\200")
            "#,
        );
    }

    #[test]
    fn a_token_can_be_freed_and_kept_tokens_stay_valid() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("mysql.tokenizer")
            local tokens = tokenizer.tokenize("SELECT 1")
            local kept = tokens[1]
            tokens[1] = nil
            assert(tokens[1] == nil and #tokens == 2 and tokens[2].text == "1")
            tokens[1] = nil
            tokens[5] = nil
            tokens[0] = nil
            tokens = nil
            collectgarbage()
            assert(kept.text == "SELECT" and kept.token_name == "TK_SQL_SELECT")
            "#,
        );
    }

    #[test]
    fn bad_arguments_and_keys_raise_errors() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local tokenizer = require("mysql.tokenizer")
            fails(function() tokenizer.tokenize() end,
                "bad argument #1 to 'tokenize' (string expected, got no value)")
            fails(function() tokenizer.tokenize({}) end,
                "bad argument #1 to 'tokenize' (string expected, got table)")
            local tokens = tokenizer.tokenize("SELECT 1")
            fails(function() return tokens.len end,
                "bad argument #2 to '?' (number expected, got string)")
            fails(function() return tokens[{}] end,
                "bad argument #2 to '?' (number expected, got table)")
            fails(function() tokens[1] = 1 end,
                "bad argument #3 to '?' (nil expected, got number)")
            fails(function() tokens.x = nil end,
                "bad argument #2 to '?' (number expected, got string)")
            fails(function() return tokens[1].value end, "tokens[...] has no value field")
            fails(function() return tokens[1][1] end, "tokens[...] has no 1 field")
            fails(function() return tokens[1][true] end,
                "bad argument #2 to '?' (string expected, got boolean)")
            local ok, err = pcall(function() tokens[1].text = "x" end)
            assert(not ok and err:find("attempt to index"), err)
            assert(not pcall(ipairs, tokens))
            "#,
        );
    }

    #[test]
    fn only_tokenize_is_exported() {
        let lua = lua();
        exec(
            &lua,
            r#"
            local names = {}
            for name in pairs(require("mysql.tokenizer")) do
                if not name:match("^_") then names[#names + 1] = name end
            end
            assert(#names == 1 and names[1] == "tokenize", table.concat(names, ","))
            "#,
        );
    }
}
