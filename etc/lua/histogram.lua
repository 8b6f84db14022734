--[[
histogram.lua: query statistics by normalized query, read through SQL

What it does
  Every COM_QUERY goes to the server unchanged (its result streamed to the
  client). Its text is normalized with the tokenizer (mysql.tokenizer):
  comments dropped, strings and numbers replaced by ?, keywords in upper
  case, identifiers as written (back-quoted where they need it), one space
  between tokens, so that `select * from t where id = 1` and
  `SELECT *  FROM t WHERE id=2 -- again` count as one query:
  SELECT * FROM t WHERE id = ?. For each normalized query the proxy keeps,
  in proxy.global (shared by every connection), the number of times it ran,
  and its total, maximum, minimum and average query time (from sending the
  query to the first packet of the answer, as MySQL Proxy measured it).

  The statistics are read through the proxy's own port, by any client:

    SELECT * FROM histogram.queries
      query, count, total_us, max_us, min_us, avg_us (times in
      microseconds), slowest in total first
    DELETE FROM histogram.queries
      empties it (OK, affected rows = the number of queries dropped)

  Both are answered by the script (case and spacing do not matter); these
  two statements are not counted. A query is counted once its answer has
  gone to the client (its connection sees it at its next statement, others
  a moment later). The statistics last as long as the proxy runs.

Use
  mysql-proxy --proxy-backend-addresses=127.0.0.1:3306 \
      --proxy-lua-script=/path/to/etc/lua/histogram.lua
  mariadb -h127.0.0.1 -P4040 -uroot -e 'SELECT * FROM histogram.queries'

Options (proxy.global.config.histogram.<name>, set by a script that runs
before this one, or here in `defaults`)
  max_queries  distinct normalized queries kept (default 10000); the
               queries beyond it are counted together under "(other)"
  max_length   bytes of a normalized query kept as its key (default 1024;
               longer ones are cut and end in "...")
]]

local tokenizer = require("mysql.tokenizer")

local defaults = {
	max_queries = 10000,
	max_length = 1024,
}
proxy.global.config.histogram = proxy.global.config.histogram or {}
local function option(name)
	local value = proxy.global.config.histogram[name]
	if value == nil then
		return defaults[name]
	end
	return value
end

-- The statistics: by normalized query, { count, total, max, min } (times
-- in microseconds); `distinct` is the number of keys.
if not proxy.global.histogram then
	proxy.global.histogram = { queries = {}, distinct = 0 }
end

local OTHER = "(other)"

-- Tokens that take no space before them, and after them.
local NO_SPACE_BEFORE = { TK_COMMA = true, TK_CBRACE = true, TK_DOT = true, TK_SEMICOLON = true }
local NO_SPACE_AFTER = { TK_OBRACE = true, TK_DOT = true, TK_FUNCTION = true }

-- The normalized text of a query (see the header).
local function normalize(query)
	local tokens = tokenizer.tokenize(query)
	local parts = {}
	local glue = false -- no space before the next token
	for i = 1, #tokens do
		local token = tokens[i]
		local name, text = token.token_name, token.text
		local out
		if name == "TK_COMMENT" then
			out = nil
		elseif name == "TK_STRING" or name == "TK_INTEGER" or name == "TK_FLOAT" then
			out = "?"
		elseif name == "TK_COMMENT_MYSQL" then
			out = "/*!" .. text .. "*/"
		elseif name == "TK_LITERAL" then
			if text:match("^[%a_@$][%w_@$]*$") then
				out = text
			else
				out = "`" .. text:gsub("`", "``") .. "`"
			end
		elseif name == "TK_FUNCTION" then
			out = text:upper()
		else
			out = text:upper()
		end
		if out then
			if #parts > 0 and not glue and not NO_SPACE_BEFORE[name] then
				parts[#parts + 1] = " "
			end
			parts[#parts + 1] = out
			glue = NO_SPACE_AFTER[name] or false
		end
	end
	return table.concat(parts)
end

-- Whether a query is `SELECT * FROM histogram.queries` ("select") or
-- `DELETE FROM histogram.queries` ("delete").
local function own_statement(normalized)
	local upper = normalized:upper():gsub(";$", "")
	if upper == "SELECT * FROM HISTOGRAM.QUERIES" then
		return "select"
	elseif upper == "DELETE FROM HISTOGRAM.QUERIES" then
		return "delete"
	end
end

local function record(key, time)
	local stats = proxy.global.histogram
	local entry = stats.queries[key]
	if not entry then
		if stats.distinct >= option("max_queries") then
			key = OTHER
			entry = stats.queries[key]
		end
		if not entry then
			entry = { count = 0, total = 0, max = time, min = time }
			stats.queries[key] = entry
			stats.distinct = stats.distinct + 1
		end
	end
	entry.count = entry.count + 1
	entry.total = entry.total + time
	if time > entry.max then
		entry.max = time
	end
	if time < entry.min then
		entry.min = time
	end
end

local function result_set()
	local rows = {}
	for query, entry in pairs(proxy.global.histogram.queries) do
		rows[#rows + 1] = {
			query, entry.count, entry.total, entry.max, entry.min,
			math.floor(entry.total / entry.count + 0.5),
		}
	end
	table.sort(rows, function(a, b)
		if a[3] ~= b[3] then
			return a[3] > b[3]
		end
		return a[1] < b[1]
	end)
	return {
		type = proxy.MYSQLD_PACKET_OK,
		resultset = {
			fields = {
				{ name = "query", type = proxy.MYSQL_TYPE_STRING },
				{ name = "count", type = proxy.MYSQL_TYPE_LONGLONG },
				{ name = "total_us", type = proxy.MYSQL_TYPE_LONGLONG },
				{ name = "max_us", type = proxy.MYSQL_TYPE_LONGLONG },
				{ name = "min_us", type = proxy.MYSQL_TYPE_LONGLONG },
				{ name = "avg_us", type = proxy.MYSQL_TYPE_LONGLONG },
			},
			rows = rows,
		},
	}
end

-- The normalized text of the connection's query on its way, by id.
local sent = {}
local next_id = 0

function read_query(packet)
	if packet:byte(1) ~= proxy.COM_QUERY then
		return
	end
	local key = normalize(packet:sub(2))
	local own = own_statement(key)
	if own == "select" then
		proxy.response = result_set()
		return proxy.PROXY_SEND_RESULT
	elseif own == "delete" then
		local dropped = proxy.global.histogram.distinct
		proxy.global.histogram = { queries = {}, distinct = 0 }
		proxy.response = { type = proxy.MYSQLD_PACKET_OK, affected_rows = dropped }
		return proxy.PROXY_SEND_RESULT
	end
	local limit = option("max_length")
	if #key > limit then
		key = key:sub(1, limit) .. "..."
	end
	next_id = next_id + 1
	sent[next_id] = key
	-- Injected so that read_query_result sees its timing; not buffered:
	-- the client gets the result as it arrives.
	proxy.queries:append(next_id, packet, { resultset_is_needed = false })
	return proxy.PROXY_SEND_QUERY
end

function read_query_result(inj)
	local key = sent[inj.id]
	if key then
		sent[inj.id] = nil
		record(key, inj.query_time)
	end
end
