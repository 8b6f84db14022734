--[[
mock-server.lua: a MySQL server made of a table of answers, no backend

What it does
  The proxy answers every client itself and never connects to a backend:
  - the greeting is the script's own (mysql.proto.to_challenge_packet: a
    MySQL 5.7-style server, mysql_native_password);
  - the login is accepted (or checked against `users`, when set);
  - each query is answered from `responses` (below), then from `patterns`,
    then by the built-in answers, else with
      ERROR 1235 (42000): (mock-server) no answer for: <query>
  - COM_INIT_DB, COM_PING and USE are answered OK, COM_STATISTICS with a
    status line, COM_FIELD_LIST with no columns, other commands (prepared
    statements, ...) with ERROR 1047 (08S01).

  Built-in answers, for clients such as the mariadb command-line client:
  - SELECT of a list of system variables (@@version_comment,
    @@max_allowed_packet, @@session.autocommit, ...; see `variables`),
    functions (DATABASE(), USER(), CURRENT_USER(), CONNECTION_ID(),
    VERSION(), NOW()), numbers, strings and NULL, each with an optional
    alias, and an optional LIMIT: `select @@version_comment limit 1`;
  - SET ..., BEGIN, START TRANSACTION, COMMIT, ROLLBACK: OK;
  - SHOW DATABASES, SHOW TABLES (the databases and tables of `tables`),
    SHOW WARNINGS (empty), SELECT * FROM <table of `tables`>.

  Queries are matched in `responses` by their text in lower case, with
  runs of blanks as one space and no ; or blanks at the end. An answer is
  a table:
    { fields = { "a", "b" }, rows = { { 1, "x" }, { 2, nil } } }   a result set
        (a field may also be { name = "a", type = proxy.MYSQL_TYPE_LONG };
        numbers are sent as their text, nil as NULL)
    { affected_rows = 1, insert_id = 7 }                           an OK
    { error = "message", errcode = 1146, sqlstate = "42S02" }      an ERR
  or a function(query, session) returning one, where `query` is the text as
  sent and `session` the connection's { user, db, thread_id }.

Use
  mysql-proxy --proxy-address=127.0.0.1:4040 \
      --proxy-lua-script=/path/to/etc/lua/mock-server.lua
  mariadb -h127.0.0.1 -P4040 -uroot -e 'select * from mock.users'

  (--proxy-backend-addresses is not needed: the default backend is never
  connected to; with --health-check-interval=0 nothing probes it either.)

Options (proxy.global.config.mock_server.<name>, set by a script that runs
before this one, else the environment variable, else the default)
  responses_file  MYSQL_PROXY_MOCK_RESPONSES   a Lua file returning a table
                  { responses = {...}, patterns = {...}, tables = {...},
                  users = {...} }, merged over (and preferred to) this
                  file's; read again by each new connection
  server_version  MYSQL_PROXY_MOCK_SERVER_VERSION
                  the server's version, as a number:
                  major * 10000 + minor * 100 + patch (default 50725: the
                  greeting and @@version say 5.7.25-mock)
]]

local proto = require("mysql.proto")
local tokenizer = require("mysql.tokenizer")
local password = require("mysql.password")

-- Answers by query text (lower case, blanks collapsed, no trailing ;).
local responses = {
	["select 'hello'"] = { fields = { "hello" }, rows = { { "world" } } },
	["drop database mock"] = { error = "the mock database cannot be dropped", errcode = 1008, sqlstate = "HY000" },
}

-- Answers by Lua pattern over the same text, in order: { pattern, answer }.
local patterns = {
	{ "^insert into ", { affected_rows = 1, insert_id = 1 } },
	{ "^update ", { affected_rows = 1 } },
	{ "^delete ", { affected_rows = 1 } },
}

-- The tables of SHOW DATABASES / SHOW TABLES / SELECT * FROM:
-- database -> table -> result set.
local tables = {
	mock = {
		users = {
			fields = { { name = "id", type = proxy.MYSQL_TYPE_LONG }, "name" },
			rows = { { 1, "alice" }, { 2, "bob" } },
		},
	},
}

