-- proxy.tokenizer: helpers over the SQL tokenizer of `mysql.tokenizer`, with
-- the API of MySQL Proxy 0.8's library module of that name: `tokenize`,
-- the query fingerprint `normalize`, and small utilities that pick tokens
-- or turn them back into text. (Written for mysql-proxy; embedded in the
-- Lua plugin, see plugins/lua/src/library.rs.)
--
-- A token list is what `tokenize` returns (a userdata: `#tokens`,
-- `tokens[i]`) or an array of tables with the same `token_name` and `text`
-- fields; every function here takes either. A freed token (`tokens[i] =
-- nil`) is an error, as it was in 0.8.

-- The loader passes the plugin's built-in helpers after the module name.
local _, builtin = ...
if type(builtin) ~= "table" or type(builtin.normalize) ~= "function" then
	error("proxy.tokenizer needs the built-in helpers of mysql-proxy's Lua plugin: load it with require", 2)
end

local mysql_tokenizer = require("mysql.tokenizer")

local M = {}

--- tokenize(sql): the token list of `mysql.tokenizer`.
M.tokenize = mysql_tokenizer.tokenize

--- normalize(tokens): the query's fingerprint, for grouping queries that
-- differ only in their values: comments dropped, `/*!...*/` kept as
-- written, constants turned into `?`, names back-quoted, the rest
-- upper-cased, each token followed by a space (a function name by its
-- `(`): `select count(*) from mysql.user` gives
-- "SELECT COUNT( * ) FROM `mysql` . `user` ". Computed by the plugin's
-- Rust tokenizer (plugins/lua/src/tokenizer.rs, `normalize`).
M.normalize = builtin.normalize

--- first_stmt_token(tokens): the first token that is not a comment (a
-- `/*!...*/` comment counts as a token), or nil.
function M.first_stmt_token(tokens)
	for i = 1, #tokens do
		local token = tokens[i]
		if token.token_name ~= "TK_COMMENT" then
			return token
		end
	end
	return nil
end

--- bare_tokens(tokens, quote_strings): the texts of the tokens that are
-- not comments, in an array; with `quote_strings`, the text of each string
-- constant is quoted with `%q`.
function M.bare_tokens(tokens, quote_strings)
	local texts = {}
	for i = 1, #tokens do
		local token = tokens[i]
		local kind = token.token_name
		if kind == "TK_STRING" and quote_strings then
			texts[#texts + 1] = string.format("%q", token.text)
		elseif kind ~= "TK_COMMENT" then
			texts[#texts + 1] = token.text
		end
	end
	return texts
end

--- tokens_to_query(tokens [, first [, last]]): the tokens from `first`
-- (default 1) to `last` (default the last) as query text: comments
-- dropped, string constants quoted with `%q`, each token followed by a
-- space but a function name (its `(` follows).
--
-- 0.8 put a `/*!...*/` comment's inner text into the query bare, which
-- changed its meaning; here it keeps its markers.
function M.tokens_to_query(tokens, first, last)
	local count = #tokens
	first = math.max(first or 1, 1)
	last = math.min(last or count, count)
	local parts = {}
	for i = first, last do
		local token = tokens[i]
		local kind = token.token_name
		if kind == "TK_STRING" then
			parts[#parts + 1] = string.format("%q", token.text) .. " "
		elseif kind == "TK_COMMENT_MYSQL" then
			parts[#parts + 1] = "/*!" .. token.text .. "*/ "
		elseif kind == "TK_FUNCTION" then
			parts[#parts + 1] = token.text
		elseif kind ~= "TK_COMMENT" then
			parts[#parts + 1] = token.text .. " "
		end
	end
	return table.concat(parts)
end

--- tokens_without_comments(tokens): the texts of the tokens that are not
-- comments, in an array.
function M.tokens_without_comments(tokens)
	return M.bare_tokens(tokens, false)
end

return M
