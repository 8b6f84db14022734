-- proxy.parser: which tables a query reads and writes, found in its tokens,
-- with the API of MySQL Proxy 0.8's library module of that name (used to
-- route queries and to invalidate caches by table). (Written for
-- mysql-proxy; embedded in the Lua plugin, see plugins/lua/src/library.rs.)
--
-- Table names are qualified with the connection's default database
-- (`proxy.connection.client.default_db`) when they name none and one is
-- known.

local M = {}

-- The connection's default database, nil when there is none (or no
-- connection).
local function default_db()
	local connection = proxy and proxy.connection
	local client = connection and connection.client
	local db = client and client.default_db
	if db ~= nil and db ~= "" then
		return db
	end
	return nil
end

--- tablename_expand(name [, db]): `name` qualified as `<db>.<name>`, with
-- the connection's default database when `db` is not given; `name` itself
-- when there is no database.
function M.tablename_expand(name, db)
	if db == nil then
		db = default_db()
	end
	if db ~= nil and db ~= "" then
		return db .. "." .. name
	end
	return name
end

-- Tokens skipped between the verb and the table of INSERT / REPLACE.
local INSERT_MODIFIERS = {
	TK_SQL_LOW_PRIORITY = true,
	TK_SQL_DELAYED = true,
	TK_SQL_HIGH_PRIORITY = true,
	TK_SQL_IGNORE = true,
	TK_SQL_INTO = true,
}

-- Words (upper-cased) between CREATE / DROP / ALTER / RENAME and TABLE.
local DDL_MODIFIERS = {
	TEMPORARY = true,
	ONLINE = true,
	OFFLINE = true,
	IGNORE = true,
	OR = true,
	REPLACE = true,
}

-- Keywords that end a list of tables (FROM ..., JOIN ..., UPDATE ...).
local LIST_ENDS = {
	TK_SQL_WHERE = true,
	TK_SQL_GROUP = true,
	TK_SQL_HAVING = true,
	TK_SQL_ORDER = true,
	TK_SQL_LIMIT = true,
	TK_SQL_UNION = true,
	TK_SQL_SET = true,
	TK_SQL_FOR = true,
	TK_SQL_LOCK = true,
	TK_SQL_PROCEDURE = true,
	TK_SQL_INTO = true,
}

-- Keywords after a table name that start a join condition or an alias:
-- no table name follows them.
local NOT_A_NAME_NEXT = {
	TK_SQL_ON = true,
	TK_SQL_USING = true,
	TK_SQL_AS = true,
}

