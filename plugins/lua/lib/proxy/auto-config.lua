-- proxy.auto-config: SQL commands that read and change the scripts'
-- options in `proxy.global.config` (`PROXY SHOW CONFIG`, `PROXY SET GLOBAL
-- <module>.<option> = <value>`, `PROXY SAVE CONFIG INTO "<file>"`, `PROXY
-- LOAD CONFIG FROM "<file>"`), with the API of MySQL Proxy 0.8's library
-- module of that name. (Written for mysql-proxy; embedded in the Lua
-- plugin, see plugins/lua/src/library.rs.)
--
-- A script passes each parsed command (proxy.commands.parse) to
-- `handle(command)`, or to `proxy.global.config:handle(command)`, and
-- returns what it returns: `proxy.PROXY_SEND_RESULT` when the command was
-- one of these (`proxy.response` then holds the answer), nil otherwise.
--
--     local auto_config = require("proxy.auto-config")
--     function read_query(packet)
--         local answer = auto_config.handle(commands.parse(packet))
--         if answer then return answer end
--         ...
--     end
--
-- The options are `proxy.global.config.<module>.<option>`, which the
-- scripts create with their defaults; these commands change existing ones
-- only, keeping their type. Keywords are case-insensitive; a command may
-- end with `;`; queries over 128 bytes are never taken for one (0.8's
-- rule, which keeps the cost per query low).
--
-- Where this differs from 0.8, on purpose:
--
-- * `SET ... = true` stores true. 0.8 stored false whatever the boolean
--   given, so no one can have relied on setting a flag this way; a user
--   expects the value given.
-- * Quotes are syntax, not content: `SET ... = "abc"` stores abc, and
--   `SAVE CONFIG INTO "/tmp/x.lua"` writes /tmp/x.lua. 0.8 kept the quotes
--   in both (the string, and the file's name, began and ended with a quote
--   character), which no user means. Single quotes are taken too.
-- * A number may have decimals, and be negative.
-- * LOAD runs the file with no globals (it is data: what SAVE writes is
--   `return { <module> = { <option> = <value>, ... }, ... }`), so a client
--   cannot have the proxy run code through it.

local M = {}

