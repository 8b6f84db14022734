--[[
firewall.lua: refuses queries that match rules, lets everything else through

What it does
  Each query (COM_QUERY, and the text of COM_STMT_PREPARE) is normalized
  with the tokenizer (mysql.tokenizer), then checked against the rules: the
  first rule that matches refuses it with

    ERROR 1105 (42000): (firewall) query refused by rule '<name>'

  and nothing reaches the server. Anything that matches no rule goes to the
  server unchanged.

  The normalized text a rule sees, for each statement of the query (a
  query of several statements separated by ; is checked statement by
  statement):
  - comments are dropped, but the content of /*!...*/ comments (which the
    server runs) is checked as part of the statement, without its version;
  - strings and numbers are replaced by ?;
  - every word (keywords, names of tables, columns, functions) is in upper
    case, a name with characters other than letters, digits, _, $ and @ is
    in back quotes;
  - one space between tokens, none before , ) . ; and none after ( and .,
    and a function's name is followed directly by its (.
  So `delete from Orders -- all of them` reads DELETE FROM ORDERS, and
  `select * from t where name='x' or 1=1` reads
  SELECT * FROM T WHERE NAME = ? OR ? = ?.

  A rule has a name, a Lua pattern (string.find over the normalized text),
  and optionally an `unless` pattern that exempts the statements it also
  matches. Remember to escape the pattern's special characters: ? is %?,
  ( is %(, . is %., * is %*.

Rules
  The rules below (`rules`) are used, followed by those of the rules file if
  one is named: one rule per line, `name pattern`, or
  `name pattern unless pattern`; empty lines and lines starting with # are
  skipped. For example:

    # no writes to the audit tables
    audit-tables  ^[A-Z]+ .*AUDIT_[A-Z_]+
    no-truncate   ^TRUNCATE
    big-deletes   ^DELETE  unless  WHERE

  The file is read again by each new connection, so a changed file applies
  to the next clients. A line that is not a rule is reported on the proxy's
  stderr (once for each version of the file) and skipped.

Use
  MYSQL_PROXY_FIREWALL_RULES=/etc/mysql-proxy/firewall.rules \
  mysql-proxy --proxy-backend-addresses=127.0.0.1:3306 \
      --proxy-lua-script=/path/to/etc/lua/firewall.lua

Options (proxy.global.config.firewall.<name>, set by a script that runs
before this one, else the environment variable, else the default)
  rules_file  MYSQL_PROXY_FIREWALL_RULES   the rules file (default: none)
  builtin_rules
              MYSQL_PROXY_FIREWALL_BUILTIN_RULES
                                           use the rules of this file (default
                                           true; "0" or false: only the
                                           rules file's)
  errcode     MYSQL_PROXY_FIREWALL_ERRCODE the error code of a refusal
                                           (default 1105)
  log         MYSQL_PROXY_FIREWALL_LOG     write each refusal to the proxy's
                                           stderr (default true)
]]

local tokenizer = require("mysql.tokenizer")

-- The rules of this file, in order.
local rules = {
	{ name = "drop-database", pattern = "^DROP DATABASE " },
	{ name = "drop-database", pattern = "^DROP SCHEMA " },
	{ name = "delete-without-where", pattern = "^DELETE ", unless = " WHERE " },
	{ name = "update-without-where", pattern = "^UPDATE ", unless = " WHERE " },
	{ name = "always-true", pattern = " OR %? = %?" },
	{ name = "sleep", pattern = "SLEEP%(" },
	{ name = "sleep", pattern = "BENCHMARK%(" },
	{ name = "files", pattern = " INTO OUTFILE " },
	{ name = "files", pattern = " INTO DUMPFILE " },
	{ name = "files", pattern = "LOAD_FILE%(" },
}

local defaults = { rules_file = nil, builtin_rules = true, errcode = 1105, log = true }
local environment = {
	rules_file = "MYSQL_PROXY_FIREWALL_RULES",
	builtin_rules = "MYSQL_PROXY_FIREWALL_BUILTIN_RULES",
	errcode = "MYSQL_PROXY_FIREWALL_ERRCODE",
	log = "MYSQL_PROXY_FIREWALL_LOG",
}

proxy.global.config.firewall = proxy.global.config.firewall or {}
local function option(name)
	local value = proxy.global.config.firewall[name]
	if value == nil then
		value = os.getenv(environment[name])
	end
	if value == nil then
		return defaults[name]
	end
	if name == "errcode" then
		return tonumber(value) or defaults.errcode
	elseif (name == "builtin_rules" or name == "log") and type(value) == "string" then
		return value ~= "0" and value:lower() ~= "false" and value ~= ""
	end
	return value
end

local function complain(message)
	if option("log") then
		io.stderr:write("[firewall] ", message, "\n")
		io.stderr:flush()
	end
end

-- Whether `pattern` is a valid Lua pattern.
local function valid(pattern)
	return pcall(string.find, "", pattern)
end

-- The rules of a rules file's text.
local function parse_rules(path, text)
	local list = {}
	local number = 0
	for line in (text .. "\n"):gmatch("([^\n]*)\n") do
		number = number + 1
		line = line:gsub("\r$", "")
		if not line:match("^%s*$") and not line:match("^%s*#") then
			local name, rest = line:match("^%s*(%S+)%s+(.-)%s*$")
			local pattern, unless = nil, nil
			if rest then
				pattern, unless = rest:match("^(.-)%s+unless%s+(.+)$")
				pattern = pattern or rest
			end
			if not name or pattern == "" then
				complain(string.format("%s:%d: expected `name pattern`", path, number))
			elseif not valid(pattern) or (unless and not valid(unless)) then
				complain(string.format("%s:%d: not a valid Lua pattern", path, number))
			else
				list[#list + 1] = { name = name, pattern = pattern, unless = unless }
			end
		end
	end
	return list
end

-- The rules file's rules: read by each new connection, parsed (and
-- complained about) only when its content changed, kept in proxy.global.
local function rules_file_rules(path)
	local cache = proxy.global.firewall_rules_file or {}
	proxy.global.firewall_rules_file = cache
	local text, err
	local file
	file, err = io.open(path, "r")
	if file then
		text = file:read("*a")
		file:close()
	end
	if not text then
		if cache.path ~= path or cache.error ~= err then
			complain("cannot read the rules file: " .. tostring(err))
		end
		cache.path, cache.error, cache.text, cache.rules = path, err, nil, {}
		return cache.rules
	end
	if cache.path ~= path or cache.text ~= text then
		cache.path, cache.error, cache.text = path, nil, text
		cache.rules = parse_rules(path, text)
	end
	return cache.rules
end

-- The rules in force for this connection.
local active = {}
if option("builtin_rules") then
	for _, rule in ipairs(rules) do
		active[#active + 1] = rule
	end
end
if option("rules_file") then
	for _, rule in ipairs(rules_file_rules(option("rules_file"))) do
		active[#active + 1] = rule
	end
end

-- Tokens that take no space before them, and after them.
local NO_SPACE_BEFORE = { TK_COMMA = true, TK_CBRACE = true, TK_DOT = true, TK_SEMICOLON = true }
local NO_SPACE_AFTER = { TK_OBRACE = true, TK_DOT = true, TK_FUNCTION = true }

-- Appends the normalized tokens of `sql` to `statements` (a list of lists
-- of words), starting a new statement at each semicolon.
local function add_tokens(sql, statements, depth)
	local tokens = tokenizer.tokenize(sql)
	for i = 1, #tokens do
		local token = tokens[i]
		local name, text = token.token_name, token.text
		local current = statements[#statements]
		if name == "TK_COMMENT_MYSQL" and depth < 4 then
			-- /*!50000 ... */: the server runs it; its version goes.
			add_tokens(text:gsub("^%d+", ""), statements, depth + 1)
		elseif name == "TK_SEMICOLON" then
			if #current > 0 then
				statements[#statements + 1] = {}
			end
		elseif name ~= "TK_COMMENT" and name ~= "TK_COMMENT_MYSQL" then
			local out
			if name == "TK_STRING" or name == "TK_INTEGER" or name == "TK_FLOAT" then
				out = "?"
			elseif name == "TK_LITERAL" and not text:match("^[%w_@$]+$") then
				out = "`" .. text:upper():gsub("`", "``") .. "`"
			else
				out = text:upper()
			end
			current[#current + 1] = { name = name, text = out }
		end
	end
end

-- The normalized statements of a query.
local function normalize(query)
	local statements = { {} }
	add_tokens(query, statements, 0)
	local texts = {}
	for _, words in ipairs(statements) do
		if #words > 0 then
			local parts = {}
			local glue = false
			for _, w in ipairs(words) do
				if #parts > 0 and not glue and not NO_SPACE_BEFORE[w.name] then
					parts[#parts + 1] = " "
				end
				parts[#parts + 1] = w.text
				glue = NO_SPACE_AFTER[w.name] or false
			end
			texts[#texts + 1] = table.concat(parts)
		end
	end
	return texts
end

-- The first rule a normalized statement breaks, if any.
local function broken_rule(statement)
	for _, rule in ipairs(active) do
		if statement:find(rule.pattern) and not (rule.unless and statement:find(rule.unless)) then
			return rule
		end
	end
end

function read_query(packet)
	local command = packet:byte(1)
	if command ~= proxy.COM_QUERY and command ~= proxy.COM_STMT_PREPARE then
		return
	end
	for _, statement in ipairs(normalize(packet:sub(2))) do
		local rule = broken_rule(statement)
		if rule then
			local client = proxy.connection.client
			complain(string.format("refused (rule '%s') for %s@%s: %s", rule.name,
				client.username or "?", client.src and client.src.name or "?", statement))
			proxy.response = {
				type = proxy.MYSQLD_PACKET_ERR,
				errcode = option("errcode"),
				sqlstate = "42000",
				errmsg = string.format("(firewall) query refused by rule '%s'", rule.name),
			}
			return proxy.PROXY_SEND_RESULT
		end
	end
end