--- get_tables(tokens): the tables the query's first statement uses, as a
-- map from the qualified name (`db.table`) to "read" or "write":
--
-- * SELECT: the tables of its FROM clause and joins, read (subqueries and
--   derived tables included, wherever they are);
-- * DELETE: the tables it deletes from (and those listed before FROM),
--   written; those of a USING clause and of subqueries, read;
-- * INSERT / REPLACE: the table inserted into, written (an INSERT ...
--   SELECT's tables read);
-- * UPDATE: its tables, written;
-- * CREATE / DROP / ALTER / RENAME TABLE: the tables named, written
--   (CREATE TABLE ... SELECT's, and CREATE TABLE ... LIKE's source, read).
--
-- A table both read and written is "write". Other statements give the
-- tables of the SELECTs they contain, if any. 0.8 covered only the simple
-- forms of these (and not REPLACE); a query that confused it gave fewer
-- tables, never others.
function M.get_tables(tokens)
	local db = default_db()

	-- The tokens that matter: comments dropped.
	local list = {}
	for i = 1, #tokens do
		local token = tokens[i]
		local kind = token.token_name
		if kind ~= "TK_COMMENT" and kind ~= "TK_COMMENT_MYSQL" then
			list[#list + 1] = { kind = kind, text = token.text }
		end
	end

	local tables = {}
	local function note(name, access)
		if tables[name] ~= "write" then
			tables[name] = access
		end
	end

	-- The table named at list[i] (`t`, or `db.t` where `t` may be a
	-- keyword), qualified, and the index after it; nil and i if none.
	local function table_name(i)
		local first = list[i]
		if first == nil or first.kind ~= "TK_LITERAL" then
			return nil, i
		end
		local dot, second = list[i + 1], list[i + 2]
		if dot and dot.kind == "TK_DOT" and second
			and (second.kind == "TK_LITERAL" or second.kind:sub(1, 7) == "TK_SQL_") then
			return first.text .. "." .. second.text, i + 3
		end
		if db then
			return db .. "." .. first.text, i + 1
		end
		return first.text, i + 1
	end

	local function is(i, kind)
		return list[i] ~= nil and list[i].kind == kind
	end

	local verb = list[1] and list[1].kind
	-- One state per level of parentheses: whether a SELECT (or the DELETE
	-- at the top) makes FROM introduce tables here, whether a list of
	-- tables is being read, whether a name is expected next, and how the
	-- tables listed are used.
	local top = { select = false, listing = false, expect = false, access = "read" }
	local levels = { top }
	local i = 2

	if verb == "TK_SQL_SELECT" then
		top.select = true
	elseif verb == "TK_SQL_DELETE" then
		while is(i, "TK_SQL_LOW_PRIORITY") or is(i, "TK_SQL_IGNORE")
			or (is(i, "TK_LITERAL") and list[i].text:upper() == "QUICK") do
			i = i + 1
		end
		top.select, top.delete = true, true
		top.listing, top.expect, top.access = true, true, "write"
	elseif verb == "TK_SQL_INSERT" or verb == "TK_SQL_REPLACE" then
		while list[i] and INSERT_MODIFIERS[list[i].kind] do
			i = i + 1
		end
		local name
		name, i = table_name(i)
		if name then
			note(name, "write")
		end
	elseif verb == "TK_SQL_UPDATE" then
		top.listing, top.expect, top.access = true, true, "write"
	elseif verb == "TK_SQL_CREATE" or verb == "TK_SQL_DROP"
		or verb == "TK_SQL_ALTER" or verb == "TK_SQL_RENAME" then
		while list[i] and DDL_MODIFIERS[list[i].text:upper()] do
			i = i + 1
		end
		if not is(i, "TK_SQL_TABLE") then
			return tables
		end
		i = i + 1
		while is(i, "TK_SQL_IF") or is(i, "TK_SQL_NOT") or is(i, "TK_SQL_EXISTS") do
			i = i + 1
		end
		repeat
			local name
			name, i = table_name(i)
			if name == nil then
				break
			end
			note(name, "write")
			local more = (verb == "TK_SQL_DROP" and is(i, "TK_COMMA"))
				or (verb == "TK_SQL_RENAME" and (is(i, "TK_COMMA") or is(i, "TK_SQL_TO")))
			if more then
				i = i + 1
			end
		until not more
		if verb == "TK_SQL_CREATE" and is(i, "TK_SQL_LIKE") then
			local name = table_name(i + 1)
			if name then
				note(name, "read")
			end
		end
		if verb ~= "TK_SQL_CREATE" then
			return tables
		end
	else
		i = 1
	end

	-- The rest of the statement: FROM lists, joins and subqueries.
	while i <= #list do
		local token = list[i]
		local kind = token.kind
		local level = levels[#levels]
		if kind == "TK_SEMICOLON" then
			break
		elseif kind == "TK_OBRACE" then
			-- A subquery or derived table takes the place of a name.
			level.expect = false
			levels[#levels + 1] = { select = false, listing = false, expect = false, access = "read" }
			i = i + 1
		elseif kind == "TK_CBRACE" then
			if #levels > 1 then
				levels[#levels] = nil
			end
			i = i + 1
		elseif kind == "TK_SQL_SELECT" then
			level.select, level.listing, level.expect = true, false, false
			i = i + 1
		elseif kind == "TK_SQL_FROM" and level.select then
			level.listing, level.expect = true, true
			level.access = level.delete and "write" or "read"
			i = i + 1
		elseif kind == "TK_SQL_USING" and level.delete and level.listing and not is(i + 1, "TK_OBRACE") then
			-- DELETE FROM t1 USING t1 JOIN t2 ...: the tables read.
			level.expect, level.access = true, "read"
			i = i + 1
		elseif kind == "TK_COMMA" or kind == "TK_SQL_JOIN" or kind == "TK_SQL_STRAIGHT_JOIN" then
			if level.listing then
				level.expect = true
			end
			i = i + 1
		elseif LIST_ENDS[kind] then
			level.listing, level.expect = false, false
			i = i + 1
		elseif kind == "TK_LITERAL" and level.listing and level.expect then
			local name
			name, i = table_name(i)
			note(name, level.access)
			level.expect = false
		else
			if NOT_A_NAME_NEXT[kind] then
				level.expect = false
			end
			i = i + 1
		end
	end
	return tables
end

return M