-- The longest query examined (0.8's limit).
local MAX_QUERY_BYTES = 128

-- A cursor over the text of a command.
local function scanner(text)
	local pos = 1
	local scan = {}

	local function skip_space()
		pos = text:find("[^%s]", pos) or (#text + 1)
	end

	-- The keyword `word` (upper case), case-insensitively, as a whole word.
	function scan.keyword(word)
		skip_space()
		if text:sub(pos, pos + #word - 1):upper() ~= word
			or text:find("^[%w_]", pos + #word) then
			return false
		end
		pos = pos + #word
		return true
	end

	-- The capture of `pattern` here, or nil.
	function scan.match(pattern)
		skip_space()
		local first, last, capture = text:find("^(" .. pattern .. ")", pos)
		if not first then
			return nil
		end
		pos = last + 1
		return capture
	end

	-- The content of a '...' or "..." string here, or nil.
	function scan.quoted()
		skip_space()
		local quote = text:sub(pos, pos)
		if quote ~= '"' and quote ~= "'" then
			return nil
		end
		local close = text:find(quote, pos + 1, true)
		if not close then
			return nil
		end
		local content = text:sub(pos + 1, close - 1)
		pos = close + 1
		return content
	end

	-- Whether nothing but blanks and an optional `;` is left.
	function scan.finished()
		skip_space()
		if text:sub(pos, pos) == ";" then
			pos = pos + 1
			skip_space()
		end
		return pos > #text
	end

	return scan
end

local NAME = "[%a_][%w_]*"

-- The value of a SET: a string, a number or a boolean; nil if none.
local function scan_value(scan)
	local quoted = scan.quoted()
	if quoted then
		return quoted
	end
	local number = scan.match("%-?%d+%.?%d*")
	if number then
		return tonumber(number)
	end
	if scan.keyword("TRUE") then
		return true
	end
	if scan.keyword("FALSE") then
		return false
	end
	return nil
end

-- The command in `query`: { verb = "SHOW" }, { verb = "SET", module =,
-- option =, value = }, { verb = "SAVE", file = }, { verb = "LOAD", file = },
-- or nil if it is none of them.
local function parse(query)
	local scan = scanner(query)
	if not scan.keyword("PROXY") then
		return nil
	end
	local request
	if scan.keyword("SHOW") then
		if scan.keyword("CONFIG") then
			request = { verb = "SHOW" }
		end
	elseif scan.keyword("SET") then
		if scan.keyword("GLOBAL") then
			local module = scan.match(NAME)
			local dot = module and scan.match("%.")
			local option = dot and scan.match(NAME)
			local equals = option and scan.match("=")
			if equals then
				local value = scan_value(scan)
				if value ~= nil then
					request = { verb = "SET", module = module, option = option, value = value }
				end
			end
		end
	elseif scan.keyword("SAVE") then
		if scan.keyword("CONFIG") and scan.keyword("INTO") then
			local file = scan.quoted()
			if file then
				request = { verb = "SAVE", file = file }
			end
		end
	elseif scan.keyword("LOAD") then
		if scan.keyword("CONFIG") and scan.keyword("FROM") then
			local file = scan.quoted()
			if file then
				request = { verb = "LOAD", file = file }
			end
		end
	end
	if request and scan.finished() then
		return request
	end
	return nil
end

local function reply_error(message)
	proxy.response = { type = proxy.MYSQLD_PACKET_ERR, errmsg = message }
end

local function reply_ok(affected_rows)
	proxy.response = { type = proxy.MYSQLD_PACKET_OK, affected_rows = affected_rows }
end

-- PROXY SET GLOBAL <module>.<option> = <value> (0.8's error messages,
-- typo included).
local function set_option(config, request)
	local options = config[request.module]
	if type(options) ~= "table" then
		return reply_error("module not known")
	end
	local current = options[request.option]
	if current == nil then
		return reply_error("option not know")
	end
	if type(current) ~= type(request.value) then
		return reply_error(("type mismatch: %s.%s is a %s, the value given a %s"):format(
			request.module, request.option, type(current), type(request.value)))
	end
	options[request.option] = request.value
	reply_ok(1)
end

-- PROXY SHOW CONFIG: a row (module, option, value, type) for each option,
-- in the order `pairs` walks the tables (0.8's order).
local function show_config(config)
	local rows = {}
	for module, options in pairs(config) do
		if type(options) == "table" then
			for option, value in pairs(options) do
				rows[#rows + 1] = { tostring(module), tostring(option), tostring(value), type(value) }
			end
		end
	end
	proxy.response = {
		type = proxy.MYSQLD_PACKET_OK,
		resultset = {
			fields = {
				{ type = proxy.MYSQL_TYPE_STRING, name = "module" },
				{ type = proxy.MYSQL_TYPE_STRING, name = "option" },
				{ type = proxy.MYSQL_TYPE_STRING, name = "value" },
				{ type = proxy.MYSQL_TYPE_STRING, name = "type" },
			},
			rows = rows,
		},
	}
end

-- A key or value as Lua source, or nil for what is not saved (tables,
-- functions, ...).
local function literal(value)
	local kind = type(value)
	if kind == "string" then
		return ("%q"):format(value)
	elseif kind == "boolean" then
		return tostring(value)
	elseif kind == "number" then
		if value ~= value then
			return "0/0"
		elseif value == math.huge then
			return "1/0"
		elseif value == -math.huge then
			return "-1/0"
		end
		return ("%.17g"):format(value)
	end
	return nil
end

-- The keys of `t` that have a literal, sorted (numbers before strings).
local function sorted_keys(t)
	local keys = {}
	for key in pairs(t) do
		if literal(key) then
			keys[#keys + 1] = key
		end
	end
	table.sort(keys, function(a, b)
		if type(a) ~= type(b) then
			return type(a) == "number"
		end
		return a < b
	end)
	return keys
end

-- The configuration as the text of a Lua file returning it.
local function serialise(config)
	local lines = { "-- mysql-proxy options, written by PROXY SAVE CONFIG", "return {" }
	for _, module in ipairs(sorted_keys(config)) do
		local options = config[module]
		if type(options) == "table" then
			lines[#lines + 1] = ("\t[%s] = {"):format(literal(module))
			for _, option in ipairs(sorted_keys(options)) do
				local value = literal(options[option])
				if value then
					lines[#lines + 1] = ("\t\t[%s] = %s,"):format(literal(option), value)
				end
			end
			lines[#lines + 1] = "\t},"
		end
	end
	lines[#lines + 1] = "}"
	return table.concat(lines, "\n") .. "\n"
end

-- PROXY SAVE CONFIG INTO "<file>"
local function save_config(config, file)
	local handle, message = io.open(file, "w")
	if not handle then
		return reply_error(message)
	end
	local written, write_message = handle:write(serialise(config))
	local closed, close_message = handle:close()
	if not written or not closed then
		return reply_error(write_message or close_message)
	end
	reply_ok()
end

-- PROXY LOAD CONFIG FROM "<file>": the file's options merged into the
-- configuration (modules it has that the configuration lacks are added).
local function load_config(config, file)
	local chunk, message = loadfile(file)
	if not chunk then
		return reply_error(message)
	end
	setfenv(chunk, {})
	local ran, loaded = pcall(chunk)
	if not ran then
		return reply_error(tostring(loaded))
	end
	if type(loaded) ~= "table" then
		return reply_error(file .. ": the file does not return a table")
	end
	for module, options in pairs(loaded) do
		if type(options) == "table" then
			local target = config[module]
			if type(target) ~= "table" then
				target = {}
				config[module] = target
			end
			for option, value in pairs(options) do
				target[option] = value
			end
		end
	end
	reply_ok()
end

--- handle(command) or config:handle(command): answers the command if it
-- is one of this module's (see above) and returns
-- `proxy.PROXY_SEND_RESULT`; returns nil for any other command.
-- `command` is a table of proxy.commands.parse (`type`, `query`).
function M.handle(config, command)
	if command == nil then
		-- The old form, handle(command): the global configuration.
		config, command = proxy.global.config, config
	end
	if type(command) ~= "table" or command.type ~= proxy.COM_QUERY then
		return nil
	end
	local query = command.query
	if type(query) ~= "string" or #query > MAX_QUERY_BYTES then
		return nil
	end
	local request = parse(query)
	if request == nil then
		return nil
	end
	if request.verb == "SET" then
		set_option(config, request)
	elseif request.verb == "SHOW" then
		show_config(config)
	elseif request.verb == "SAVE" then
		save_config(config, request.file)
	else
		load_config(config, request.file)
	end
	return proxy.PROXY_SEND_RESULT
end

-- proxy.global.config:handle(command): `handle` as a method of the shared
-- configuration table, through its metatable (so that `pairs` over the
-- configuration does not see it).
if type(proxy) == "table" and type(proxy.global) == "table" then
	local config = proxy.global.config
	if config == nil then
		config = {}
		proxy.global.config = config
	end
	local meta = getmetatable(config)
	if meta == nil then
		meta = {}
		setmetatable(config, meta)
	end
	if meta.__index == nil then
		meta.__index = { handle = M.handle }
	elseif type(meta.__index) == "table" and meta.__index.handle == nil then
		meta.__index.handle = M.handle
	end
end

return M
