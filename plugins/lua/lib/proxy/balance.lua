-- proxy.balance: choosing a backend from `proxy.global.backends` by its
-- pooled idle connections, with the API of MySQL Proxy 0.8's library module
-- of that name (rw-splitting.lua's choices). (Written for mysql-proxy;
-- embedded in the Lua plugin, see plugins/lua/src/library.rs.)
--
-- Both functions run inside a hook: they read `proxy.global.backends` and
-- the connection's user, `proxy.connection.client.username`, and return a
-- backend index (1-based) or 0 for none. A backend counts as having idle
-- connections when `pool.users[<user>].cur_idle_connections` is above 0
-- (this proxy counts a backend's idle connections for every user).

local M = {}

-- The idle pooled connections of `backend` for `user`.
local function idle_connections(backend, user)
	local pooled = backend.pool.users[user]
	return pooled and pooled.cur_idle_connections or 0
end

-- The user of the current connection.
local function current_user()
	local connection = proxy.connection
	if connection == nil then
		error("proxy.balance: no connection (call it from a hook)", 3)
	end
	return connection.client.username
end

--- idle_failsafe_rw(): the first backend that is not DOWN, is read-write
-- and has idle connections for the user; 0 if there is none.
function M.idle_failsafe_rw()
	local user = current_user()
	local backends = proxy.global.backends
	for i = 1, #backends do
		local backend = backends[i]
		if backend.state ~= proxy.BACKEND_STATE_DOWN
			and backend.type == proxy.BACKEND_TYPE_RW
			and idle_connections(backend, user) > 0 then
			return i
		end
	end
	return 0
end

--- idle_ro(): of the backends that are not DOWN, are read-only and have
-- idle connections for the user, the one with the fewest connected
-- clients (the first of them on a tie); 0 if there is none.
function M.idle_ro()
	local user = current_user()
	local backends = proxy.global.backends
	local chosen, fewest = 0, nil
	for i = 1, #backends do
		local backend = backends[i]
		if backend.state ~= proxy.BACKEND_STATE_DOWN
			and backend.type == proxy.BACKEND_TYPE_RO
			and idle_connections(backend, user) > 0 then
			local clients = backend.connected_clients
			if fewest == nil or clients < fewest then
				chosen, fewest = i, clients
			end
		end
	end
	return chosen
end

return M
