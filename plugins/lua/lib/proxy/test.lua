-- proxy.test: a small unit-test kit for scripts, with the API of MySQL Proxy
-- 0.8's library module of that name: assertions, `BaseTest` (a test case
-- whose `test*` methods `run` runs) and `ProxyBaseTest` (one that can set
-- up a fake `proxy` table, so a script's hooks can be called outside a
-- proxy). (Written for mysql-proxy; embedded in the Lua plugin, see
-- plugins/lua/src/library.rs.)
--
--     local test = require("proxy.test")
--     local MyTest = test.ProxyBaseTest:new()
--     function MyTest:setUp() self:setDefaultScope() end
--     function MyTest:testQuery()
--         test.assertEquals(read_query(string.char(3) .. "SELECT 1"), nil)
--     end
--     MyTest:new():run()
--
-- Not for a running proxy: `setDefaultScope` replaces the global `proxy`.

-- The loader passes the plugin's built-in helpers after the module name:
-- `constants` holds the `proxy` table's constants.
local _, builtin = ...
if type(builtin) ~= "table" or type(builtin.constants) ~= "table" then
	error("proxy.test needs the built-in helpers of mysql-proxy's Lua plugin: load it with require", 2)
end

local M = {}

-- " (<message>)" when there is a message.
local function suffix(message)
	if message == nil then
		return ""
	end
	return " (" .. tostring(message) .. ")"
end

--- assertEquals(actual, expected [, message]): raises an error (located at
-- the caller) unless actual == expected.
function M.assertEquals(actual, expected, message)
	if actual ~= expected then
		error(("assertEquals failed: got %s, expected %s%s"):format(
			tostring(actual), tostring(expected), suffix(message)), 2)
	end
end

--- assertNotEquals(actual, unexpected [, message]): raises an error
-- (located at the caller) if actual == unexpected.
function M.assertNotEquals(actual, unexpected, message)
	if actual == unexpected then
		error(("assertNotEquals failed: got %s%s"):format(tostring(actual), suffix(message)), 2)
	end
end

--- BaseTest: a test case. `BaseTest:new(o)` makes a class or an instance
-- (prototype inheritance); `run()` calls each method whose name starts
-- with `test`, in name order, each between `setUp` and `tearDown` when
-- they are defined, prints a line for each failure and a summary, sets
-- `num_passed`, `num_failed` and `failures` (an array of { name = ,
-- message = }) and returns whether every test passed; `exit()` ends the
-- process with status 0 if they all passed, 1 otherwise.
local BaseTest = {}
BaseTest.__index = BaseTest
M.BaseTest = BaseTest

function BaseTest:new(o)
	o = o or {}
	setmetatable(o, self)
	self.__index = self
	return o
end

-- The names of the `test*` functions of `object` and its prototypes.
local function test_names(object)
	local names, seen, visited = {}, {}, {}
	local class = object
	while type(class) == "table" and not visited[class] do
		visited[class] = true
		for name, value in pairs(class) do
			if type(name) == "string" and name:sub(1, 4) == "test"
				and type(value) == "function" and not seen[name] then
				seen[name] = true
				names[#names + 1] = name
			end
		end
		local meta = getmetatable(class)
		class = meta and meta.__index
	end
	table.sort(names)
	return names
end

function BaseTest:run()
	self.num_passed, self.num_failed, self.failures = 0, 0, {}
	for _, name in ipairs(test_names(self)) do
		self.active_test = name
		local ok, message = true, nil
		if type(self.setUp) == "function" then
			ok, message = pcall(self.setUp, self)
		end
		if ok then
			ok, message = pcall(self[name], self)
		end
		if type(self.tearDown) == "function" then
			local torn_down, tear_down_message = pcall(self.tearDown, self)
			if ok and not torn_down then
				ok, message = false, tear_down_message
			end
		end
		if ok then
			self.num_passed = self.num_passed + 1
		else
			self.num_failed = self.num_failed + 1
			self.failures[#self.failures + 1] = { name = name, message = tostring(message) }
			print(("[FAIL] %s: %s"):format(name, tostring(message)))
		end
	end
	self.active_test = nil
	print(("%d passed, %d failed"):format(self.num_passed, self.num_failed))
	return self.num_failed == 0
end

function BaseTest:exit()
	os.exit((self.num_failed or 0) == 0 and 0 or 1)
end

--- ProxyBaseTest: a BaseTest whose `setDefaultScope()` sets the global
-- `proxy` to a fresh fake: the constants, `global` (`config = {}`,
-- `backends = {}`), `connection` (`client` and `server` tables),
-- `queries` (an array with `append`, `prepend`, `reset` and `len`) and
-- `response = {}`.
--
-- As in 0.8, the fake's PROXY_SEND_QUERY and PROXY_SEND_RESULT have each
-- other's value (2 and 1; a real proxy has 1 and 2): tests that compare a
-- hook's answer with `proxy.PROXY_SEND_RESULT` are unaffected, and those
-- written against 0.8's numbers keep passing.
local ProxyBaseTest = BaseTest:new()
M.ProxyBaseTest = ProxyBaseTest

-- A fake `proxy.queries`: the queued entries in its array part.
local function fake_queries()
	local queries = {}
	function queries:append(id, query, options)
		self[#self + 1] = { id = id, query = query, options = options }
	end
	function queries:prepend(id, query, options)
		table.insert(self, 1, { id = id, query = query, options = options })
	end
	function queries:reset()
		for i = #self, 1, -1 do
			self[i] = nil
		end
	end
	function queries:len()
		return #self
	end
	return queries
end

function ProxyBaseTest:setDefaultScope()
	local fake = {
		global = { config = {}, backends = {} },
		connection = { client = {}, server = {} },
		queries = fake_queries(),
		response = {},
	}
	for name, value in pairs(builtin.constants) do
		fake[name] = value
	end
	fake.PROXY_SEND_QUERY = builtin.constants.PROXY_SEND_RESULT
	fake.PROXY_SEND_RESULT = builtin.constants.PROXY_SEND_QUERY
	proxy = fake
	return fake
end

return M
