--[[
query-log.lua: a log of every query with its timing

What it does
  Every COM_QUERY (and COM_STMT_PREPARE / COM_STMT_EXECUTE, COM_INIT_DB)
  goes to the server unchanged, its result streamed to the client as it
  arrives; once it is complete, one line is appended to the log file:

    2024-05-01 12:00:00.123456 conn=7 user=app db=shop time=0.412ms response=0.415ms rows=3 status=OK query=SELECT ...

  - the time the query was sent (local time, microseconds);
  - conn: the server's thread id of the connection that ran it (what
    SHOW PROCESSLIST and the server's own logs call the connection);
  - user and db: the client's login user, and its default database when
    the query was sent (followed through COM_INIT_DB and USE);
  - time: the query time (until the first packet of the answer), and
    response= the whole answer's, in milliseconds;
  - rows: the rows sent (result sets), or affected= for other statements
    (rows=- for an error);
  - status: OK or ERR;
  - query: the statement (newlines, tabs and backslashes as \n, \t, \\), cut at
    `max_query_length` bytes (with "..." appended). COM_STMT_EXECUTE
    is logged as "EXECUTE stmt=<id>", COM_INIT_DB as "USE <db>".

Use
  mysql-proxy --proxy-backend-addresses=127.0.0.1:3306 \
      --proxy-lua-script=/path/to/etc/lua/query-log.lua

  with the log file named by the environment of the proxy
    MYSQL_PROXY_QUERY_LOG=/var/log/mysql-proxy/queries.log mysql-proxy ...
  or by proxy.global.config.query_log.file, set by a script that runs this
  one, e.g.
    proxy.global.config.query_log = { file = "/var/log/mysql-proxy/queries.log" }
    local chunk = assert(loadfile("/path/to/etc/lua/query-log.lua"))
    setfenv(chunk, getfenv(1))   -- this connection's globals
    chunk()

Options (proxy.global.config.query_log.<name>, else the environment
variable, else the default)
  file              MYSQL_PROXY_QUERY_LOG   the log file, appended to
                                            (default mysql-proxy-queries.log
                                            in the proxy's working directory)
  max_query_length  MYSQL_PROXY_QUERY_LOG_MAX_QUERY_LENGTH
                                            bytes of a query written (default
                                            4096; 0: all)
  flush             MYSQL_PROXY_QUERY_LOG_FLUSH
                                            flush the file after every line
                                            (default true; "0" or false lets
                                            the C library buffer the lines)
]]

local defaults = {
	file = "mysql-proxy-queries.log",
	max_query_length = 4096,
	flush = true,
}
local environment = {
	file = "MYSQL_PROXY_QUERY_LOG",
	max_query_length = "MYSQL_PROXY_QUERY_LOG_MAX_QUERY_LENGTH",
	flush = "MYSQL_PROXY_QUERY_LOG_FLUSH",
}

proxy.global.config.query_log = proxy.global.config.query_log or {}

local function option(name)
	local value = proxy.global.config.query_log[name]
	if value == nil then
		value = os.getenv(environment[name])
	end
	if value == nil then
		return defaults[name]
	end
	if type(defaults[name]) == "number" then
		return tonumber(value) or defaults[name]
	elseif type(defaults[name]) == "boolean" and type(value) == "string" then
		return value ~= "0" and value:lower() ~= "false" and value ~= ""
	end
	return value
end

-- The log file, opened once for the whole proxy (proxy.global is shared by
-- every connection) and again if the option names another file.
local function log_file()
	local name = option("file")
	local state = proxy.global.query_log
	if state and state.name == name then
		return state.file
	end
	if state then
		state.file:close()
	end
	local file, err = io.open(name, "a")
	if not file then
		error("query-log.lua: cannot open the log file: " .. tostring(err))
	end
	proxy.global.query_log = { name = name, file = file }
	return file
end

-- Wall clock with microseconds: os.time() has seconds only, so the
-- microseconds come from glib2.get_current_time() when the module is there.
local ok_glib, glib2 = pcall(require, "glib2")
local function now()
	if ok_glib and glib2 and glib2.get_current_time then
		local t = glib2.get_current_time()
		return t.tv_sec, t.tv_usec
	end
	return os.time(), 0
end

local function printable(text)
	local limit = option("max_query_length")
	local cut = ""
	if limit > 0 and #text > limit then
		text, cut = text:sub(1, limit), "..."
	end
	text = text:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t")
	return text .. cut
end

-- What a command reads as in the log (nil: not logged).
local function describe(packet)
	local command = packet:byte(1)
	if command == proxy.COM_QUERY then
		return packet:sub(2)
	elseif command == proxy.COM_STMT_PREPARE then
		return "PREPARE " .. packet:sub(2)
	elseif command == proxy.COM_STMT_EXECUTE and #packet >= 5 then
		local b1, b2, b3, b4 = packet:byte(2, 5)
		return "EXECUTE stmt=" .. (b1 + b2 * 256 + b3 * 65536 + b4 * 16777216)
	elseif command == proxy.COM_INIT_DB then
		return "USE " .. packet:sub(2)
	end
end

-- The connection's queries on their way: sent time, text and, for a
-- change of database, the database; by id.
local sent = {}
local next_id = 0
-- The client's default database: the login's, then each COM_INIT_DB or USE
-- the server accepted.
local db = nil

-- The database a `USE db` statement names (nil for other statements).
local function use_statement(query)
	local name = query:match("^%s*[Uu][Ss][Ee]%s+`([^`]+)`%s*;?%s*$")
		or query:match("^%s*[Uu][Ss][Ee]%s+([%w_$]+)%s*;?%s*$")
	return name
end

function read_query(packet)
	local text = describe(packet)
	if not text then
		return
	end
	if db == nil then
		db = proxy.connection.client.default_db or ""
	end
	next_id = next_id + 1
	local sec, usec = now()
	local entry = { sec = sec, usec = usec, text = text, current_db = db }
	local command = packet:byte(1)
	if command == proxy.COM_INIT_DB then
		entry.db = packet:sub(2)
	elseif command == proxy.COM_QUERY then
		entry.db = use_statement(packet:sub(2))
	end
	sent[next_id] = entry
	-- The client's command as an injection, so that its result comes back
	-- to read_query_result; not buffered (the client gets it as it
	-- arrives), except COM_INIT_DB's OK or ERR, to tell which it was.
	proxy.queries:append(next_id, packet, { resultset_is_needed = command == proxy.COM_INIT_DB })
	return proxy.PROXY_SEND_QUERY
end

function read_query_result(inj)
	local query = sent[inj.id]
	if not query then
		return
	end
	sent[inj.id] = nil
	local res = inj.resultset
	local failed
	if inj.query:byte(1) == proxy.COM_INIT_DB then
		-- (query_status reads OK for any command but COM_QUERY and
		-- COM_STMT_EXECUTE, as in MySQL Proxy 0.8: the packet tells)
		failed = res.raw:byte(1) == 255
	else
		failed = res.query_status == proxy.MYSQLD_PACKET_ERR
	end
	local status = failed and "ERR" or "OK"
	if query.db and not failed then
		db = query.db
	end
	local outcome
	if failed then
		outcome = "rows=-"
	elseif res.affected_rows ~= nil and res.row_count == 0 then
		outcome = "affected=" .. res.affected_rows
	else
		outcome = "rows=" .. res.row_count
	end
	local client = proxy.connection.client
	local server = proxy.connection.server
	local line = string.format("%s.%06d conn=%s user=%s db=%s time=%.3fms response=%.3fms %s status=%s query=%s\n",
		os.date("%Y-%m-%d %H:%M:%S", query.sec), query.usec,
		tostring(server and server.thread_id or "-"),
		client.username or "-",
		query.current_db ~= "" and query.current_db or "-",
		inj.query_time / 1000, inj.response_time / 1000,
		outcome, status, printable(query.text))
	local file = log_file()
	file:write(line)
	if option("flush") then
		file:flush()
	end
end
