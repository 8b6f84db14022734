--[[
auditing.lua: an audit log of logins and queries

What it does
  Appends one line per event to the audit file, each starting with the
  local time and the client's address (which tells the connections apart):

    2024-05-01 12:00:00 client=10.0.0.5:51234 CONNECT server=127.0.0.1:3306
    2024-05-01 12:00:00 client=10.0.0.5:51234 LOGIN user=app db=shop result=OK
    2024-05-01 12:00:01 client=10.0.0.5:51234 QUERY user=app query=SELECT ...
    2024-05-01 12:00:02 client=10.0.0.5:51234 DISCONNECT user=app
    2024-05-01 12:00:03 client=10.0.0.5:51240 CONNECT server=127.0.0.1:3306
    2024-05-01 12:00:03 client=10.0.0.5:51240 LOGIN user=app db=shop result=FAILED error=1045 Access denied ...

  - CONNECT: a client connected (read_handshake: the server that greets it);
  - LOGIN: the server's verdict on the login (read_auth_result): OK, or
    FAILED with the server's error code and message (a login the proxy
    accepted itself on a pooled connection, which the server is not asked
    about, shows as result=OK at the client's first command);
  - QUERY: each query (COM_QUERY, COM_STMT_PREPARE as "PREPARE ...",
    COM_INIT_DB as "USE ...") with the user; newlines, tabs and backslashes
    written as \n, \t, \\ so that each event is one line;
  - CHANGE_USER: COM_CHANGE_USER (user=<old> new_user=<new>);
  - DISCONNECT: the client is gone.

  The script only watches: nothing is changed, delayed or refused.

Use
  MYSQL_PROXY_AUDIT_LOG=/var/log/mysql-proxy/audit.log \
  mysql-proxy --proxy-backend-addresses=127.0.0.1:3306 \
      --proxy-lua-script=/path/to/etc/lua/auditing.lua

  or set proxy.global.config.auditing.file from a script that runs this one:
    proxy.global.config.auditing = { file = "/var/log/mysql-proxy/audit.log" }
    local chunk = assert(loadfile("/path/to/etc/lua/auditing.lua"))
    setfenv(chunk, getfenv(1))
    chunk()

Options (proxy.global.config.auditing.<name>, else the environment
variable, else the default)
  file              MYSQL_PROXY_AUDIT_LOG   the audit file, appended to
                                            (default mysql-proxy-audit.log in
                                            the proxy's working directory)
  max_query_length  MYSQL_PROXY_AUDIT_LOG_MAX_QUERY_LENGTH
                                            bytes of a query written (default
                                            4096; 0: all)
]]

local proto = require("mysql.proto")

local defaults = { file = "mysql-proxy-audit.log", max_query_length = 4096 }
local environment = {
	file = "MYSQL_PROXY_AUDIT_LOG",
	max_query_length = "MYSQL_PROXY_AUDIT_LOG_MAX_QUERY_LENGTH",
}

proxy.global.config.auditing = proxy.global.config.auditing or {}
local function option(name)
	local value = proxy.global.config.auditing[name]
	if value == nil then
		value = os.getenv(environment[name])
	end
	if value == nil then
		return defaults[name]
	end
	if type(defaults[name]) == "number" then
		return tonumber(value) or defaults[name]
	end
	return value
end

-- The audit file, opened once for every connection (kept in proxy.global),
-- and again if the option names another file.
local function audit_file()
	local name = option("file")
	local state = proxy.global.auditing
	if state and state.name == name then
		return state.file
	end
	if state then
		state.file:close()
	end
	local file, err = io.open(name, "a")
	if not file then
		error("auditing.lua: cannot open the audit file: " .. tostring(err))
	end
	proxy.global.auditing = { name = name, file = file }
	return file
end

local function escape(text)
	return (text:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub("\r", "\\r"):gsub("\t", "\\t"))
end

local function query_text(text)
	local limit = option("max_query_length")
	if limit > 0 and #text > limit then
		return escape(text:sub(1, limit)) .. "..."
	end
	return escape(text)
end

-- This connection's client address and user, kept for the lines written
-- after the client is gone.
local client_address = nil
local user = nil
local logged_in = false

local function audit(event, details)
	if not client_address then
		local src = proxy.connection.client.src
		client_address = src and src.name or "?"
	end
	local file = audit_file()
	file:write(os.date("%Y-%m-%d %H:%M:%S"), " client=", client_address, " ", event,
		details ~= "" and (" " .. details) or "", "\n")
	file:flush()
end

function read_handshake()
	local server = proxy.connection.server
	audit("CONNECT", "server=" .. (server and server.dst and server.dst.name or "?"))
end

function read_auth_result(auth)
	local client = proxy.connection.client
	user = client.username or ""
	local packet = auth.packet
	local head = packet:byte(1)
	local details = "user=" .. user .. " db=" .. (client.default_db or "")
	if head == 0 then
		logged_in = true
		audit("LOGIN", details .. " result=OK")
	elseif head == 255 then
		local ok, err = pcall(proto.from_err_packet, packet)
		local reason = ok and (err.errcode .. " " .. escape(err.errmsg or "")) or "?"
		audit("LOGIN", details .. " result=FAILED error=" .. reason)
	end
	-- (anything else, an auth switch or more auth data, is not the verdict
	-- yet: it comes in a later packet)
end

function read_query(packet)
	local command = packet:byte(1)
	if not logged_in then
		logged_in = true
		local client = proxy.connection.client
		user = client.username or ""
		audit("LOGIN", "user=" .. user .. " db=" .. (client.default_db or "") .. " result=OK")
	end
	local text
	if command == proxy.COM_QUERY then
		text = packet:sub(2)
	elseif command == proxy.COM_STMT_PREPARE then
		text = "PREPARE " .. packet:sub(2)
	elseif command == proxy.COM_INIT_DB then
		text = "USE " .. packet:sub(2)
	elseif command == proxy.COM_CHANGE_USER then
		-- The new user name: the packet's first NUL-terminated string.
		local new_user = packet:match("^.([^%z]*)") or "?"
		audit("CHANGE_USER", "user=" .. (user or "?") .. " new_user=" .. new_user)
		user = new_user
		return
	else
		return
	end
	audit("QUERY", "user=" .. user .. " query=" .. query_text(text))
end

function disconnect_client()
	audit("DISCONNECT", "user=" .. (user or "-"))
end
