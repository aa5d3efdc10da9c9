-- wrk script: flashcore's hot-SKU reserve over HTTP (scripts/sidebyside.sh).
--
--   wrk -t2 -c64 -d10s -s reserve.lua http://127.0.0.1:PORT -- carts.txt SKU THREADS
--
-- carts.txt has one "cart_id token" pair a line, created beforehand. Each wrk
-- thread takes its own share of the carts and walks them in order, sending
-- PUT /v1/carts/{id}/items/{sku} {"quantity":1} on one pass (a reserve on the
-- hot SKU) and {"quantity":0} on the next (its release): every request is one
-- reserve or one release through the cart actor and the one SKU actor. With
-- more carts per thread than connections, no two requests in flight share a
-- cart, so the only contention is the SKU's.

local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local carts = {}
local prepared = {}
local sku
local i = 0

function init(args)
  local path = args[1]
  sku = args[2]
  local all = {}
  for line in io.lines(path) do
    local id, token = line:match("^(%S+)%s+(%S+)$")
    if id then
      table.insert(all, { id = id, token = token })
    end
  end
  -- Threads are numbered 1..n in setup(); n (wrk's -t) comes as the third argument.
  local n = tonumber(args[3]) or 1
  for k, c in ipairs(all) do
    if (k - 1) % n == (tid - 1) then
      table.insert(carts, c)
    end
  end
  if #carts == 0 then
    error("no carts for thread " .. tostring(tid))
  end
  -- Every request this thread sends, formatted once here (wrk.format per request
  -- would cost the load generator more than the request costs the server): a
  -- pass of reserves over the thread's carts, then a pass of their releases.
  for _, qty in ipairs({ 1, 0 }) do
    for _, c in ipairs(carts) do
      table.insert(prepared, wrk.format("PUT", "/v1/carts/" .. c.id .. "/items/" .. sku,
        { ["Authorization"] = "Bearer " .. c.token, ["Content-Type"] = "application/json" },
        '{"quantity":' .. qty .. '}'))
    end
  end
end

function request()
  local k = (i % #prepared) + 1
  i = i + 1
  return prepared[k]
end

-- No response() callback: it would make wrk parse every body. wrk counts
-- non-2xx answers itself ("Non-2xx or 3xx responses").
function done(summary, latency, requests)
  io.write(string.format("SIDEBYSIDE reserve requests=%d duration_us=%d non2xx=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