-- Users and passwords the login is checked against (nil: anyone gets in).
-- e.g. users = { root = "", app = "secret" }
local users = nil

-- System variables for SELECT @@name (without session./global.).
local variables = {
	version_comment = "mysql-proxy mock-server",
	max_allowed_packet = 16777216,
	autocommit = 1,
	sql_mode = "",
	character_set_client = "utf8",
	character_set_connection = "utf8",
	character_set_results = "utf8",
	character_set_server = "utf8",
	collation_connection = "utf8_general_ci",
	tx_isolation = "REPEATABLE-READ",
	transaction_isolation = "REPEATABLE-READ",
	tx_read_only = 0,
	transaction_read_only = 0,
	wait_timeout = 28800,
	interactive_timeout = 28800,
	lower_case_table_names = 0,
	time_zone = "SYSTEM",
	system_time_zone = "UTC",
	net_write_timeout = 60,
	license = "GPL",
	hostname = "mock",
	port = 3306,
	socket = "",
}

local defaults = { responses_file = nil, server_version = 50725 }
local environment = {
	responses_file = "MYSQL_PROXY_MOCK_RESPONSES",
	server_version = "MYSQL_PROXY_MOCK_SERVER_VERSION",
}
proxy.global.config.mock_server = proxy.global.config.mock_server or {}
local function option(name)
	local value = proxy.global.config.mock_server[name]
	if value == nil then
		value = os.getenv(environment[name])
	end
	if value == nil then
		return defaults[name]
	end
	if name == "server_version" then
		return tonumber(value) or defaults.server_version
	end
	return value
end

