--[[
rw-splitting.lua: read/write splitting over read/write and read-only backends

What it does
  Each client session holds one server connection at a time and moves
  between the backends from one statement to the next, through the proxy's
  pool of idle connections (proxy.connection.backend_ndx):

  - reads go to a read-only backend (--proxy-read-only-backend-addresses):
    one that is not DOWN, the one with the fewest connected clients among
    those with an idle connection of the session's user. A read is a SELECT
    outside a transaction that is not SELECT ... FOR UPDATE, ... LOCK IN
    SHARE MODE or ... FOR SHARE, not SELECT ... INTO, not several statements
    in one query, does not use LAST_INSERT_ID(), @@insert_id / @@identity,
    SQL_CALC_FOUND_ROWS, FOUND_ROWS(), ROW_COUNT(), the GET_LOCK() family
    or sequences (NEXT VALUE FOR, NEXTVAL()), and does not read or assign
    user variables (@name, :=), which live on the read/write connection;
  - everything else goes to the read/write backend (the first one of
    --proxy-backend-addresses that is not DOWN): writes, SHOW and the other
    statements, BEGIN / START TRANSACTION ... COMMIT / ROLLBACK, and every
    statement of a session with autocommit=0 (the server's status flags are
    read after each statement, so implicit commits count too);
  - USE and SET of session settings (SET NAMES, SET [SESSION] sql_mode = ...,
    ...) run where the session is, and follow it: when the session takes a
    connection that is on another database, or that has not had the
    session's settings, they are sent there first (COM_INIT_DB, then the SET
    statements; the client does not see them, and if one fails the client
    gets its error instead of running its statement in another state);
  - the session stays on the connection it has for as long as it holds
    state there that cannot follow it: an open transaction, autocommit off,
    prepared statements (COM_STMT_PREPARE, prepared on the read/write
    backend, until they are closed), LOCK TABLES (until UNLOCK TABLES) and,
    for the rest of the session, temporary tables, user variables,
    GET_LOCK(), PREPARE and XA statements (reads then go where it is);
  - COM_QUIT is answered by the script, and at the end of the session the
    connection is parked for the user's next sessions (unless it holds a
    transaction, locks, temporary tables or user variables);
  - a write that finds no idle connection of its user to the read/write
    backend gets ERR 1105 (HY000) "(rw-splitting) no idle connection of
    user '...' to the read/write backend ...; try again": it never runs on a
    read-only backend.

  Where the connections come from: a session has the connection its login
  opened, and the idle connections other sessions parked. So the login
  chooses: a client logs in on a read-only backend only while the
  read/write backend has a connection (connected or idle) for every other
  client, so that its writes always find one; it opens a new connection
  there while the backend has fewer than `ro_connections`, and takes an
  idle one after that. Otherwise it logs in on the read/write backend. Just
  after the proxy starts, the first clients therefore all log in on the
  read/write backend and read there too; the read-only connections come as
  clients come and go (a client that leaves parks its connection, and the
  next one can log in on a read-only backend). The counting is per backend,
  not per user, nor per client library (a connection is only handed to a
  session whose client asked for the same connection capabilities): with
  several users or kinds of clients, a write can find no idle connection of
  its own kind, and gets the error above.

