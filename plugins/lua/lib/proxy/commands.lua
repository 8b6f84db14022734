-- proxy.commands: decodes the command packets clients send (what
-- `read_query(packet)` receives) into tables, and describes them in one
-- line, with the API of MySQL Proxy 0.8's library module of that name.
-- (Written for mysql-proxy; embedded in the Lua plugin, see
-- plugins/lua/src/library.rs.)

-- The loader passes the plugin's built-in helpers after the module name:
-- `constants` holds the `proxy` table's constants, COM_* among them.
local _, builtin = ...
if type(builtin) ~= "table" or type(builtin.constants) ~= "table" then
	error("proxy.commands needs the built-in helpers of mysql-proxy's Lua plugin: load it with require", 2)
end

local M = {}

-- The command codes, and their names by code (`COM_QUERY` for 3).
local COM = {}
local NAMES = {}
for name, value in pairs(builtin.constants) do
	if name:sub(1, 4) == "COM_" then
		COM[name:sub(5)] = value
		NAMES[value] = name
	end
end

-- Commands whose whole payload after the command byte is one text field,
-- and that field's name.
local TEXT_FIELD = {
	[COM.QUERY] = "query",
	[COM.STMT_PREPARE] = "query",
	[COM.FIELD_LIST] = "table",
	[COM.INIT_DB] = "schema",
	[COM.CREATE_DB] = "schema",
	[COM.DROP_DB] = "schema",
	[COM.SET_OPTION] = "option",
}

-- Commands without anything to decode.
local BARE = {
	[COM.QUIT] = true,
	[COM.PING] = true,
	[COM.SHUTDOWN] = true,
}

--- parse(packet): the command in `packet` (a command packet's payload:
-- the command byte, then its arguments) as a table:
--
-- * `type` (the command byte) and `type_name` (`COM_QUERY`, ...; nil for
--   a byte that is no command);
-- * `query` (COM_QUERY, COM_STMT_PREPARE), `schema` (COM_INIT_DB,
--   COM_CREATE_DB, COM_DROP_DB), `table` (COM_FIELD_LIST: the whole rest
--   of the packet, as in 0.8) or `option` (COM_SET_OPTION: the rest of the
--   packet as bytes, as in 0.8);
-- * `stmt_handler_id` (COM_STMT_EXECUTE, COM_STMT_CLOSE): the statement
--   id, 4 bytes little-endian.
--
-- For other commands a debug line is printed, as 0.8 did. An empty packet,
-- or a statement command too short to hold its id, is an error (0.8 failed
-- on them with a Lua error about arithmetic on nil).
function M.parse(packet)
	if type(packet) ~= "string" then
		error(("bad argument #1 to 'parse' (string expected, got %s)"):format(type(packet)), 2)
	end
	if #packet == 0 then
		error("proxy.commands.parse: the packet is empty", 2)
	end
	local code = packet:byte(1)
	local command = { type = code, type_name = NAMES[code] }
	local field = TEXT_FIELD[code]
	if field then
		command[field] = packet:sub(2)
	elseif code == COM.STMT_EXECUTE or code == COM.STMT_CLOSE then
		if #packet < 5 then
			error(("proxy.commands.parse: %s packet too short for a statement id (%d bytes)"):format(
				NAMES[code], #packet), 2)
		end
		local b1, b2, b3, b4 = packet:byte(2, 5)
		command.stmt_handler_id = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
	elseif not BARE[code] then
		print(("[debug] (command) unhandled type name:%s byte:%d"):format(tostring(NAMES[code]), code))
	end
	return command
end

--- pretty_print(command): a one-line description of a parsed command:
-- `[COM_QUERY] SELECT 1`, `[COM_INIT_DB] shop`, `[COM_STMT_EXECUTE] 1`,
-- `[COM_PING]`; `[<name>] ... no idea` for the commands it does not
-- describe, as in 0.8.
function M.pretty_print(command)
	local name = tostring(command.type_name)
	local code = command.type
	if code == COM.QUERY or code == COM.STMT_PREPARE then
		return ("[%s] %s"):format(name, tostring(command.query))
	elseif code == COM.INIT_DB then
		return ("[%s] %s"):format(name, tostring(command.schema))
	elseif code == COM.STMT_EXECUTE then
		return ("[%s] %s"):format(name, tostring(command.stmt_handler_id))
	elseif BARE[code] or code == COM.FIELD_LIST then
		return ("[%s]"):format(name)
	end
	return ("[%s] ... no idea"):format(name)
end

return M