-- The responses file's tables, over this file's.
if option("responses_file") then
	local extra = assert(dofile(option("responses_file")), "the responses file returned nothing")
	for key, answer in pairs(extra.responses or {}) do
		responses[key:lower()] = answer
	end
	local merged = {}
	for _, entry in ipairs(extra.patterns or {}) do
		merged[#merged + 1] = entry
	end
	for _, entry in ipairs(patterns) do
		merged[#merged + 1] = entry
	end
	patterns = merged
	for db, list in pairs(extra.tables or {}) do
		tables[db] = tables[db] or {}
		for name, answer in pairs(list) do
			tables[db][name] = answer
		end
	end
	if extra.users then
		users = extra.users
	end
end

local CLIENT_LONG_PASSWORD, CLIENT_FOUND_ROWS, CLIENT_LONG_FLAG = 1, 2, 4
local CLIENT_CONNECT_WITH_DB, CLIENT_PROTOCOL_41, CLIENT_TRANSACTIONS = 8, 512, 8192
local CLIENT_SECURE_CONNECTION, CLIENT_MULTI_RESULTS = 32768, 131072
local SERVER_STATUS_AUTOCOMMIT = 2

-- This connection.
local session = { user = "", db = "", thread_id = 0 }
local challenge = ""
local version_text = ""

if not proxy.global.mock_server then
	proxy.global.mock_server = { thread_id = 0, started = os.time() }
	math.randomseed(os.time())
end

---------------------------------------------------------------------------
-- Answers

local function ok(affected_rows, insert_id)
	return { type = proxy.MYSQLD_PACKET_OK, affected_rows = affected_rows or 0, insert_id = insert_id or 0 }
end

local function err(errcode, sqlstate, message)
	return { type = proxy.MYSQLD_PACKET_ERR, errcode = errcode, sqlstate = sqlstate, errmsg = message }
end

-- A result set answer: field names or field tables, rows of values.
local function result_set(fields, rows)
	local out_fields = {}
	for i, field in ipairs(fields) do
		if type(field) == "table" then
			out_fields[i] = { name = field.name, type = field.type or proxy.MYSQL_TYPE_STRING }
		else
			local kind = proxy.MYSQL_TYPE_STRING
			local first = rows[1] and rows[1][i]
			if type(first) == "number" then
				kind = first % 1 == 0 and proxy.MYSQL_TYPE_LONGLONG or proxy.MYSQL_TYPE_DOUBLE
			end
			out_fields[i] = { name = tostring(field), type = kind }
		end
	end
	return { type = proxy.MYSQLD_PACKET_OK, resultset = { fields = out_fields, rows = rows } }
end

-- An answer of `responses`/`patterns`/`tables` as a proxy.response.
local function response(answer, query)
	if type(answer) == "function" then
		answer = answer(query, session)
	end
	if type(answer) ~= "table" then
		return err(1105, "HY000", "(mock-server) the answer for this query is not a table")
	end
	if answer.error then
		return err(answer.errcode or 1105, answer.sqlstate or "HY000", answer.error)
	elseif answer.fields then
		return result_set(answer.fields, answer.rows or {})
	end
	return ok(answer.affected_rows, answer.insert_id)
end

local function variable(name)
	name = name:lower():gsub("^global%.", ""):gsub("^session%.", ""):gsub("^local%.", "")
	if name == "version" then
		return true, version_text
	end
	local value = variables[name]
	return value ~= nil, value
end

local FUNCTIONS = {
	DATABASE = function() return session.db ~= "" and session.db or nil end,
	SCHEMA = function() return session.db ~= "" and session.db or nil end,
	USER = function() return session.user .. "@localhost" end,
	CURRENT_USER = function() return session.user .. "@%" end,
	SESSION_USER = function() return session.user .. "@localhost" end,
	SYSTEM_USER = function() return session.user .. "@localhost" end,
	CONNECTION_ID = function() return session.thread_id end,
	VERSION = function() return version_text end,
	NOW = function() return os.date("%Y-%m-%d %H:%M:%S") end,
}

-- SELECT of variables, functions and constants: the answer, or nil when the
-- query is not of that form.
local function select_constants(query)
	local tokens = tokenizer.tokenize(query)
	local t = {}
	for i = 1, #tokens do
		local token = tokens[i]
		if token.token_name ~= "TK_COMMENT" then
			t[#t + 1] = { name = token.token_name, text = token.text }
		end
	end
	if not t[1] or t[1].name ~= "TK_SQL_SELECT" then
		return nil
	end
	local fields, row = {}, {}
	local i = 2
	while true do
		local token = t[i]
		if not token then
			return nil
		end
		local name, value, ok_item
		if token.name == "TK_LITERAL" and token.text:sub(1, 2) == "@@" then
			local var = token.text:sub(3)
			name = token.text
			if t[i + 1] and t[i + 1].name == "TK_DOT" and t[i + 2] then
				var = var .. "." .. t[i + 2].text
				name = name .. "." .. t[i + 2].text
				i = i + 2
			end
			local known
			known, value = variable(var)
			if not known then
				return err(1193, "HY000", "Unknown system variable '" .. var .. "'")
			end
			ok_item = true
			i = i + 1
		elseif token.name == "TK_FUNCTION" and t[i + 1] and t[i + 1].name == "TK_OBRACE"
			and t[i + 2] and t[i + 2].name == "TK_CBRACE" then
			local fn = FUNCTIONS[token.text:upper()]
			if not fn then
				return nil
			end
			name, value, ok_item = token.text .. "()", fn(), true
			i = i + 3
		else
			local sign = ""
			if token.name == "TK_MINUS" and t[i + 1] then
				sign, i = "-", i + 1
				token = t[i]
			end
			if token.name == "TK_INTEGER" or token.name == "TK_FLOAT" then
				name, value, ok_item = sign .. token.text, tonumber(sign .. token.text), true
			elseif token.name == "TK_STRING" and sign == "" then
				name, value, ok_item = token.text, token.text, true
			elseif token.name == "TK_SQL_NULL" and sign == "" then
				name, value, ok_item = "NULL", nil, true
			end
			i = i + 1
		end
		if not ok_item then
			return nil
		end
		-- [AS] alias
		if t[i] and t[i].name == "TK_SQL_AS" then
			i = i + 1
		end
		if t[i] and (t[i].name == "TK_LITERAL" or t[i].name == "TK_STRING") and t[i].text:sub(1, 1) ~= "@" then
			name = t[i].text
			i = i + 1
		end
		fields[#fields + 1] = name
		row[#fields] = value
		if t[i] and t[i].name == "TK_COMMA" then
			i = i + 1
		else
			break
		end
	end
	local limit = nil
	if t[i] and t[i].name == "TK_SQL_LIMIT" and t[i + 1] and t[i + 1].name == "TK_INTEGER" then
		limit = tonumber(t[i + 1].text)
		i = i + 2
	end
	if t[i] and t[i].name == "TK_SEMICOLON" then
		i = i + 1
	end
	if t[i] then
		return nil
	end
	local rows = { row }
	if limit == 0 then
		rows = {}
	end
	-- Types from the values; a NULL column is a string one.
	local out = {}
	for k, field in ipairs(fields) do
		local kind = proxy.MYSQL_TYPE_STRING
		if type(row[k]) == "number" then
			kind = row[k] % 1 == 0 and proxy.MYSQL_TYPE_LONGLONG or proxy.MYSQL_TYPE_DOUBLE
		end
		out[k] = { name = field, type = kind }
	end
	return result_set(out, rows)
end

-- The built-in answers for a normalized query (nil: none).
local function builtin(key, query)
	local first = key:match("^(%a+)")
	if first == "set" or key == "begin" or key == "commit" or key == "rollback"
		or key:match("^start transaction") then
		return ok()
	elseif first == "use" then
		local db = query:match("^%s*[Uu][Ss][Ee]%s+`?([^`;%s]+)`?")
		if db and tables[db] then
			session.db = db
			return ok()
		end
		return err(1049, "42000", "Unknown database '" .. tostring(db) .. "'")
	elseif key == "show databases" then
		local rows = { { "information_schema" } }
		for db in pairs(tables) do
			rows[#rows + 1] = { db }
		end
		table.sort(rows, function(a, b) return a[1] < b[1] end)
		return result_set({ "Database" }, rows)
	elseif key == "show tables" then
		if session.db == "" then
			return err(1046, "3D000", "No database selected")
		end
		local rows = {}
		for name in pairs(tables[session.db] or {}) do
			rows[#rows + 1] = { name }
		end
		table.sort(rows, function(a, b) return a[1] < b[1] end)
		return result_set({ "Tables_in_" .. session.db }, rows)
	elseif key == "show warnings" or key == "show errors" then
		return result_set({ "Level", "Code", "Message" }, {})
	end
	local db, name = key:match("^select %* from `?([%w_$]+)`?%.`?([%w_$]+)`?$")
	if not db then
		db, name = session.db, key:match("^select %* from `?([%w_$]+)`?$")
	end
	if name then
		local answer = tables[db] and tables[db][name]
		if answer then
			return response(answer, query)
		end
		return err(1146, "42S02", string.format("Table '%s.%s' doesn't exist", db, name))
	end
	return select_constants(query)
end

---------------------------------------------------------------------------
-- Hooks

function connect_server()
	local shared = proxy.global.mock_server
	shared.thread_id = shared.thread_id + 1
	session.thread_id = shared.thread_id
	-- A challenge of 20 printable bytes (no NUL: it ends the second part).
	local bytes = {}
	for i = 1, 20 do
		bytes[i] = string.char(math.random(33, 126))
	end
	challenge = table.concat(bytes)
	local greeting = proto.to_challenge_packet({
		server_version = option("server_version"),
		thread_id = session.thread_id,
		capabilities = CLIENT_LONG_PASSWORD + CLIENT_FOUND_ROWS + CLIENT_LONG_FLAG
			+ CLIENT_CONNECT_WITH_DB + CLIENT_PROTOCOL_41 + CLIENT_TRANSACTIONS
			+ CLIENT_SECURE_CONNECTION + CLIENT_MULTI_RESULTS,
		charset = 33, -- utf8_general_ci
		server_status = SERVER_STATUS_AUTOCOMMIT,
		challenge = challenge,
	})
	-- to_challenge_packet writes the version as %d.%02d.%02d (5.07.25):
	-- the greeting gets the usual form instead, with a suffix.
	local v = option("server_version")
	version_text = string.format("%d.%d.%d-mock", math.floor(v / 10000), math.floor(v / 100) % 100, v % 100)
	greeting = greeting:sub(1, 1) .. version_text .. "\0" .. greeting:match("^.[^%z]*%z(.*)$")
	proxy.response = { type = proxy.MYSQLD_PACKET_RAW, packets = { greeting } }
	return proxy.PROXY_SEND_RESULT
end

function read_auth()
	local client = proxy.connection.client
	session.user = client.username or ""
	session.db = client.default_db or ""
	if users then
		local expected = users[session.user]
		local given = client.scrambled_password or ""
		local accepted
		if expected == nil then
			accepted = false
		elseif expected == "" then
			accepted = given == ""
		else
			accepted = #given == 20
				and password.check(challenge, given, password.hash(password.hash(expected)))
		end
		if not accepted then
			proxy.response = err(1045, "28000", string.format("Access denied for user '%s'@'%s' (using password: %s)",
				session.user, client.src and client.src.address or "localhost", given == "" and "NO" or "YES"))
			return proxy.PROXY_SEND_RESULT
		end
	end
	if session.db ~= "" and not tables[session.db] then
		proxy.response = err(1049, "42000", "Unknown database '" .. session.db .. "'")
		return proxy.PROXY_SEND_RESULT
	end
	proxy.response = ok()
	return proxy.PROXY_SEND_RESULT
end

function read_query(packet)
	local command = packet:byte(1)
	if command == proxy.COM_QUERY then
		local query = packet:sub(2)
		local key = query:lower():gsub("%s+", " "):gsub("^ ", ""):gsub("[ ;]+$", "")
		local answer = responses[key]
		if answer == nil then
			for _, entry in ipairs(patterns) do
				if key:find(entry[1]) then
					answer = entry[2]
					break
				end
			end
		end
		if answer ~= nil then
			proxy.response = response(answer, query)
		else
			proxy.response = builtin(key, query)
				or err(1235, "42000", "(mock-server) no answer for: " .. query)
		end
	elseif command == proxy.COM_INIT_DB then
		local db = packet:sub(2)
		if tables[db] then
			session.db = db
			proxy.response = ok()
		else
			proxy.response = err(1049, "42000", "Unknown database '" .. db .. "'")
		end
	elseif command == proxy.COM_PING then
		proxy.response = ok()
	elseif command == proxy.COM_QUIT then
		-- Nothing to answer: the client is leaving.
		return
	elseif command == proxy.COM_STATISTICS then
		proxy.response = {
			type = proxy.MYSQLD_PACKET_RAW,
			packets = { string.format("Uptime: %d  Threads: 1  Questions: 0  Slow queries: 0  Opens: 0  " ..
				"Open tables: 0  Queries per second avg: 0.000", os.time() - proxy.global.mock_server.started) },
		}
	elseif command == proxy.COM_FIELD_LIST then
		-- No columns: the EOF that ends the list.
		proxy.response = {
			type = proxy.MYSQLD_PACKET_RAW,
			packets = { proto.to_eof_packet({ warnings = 0, server_status = SERVER_STATUS_AUTOCOMMIT }) },
		}
	else
		proxy.response = err(1047, "08S01", "(mock-server) command " .. command .. " is not supported")
	end
	return proxy.PROXY_SEND_RESULT
end