Use
  mysql-proxy --proxy-backend-addresses=primary:3306 \
      --proxy-read-only-backend-addresses=replica1:3306 \
      --proxy-read-only-backend-addresses=replica2:3306 \
      --proxy-pool-min-idle=1000 \
      --proxy-lua-script=/path/to/etc/lua/rw-splitting.lua

  The script parks connections and takes them back through the proxy's
  pool of idle connections. Without --proxy-pool-max-idle (the pool off, as
  above) the proxy keeps every connection a script parks, and opens a new
  connection for each login the script sends to a backend: the counting
  above holds exactly. With --proxy-pool-max-idle=N (the pool on) the
  script works as well, but N must be at least the number of clients (a
  connection parked into a full pool is closed), and the proxy hands a
  login an idle connection of the backend where the script asked for a new
  one: with clients coming and going, a write can then find every
  read/write connection in use, and get the error above.
  Either way, idle connections are closed after --proxy-pool-idle-timeout
  (300 s by default) but for --proxy-pool-min-idle of them: make that at
  least the number of clients (or the timeout long), so that the read/write
  connection of a session that reads on a replica for longer stays.

  What does not follow a session from one connection to the other: settings
  it undoes by other means than SET (a COM_RESET_CONNECTION forgets them),
  and the settings another session left on a connection this one takes
  (they are overwritten only where this session set the same ones). Give
  every session of a user the same settings, or keep such sessions on the
  read/write backend (e.g. with a user variable).

Options (proxy.global.config.rwsplit.<name>, set by a script that runs
before this one, else `defaults` below)
  ro_connections  connections a login opens to each read-only backend before
                  logins take idle ones there (default 8)
  debug           write each routing decision to the proxy's stderr
                  (default false)
]]

local tokenizer = require("mysql.tokenizer")

local defaults = {
	ro_connections = 8,
	debug = false,
}

proxy.global.config.rwsplit = proxy.global.config.rwsplit or {}
local function option(name)
	local value = proxy.global.config.rwsplit[name]
	if value == nil then
		return defaults[name]
	end
	return value
end

-- State shared by every session (proxy.global is the same for all):
--   sessions: sessions between connect_server and disconnect_client;
--   conns:    what the script knows of server connections that the proxy
--             does not, by "backend#thread_id": { host_db, db, sig }
--             - host_db: the proxy's server.default_db for the connection
--               when the entry was made; the entry holds while it stays so;
--             - db: the connection's database (nil: the proxy's is right;
--               false: unknown), as COM_INIT_DB and USE sent by the script
--               are not followed by the proxy;
--             - sig: the session settings applied to it (see `signature`);
--   nconns:   entries in conns; past MAX_CONNS it is emptied, and
--   distrust: set, so that every connection taken gets a COM_INIT_DB.
local MAX_CONNS = 10000
if not proxy.global.rwsplit then
	proxy.global.rwsplit = { sessions = 0, conns = {}, nconns = 0, distrust = false }
end
local shared = proxy.global.rwsplit

-- This session's state (a script's top-level locals are the connection's).
local counted = false      -- counted in shared.sessions
local in_trans = false     -- the server says a transaction is open
local autocommit = true    -- the server says autocommit is on
local sticky = false       -- state on the connection for good
local locked = false       -- LOCK TABLES in effect
local open_stmts = 0       -- prepared statements open on the connection
local frozen = false       -- after COM_CHANGE_USER the proxy cannot swap
local client_db = nil      -- the client's default database (nil: not read yet)
local settings = {}        -- SET statements of session settings, in order:
                           -- { text, names = { variable = true } }
local signature = ""       -- their texts, one per line
local pending = {}         -- what read_query_result needs, by injection id

local ID_QUERY, ID_INIT_DB, ID_PREPARE, ID_CLIENT_INIT_DB, ID_SETTING = 1, 2, 3, 4, 5

local function debug(...)
	if option("debug") then
		local src = proxy.connection.client.src
		io.stderr:write("[rw-splitting] ", src and src.name or "?", ": ", table.concat({ ... }, " "), "\n")
	end
end

---------------------------------------------------------------------------
-- Backends

local function is_up(backend)
	return backend.state ~= proxy.BACKEND_STATE_DOWN
end

-- Idle connections of the backend (the proxy counts every user's).
local function idle(backend, user)
	return backend.pool.users[user or ""].cur_idle_connections
end

-- The read/write backend: the first that is not DOWN.
local function rw_backend()
	local backends = proxy.global.backends
	for i = 1, #backends do
		local b = backends[i]
		if b.type == proxy.BACKEND_TYPE_RW and is_up(b) then
			return i, b
		end
	end
end

-- The read-only backends that are not DOWN, fewest connected clients first.
local function ro_backends()
	local list = {}
	local backends = proxy.global.backends
	for i = 1, #backends do
		local b = backends[i]
		if b.type == proxy.BACKEND_TYPE_RO and is_up(b) then
			list[#list + 1] = { ndx = i, clients = b.connected_clients, backend = b }
		end
	end
	table.sort(list, function(a, b)
		if a.clients ~= b.clients then
			return a.clients < b.clients
		end
		return a.ndx < b.ndx
	end)
	return list
end

-- The backend of the session's server connection (nil without one), and
-- the connection's socket object. (proxy.connection.backend_ndx says the
-- backend last asked for, even when no connection could be taken there, so
-- the connection's own address decides.)
local function current_backend()
	local server = proxy.connection.server
	if not server or not server.dst then
		return nil, server
	end
	local name = server.dst.name
	local backends = proxy.global.backends
	for i = 1, #backends do
		if backends[i].dst.name == name then
			return i, server
		end
	end
	return nil, server
end

---------------------------------------------------------------------------
-- What the script knows of server connections

local function connection_key(server)
	return server.dst.name .. "#" .. tostring(server.thread_id)
end

-- The connection's entry, if it still holds.
local function entry_of(server)
	local key = connection_key(server)
	local entry = shared.conns[key]
	if entry and entry.host_db ~= server.default_db then
		shared.conns[key] = nil
		shared.nconns = shared.nconns - 1
		return nil
	end
	return entry
end

-- Records `fields` (db, sig) of a connection.
local function remember(server, fields)
	local entry = entry_of(server)
	if not entry then
		shared.nconns = shared.nconns + 1
		if shared.nconns > MAX_CONNS then
			shared.conns, shared.nconns, shared.distrust = {}, 1, true
		end
		entry = { host_db = server.default_db, sig = "" }
		shared.conns[connection_key(server)] = entry
	end
	for name, value in pairs(fields) do
		entry[name] = value
	end
end

-- The connection was just logged in on (or reset): the proxy knows it.
local function forget(server)
	if entry_of(server) then
		shared.conns[connection_key(server)] = nil
		shared.nconns = shared.nconns - 1
	end
end

-- The database the connection is on (false: unknown).
local function connection_db(server)
	local entry = entry_of(server)
	if entry and entry.db ~= nil then
		return entry.db
	end
	if shared.distrust then
		return false
	end
	return server.default_db
end

-- The settings the connection has had.
local function connection_sig(server)
	local entry = entry_of(server)
	return entry and entry.sig or ""
end

---------------------------------------------------------------------------
-- Moving the session's connection

-- Takes an idle connection of the session's user to backend `ndx` (the
-- current one is parked); whether the session is on `ndx` now.
local function take(ndx)
	proxy.connection.backend_ndx = ndx
	return current_backend() == ndx
end

-- Whether the session must keep the connection it has.
local function must_stay()
	return frozen or in_trans or not autocommit or sticky or locked or open_stmts > 0
end

-- Puts the session on the read/write backend; nil and a message if it
-- cannot.
local function to_rw()
	local current = current_backend()
	if current and proxy.global.backends[current].type == proxy.BACKEND_TYPE_RW then
		return true
	end
	local rw = rw_backend()
	if not rw then
		return nil, "(rw-splitting) every read/write backend is down"
	end
	if frozen or not take(rw) then
		return nil, string.format("(rw-splitting) no idle connection of user '%s' to the read/write " ..
			"backend %s; try again", proxy.connection.client.username or "",
			proxy.global.backends[rw].dst.name)
	end
	debug("to the read/write backend", rw)
	return true
end

-- Puts the session on a read-only backend if it can; else it stays where
-- it is (a read can be answered anywhere).
local function to_ro()
	local current = current_backend()
	if frozen or (current and proxy.global.backends[current].type == proxy.BACKEND_TYPE_RO
		and is_up(proxy.global.backends[current])) then
		return
	end
	local user = proxy.connection.client.username
	for _, candidate in ipairs(ro_backends()) do
		if idle(candidate.backend, user) > 0 and take(candidate.ndx) then
			debug("to the read-only backend", candidate.ndx)
			return
		end
	end
end

---------------------------------------------------------------------------
-- What a statement is

-- Functions whose result depends on the connection, or that change the
-- server's state.
local CONNECTION_FUNCTIONS = {
	LAST_INSERT_ID = true, FOUND_ROWS = true, ROW_COUNT = true,
	GET_LOCK = true, RELEASE_LOCK = true, RELEASE_ALL_LOCKS = true,
	IS_FREE_LOCK = true, IS_USED_LOCK = true,
	NEXTVAL = true, LASTVAL = true, SETVAL = true,
	MASTER_POS_WAIT = true, MASTER_GTID_WAIT = true,
}
-- System variables of the connection's last insert.
local INSERT_ID_VARIABLES = { insert_id = true, identity = true, last_insert_id = true }
-- SET statements that are not session settings.
local NOT_SETTINGS = {
	autocommit = true, password = true, role = true, default = true, statement = true,
	global = true, ["@@global"] = true,
}

-- The tokens of a statement without comments, as { name, text }.
local function significant_tokens(query)
	local tokens = tokenizer.tokenize(query)
	local list = {}
	for i = 1, #tokens do
		local token = tokens[i]
		local name = token.token_name
		if name ~= "TK_COMMENT" then
			list[#list + 1] = { name = name, text = token.text }
		end
	end
	return list
end

local function word(token)
	return token and token.name == "TK_LITERAL" and token.text:upper()
end

local function is_user_variable(token)
	return token.name == "TK_LITERAL" and token.text:sub(1, 1) == "@" and token.text:sub(2, 2) ~= "@"
end

-- The variables a SET statement sets (`t` its tokens), as a set of
-- names ("names" for SET NAMES / CHARACTER SET / CHARSET), or nil when it
-- is not a SET of session settings.
local function setting_names(t)
	local names, i, scoped = {}, 2, false
	while t[i] do
		-- a scope word, then the variable's name
		local w = t[i].text:lower()
		while (w == "session" or w == "local" or w == "@@session" or w == "@@local") and t[i + 1] do
			scoped = true
			i = i + ((t[i + 1].name == "TK_DOT") and 2 or 1)
			w = t[i].text:lower()
		end
		if t[i].name == "TK_SQL_CHARACTER" or w == "names" or w == "charset" then
			w = "names"
		elseif w == "transaction" and not scoped then
			-- SET TRANSACTION: the next transaction's, which stays here
			return nil
		end
		w = w:gsub("^@@", "")
		local is_word = t[i].name == "TK_LITERAL" or t[i].name:sub(1, 7) == "TK_SQL_"
		if NOT_SETTINGS[w] or not is_word then
			return nil
		end
		names[w] = true
		-- on to the next assignment
		local depth = 0
		i = i + 1
		while t[i] and not (depth == 0 and t[i].name == "TK_COMMA") do
			if t[i].name == "TK_OBRACE" then
				depth = depth + 1
			elseif t[i].name == "TK_CBRACE" then
				depth = depth - 1
			elseif t[i].name == "TK_SEMICOLON" and t[i + 1] then
				return nil
			end
			i = i + 1
		end
		i = i + 1
	end
	return names
end

-- What a statement is: "read" or "write", the effect to apply once the
-- server has accepted it (nil, "use", "setting", "lock", "unlock",
-- "sticky") and its argument (the database of "use", the names of
-- "setting").
local function classify(query)
	local t = significant_tokens(query)
	local first = t[1]
	if not first then
		return "write"
	end
	local is_select = first.name == "TK_SQL_SELECT"
		or (first.name == "TK_OBRACE" and t[2] and t[2].name == "TK_SQL_SELECT")
	if first.name == "TK_SQL_WITH" then
		is_select = true
		for _, token in ipairs(t) do
			local name = token.name
			if name == "TK_SQL_INSERT" or name == "TK_SQL_UPDATE" or name == "TK_SQL_DELETE"
				or name == "TK_SQL_REPLACE" then
				is_select = false
			end
		end
	end
	if not is_select then
		local name, second = first.name, t[2]
		if name == "TK_SQL_USE" and second and (#t == 2 or (#t == 3 and t[3].name == "TK_SEMICOLON")) then
			return "write", "use", second.text
		elseif name == "TK_SQL_LOCK" then
			return "write", "lock"
		elseif name == "TK_SQL_UNLOCK" then
			return "write", "unlock"
		elseif name == "TK_SQL_CREATE" and word(second) == "TEMPORARY" then
			return "write", "sticky"
		elseif word(first) == "PREPARE" or word(first) == "XA" then
			return "write", "sticky"
		end
		for _, token in ipairs(t) do
			-- SET @x = ..., or any other use of a user variable or a lock
			if is_user_variable(token) or (token.name == "TK_FUNCTION" and token.text:upper() == "GET_LOCK") then
				return "write", "sticky"
			end
		end
		if name == "TK_SQL_SET" then
			local names = setting_names(t)
			if names then
				return "write", "setting", names
			end
		end
		return "write"
	end
	for i, token in ipairs(t) do
		local name, nxt = token.name, t[i + 1]
		if name == "TK_SQL_FOR" and nxt and (nxt.name == "TK_SQL_UPDATE" or word(nxt) == "SHARE") then
			return "write"
		elseif name == "TK_SQL_LOCK" or name == "TK_SQL_SQL_CALC_FOUND_ROWS" then
			return "write"
		elseif name == "TK_SQL_INTO" or name == "TK_ASSIGN" then
			return "write", "sticky"
		elseif name == "TK_SEMICOLON" and nxt then
			-- several statements
			return "write"
		elseif name == "TK_FUNCTION" then
			local fn = token.text:upper()
			if CONNECTION_FUNCTIONS[fn] then
				return "write", (fn == "GET_LOCK") and "sticky" or nil
			end
		elseif name == "TK_LITERAL" then
			local text = token.text
			if text:sub(1, 2) == "@@" then
				local var = text:sub(3):lower()
				if (var == "session" or var == "local") and nxt and nxt.name == "TK_DOT" and t[i + 2] then
					var = t[i + 2].text:lower()
				end
				if INSERT_ID_VARIABLES[var] then
					return "write"
				end
			elseif text:sub(1, 1) == "@" then
				-- a user variable: it lives on the read/write connection
				return "write"
			else
				local upper = text:upper()
				if (upper == "NEXT" or upper == "PREVIOUS") and word(nxt) == "VALUE" then
					return "write"
				end
			end
		end
	end
	return "read"
end

-- Adds a SET statement the server accepted to the session's settings; an
-- earlier one whose variables it all sets again goes.
local function add_setting(text, names)
	local kept = {}
	for _, setting in ipairs(settings) do
		local covered = true
		for name in pairs(setting.names) do
			if not names[name] then
				covered = false
			end
		end
		if not covered then
			kept[#kept + 1] = setting
		end
	end
	kept[#kept + 1] = { text = text, names = names }
	settings = kept
	local texts = {}
	for i, setting in ipairs(settings) do
		texts[i] = setting.text
	end
	signature = table.concat(texts, "\n")
end

---------------------------------------------------------------------------
-- Hooks

function connect_server()
	if not counted then
		counted = true
		shared.sessions = shared.sessions + 1
	end
	local rw, rw_b = rw_backend()
	if not rw then
		-- The proxy's own choice (it tells the client that every backend is
		-- down).
		return
	end
	local others = shared.sessions - 1
	if rw_b.connected_clients + idle(rw_b) > others then
		-- Every other session can find a read/write connection: this one
		-- may start on a read-only backend.
		local fill, fill_total
		for _, candidate in ipairs(ro_backends()) do
			local total = candidate.clients + idle(candidate.backend)
			if total < option("ro_connections") and (not fill_total or total < fill_total) then
				fill, fill_total = candidate.ndx, total
			end
		end
		if fill then
			debug("login on the read-only backend", fill, "(a new connection)")
			proxy.connection.backend_ndx = fill
			return
		end
		for _, candidate in ipairs(ro_backends()) do
			if idle(candidate.backend) > 0 then
				proxy.connection.backend_ndx = candidate.ndx
				if proxy.connection.server then
					debug("login on an idle connection to the read-only backend", candidate.ndx)
					return proxy.PROXY_IGNORE_RESULT
				end
			end
		end
		if idle(rw_b) > 0 then
			proxy.connection.backend_ndx = rw
			if proxy.connection.server then
				debug("login on an idle connection to the read/write backend", rw)
				return proxy.PROXY_IGNORE_RESULT
			end
		end
	end
	debug("login on the read/write backend", rw, "(a new connection)")
	proxy.connection.backend_ndx = rw
end

-- Queues `packet` (its result streamed to the client), after the session's
-- settings and database where the connection lacks them.
local function send(packet, effect, arg)
	local _, server = current_backend()
	if server and not frozen then
		if signature ~= "" and connection_sig(server) ~= signature then
			debug("settings:", (signature:gsub("\n", "; ")))
			pending[ID_SETTING] = { server = server, left = #settings }
			for _, setting in ipairs(settings) do
				proxy.queries:append(ID_SETTING, string.char(proxy.COM_QUERY) .. setting.text,
					{ resultset_is_needed = true })
			end
		end
		if client_db ~= "" and connection_db(server) ~= client_db then
			debug("COM_INIT_DB", client_db)
			pending[ID_INIT_DB] = { server = server, db = client_db }
			proxy.queries:append(ID_INIT_DB, string.char(proxy.COM_INIT_DB) .. client_db,
				{ resultset_is_needed = true })
		end
	end
	pending[ID_QUERY] = { effect = effect, arg = arg, text = packet:sub(2) }
	proxy.queries:append(ID_QUERY, packet, { resultset_is_needed = false })
	return proxy.PROXY_SEND_QUERY
end

local function refuse(message)
	proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = message, errcode = 1105, sqlstate = "HY000" }
	return proxy.PROXY_SEND_RESULT
end

function read_query(packet)
	local command = packet:byte(1)
	if client_db == nil then
		-- The session's first command: it is on the connection it logged in
		-- on, whose database and settings are the login's, whatever was
		-- known of it before.
		client_db = proxy.connection.client.default_db or ""
		local _, server = current_backend()
		if server then
			forget(server)
		end
	end

	if command == proxy.COM_QUERY then
		local kind, effect, arg = classify(packet:sub(2))
		if effect == "use" or effect == "setting" then
			-- Runs where the session is; it follows the session.
		elseif kind == "read" then
			-- (a session that must stay reads where it is)
			if not must_stay() then
				to_ro()
			end
		else
			local ok, message = to_rw()
			if not ok then
				return refuse(message)
			end
		end
		return send(packet, effect, arg)
	elseif command == proxy.COM_QUIT then
		-- The connection stays for the user's next session.
		proxy.response = { type = proxy.MYSQLD_PACKET_OK }
		return proxy.PROXY_SEND_RESULT
	elseif command == proxy.COM_STMT_PREPARE then
		-- A statement lives on its connection: prepared on the read/write
		-- one, the session stays there while statements are open.
		local ok, message = to_rw()
		if not ok then
			return refuse(message)
		end
		proxy.queries:append(ID_PREPARE, packet, { resultset_is_needed = true })
		return proxy.PROXY_SEND_QUERY
	elseif command == proxy.COM_STMT_CLOSE then
		open_stmts = math.max(0, open_stmts - 1)
	elseif command == proxy.COM_INIT_DB and not frozen then
		-- Sent by the script to see the outcome (the proxy would follow it
		-- on this connection only).
		pending[ID_CLIENT_INIT_DB] = packet:sub(2)
		proxy.queries:append(ID_CLIENT_INIT_DB, packet, { resultset_is_needed = true })
		return proxy.PROXY_SEND_QUERY
	elseif command == proxy.COM_CHANGE_USER or command == 31 --[[ COM_RESET_CONNECTION ]] then
		local ok, message = to_rw()
		if not ok then
			return refuse(message)
		end
		local _, server = current_backend()
		if server then
			remember(server, { db = false, sig = "" })
		end
		in_trans, autocommit, sticky, locked, open_stmts = false, true, false, false, 0
		settings, signature = {}, ""
		-- After the client's own COM_CHANGE_USER the proxy no longer knows
		-- the connection's login and cannot park it: the session stays.
		frozen = frozen or command == proxy.COM_CHANGE_USER
	elseif command == proxy.COM_SET_OPTION or command == proxy.COM_BINLOG_DUMP
		or command == proxy.COM_REGISTER_SLAVE or command == proxy.COM_TABLE_DUMP then
		-- (after COM_SET_OPTION, idle connections with the other
		-- multi-statements setting are not taken: the session stays)
		local ok, message = to_rw()
		if not ok then
			return refuse(message)
		end
	end
	-- Anything else goes to the connection the session has.
end

function read_query_result(inj)
	local id = inj.id
	local res = inj.resultset
	if id == ID_SETTING or id == ID_INIT_DB then
		local sent = pending[id]
		if res.raw:byte(1) == 0 then
			if id == ID_INIT_DB then
				pending[id] = nil
				remember(sent.server, { db = sent.db })
			else
				sent.left = sent.left - 1
				if sent.left == 0 then
					pending[id] = nil
					remember(sent.server, { sig = signature })
				end
			end
			return proxy.PROXY_IGNORE_RESULT
		end
		-- The client gets the server's error rather than a statement run in
		-- another database or with other settings.
		pending[id] = nil
		proxy.queries:reset()
		return
	elseif id == ID_CLIENT_INIT_DB then
		local db = pending[id]
		pending[id] = nil
		local _, server = current_backend()
		if res.raw:byte(1) == 0 and server then
			client_db = db
			remember(server, { db = db })
		end
		return
	elseif id == ID_PREPARE then
		if res.raw:byte(1) == 0 then
			open_stmts = open_stmts + 1
		end
		return
	elseif id ~= ID_QUERY then
		return
	end
	local sent = pending[ID_QUERY] or {}
	pending[ID_QUERY] = nil
	if res.query_status == proxy.MYSQLD_PACKET_ERR then
		-- An ERR carries no status flags: the state stays as it was.
		return
	end
	local flags = res.flags
	in_trans, autocommit = flags.in_trans, flags.auto_commit
	local effect = sent.effect
	local _, server = current_backend()
	if effect == "use" then
		client_db = sent.arg
		if server then
			remember(server, { db = sent.arg })
		end
	elseif effect == "setting" then
		add_setting(sent.text, sent.arg)
		if server then
			remember(server, { sig = signature })
		end
	elseif effect == "lock" then
		locked = true
	elseif effect == "unlock" then
		locked = false
	elseif effect == "sticky" then
		sticky = true
	end
end

function disconnect_client()
	if counted then
		counted = false
		shared.sessions = shared.sessions - 1
	end
	local server = proxy.connection.server
	if not server then
		return
	end
	if in_trans or not autocommit or locked or sticky or frozen then
		-- Not for another session: closed, or reset by the proxy's pool.
		forget(server)
	else
		-- Kept for the user's next sessions, as it is.
		proxy.connection.backend_ndx = 0
	end
end
