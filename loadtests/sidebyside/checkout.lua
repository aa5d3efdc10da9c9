-- wrk script: flashcore's durable checkout on one hot SKU (scripts/sidebyside.sh).
--
--   wrk -t2 -c64 -d10s -s checkout.lua http://127.0.0.1:PORT -- SKU
--
-- Every checkout is a full one, of a fresh cart: POST /v1/carts, then
-- PUT /v1/carts/{id}/items/{sku} {"quantity":1} (the hold), then
-- POST /v1/carts/{id}/checkout with a fresh Idempotency-Key, which answers 201
-- only once the order's journal batch committed in Postgres.
--
-- wrk has no per-connection hook, so the chain lives in a per-thread queue: each
-- response enqueues the chain's next step (recognised by its body: a new cart
-- carries a token, an updated cart its lines, an order its payment_ref), and
-- request() sends the oldest pending step, or starts a new chain when none is
-- pending. Since wrk asks the connection that just got a response for its next
-- request, a chain mostly stays on one connection; at most 64 are in flight.
--
-- The checkout request's own latency is timed here (CLOCK_MONOTONIC via LuaJIT's
-- ffi, from request() to response() of the same cart), because wrk's histogram
-- mixes the three steps; both are reported.

local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } fc_timespec;
int clock_gettime(int clk_id, fc_timespec *tp);
]])
local ts = ffi.new("fc_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local sku
local queue, qhead, qtail = {}, 1, 0
local tokens, sent = {}, {}
lat = {}
orders, carts, holds, failures = 0, 0, 0, 0
statuses = {}
local seq = 0

function init(args)
  sku = args[1]
  math.randomseed(tid * 7919 + os.time())
end

local function push(step)
  qtail = qtail + 1
  queue[qtail] = step
end

local function key()
  seq = seq + 1
  return string.format("sbs-%d-%08x-%08x-%d", tid, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), seq)
end

function request()
  if qhead <= qtail then
    local step = queue[qhead]
    queue[qhead] = nil
    qhead = qhead + 1
    local auth = "Bearer " .. tokens[step.id]
    if step.kind == "add" then
      return wrk.format("PUT", "/v1/carts/" .. step.id .. "/items/" .. sku,
        { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, '{"quantity":1}')
    end
    sent[step.id] = now_us()
    return wrk.format("POST", "/v1/carts/" .. step.id .. "/checkout",
      { ["Authorization"] = auth, ["Content-Type"] = "application/json", ["Idempotency-Key"] = key() },
      '{"payment":{"token":"tok_visa"}}')
  end
  return wrk.format("POST", "/v1/carts", { ["Content-Length"] = "0" })
end

function response(status, headers, body)
  local id = body and body:match('"cart_id":"([^"]+)"')
  if status == 201 and id then
    if body:find('"payment_ref"', 1, true) then
      orders = orders + 1
      if sent[id] then
        lat[#lat + 1] = now_us() - sent[id]
        sent[id] = nil
      end
      tokens[id] = nil
      return
    end
    local token = body:match('"token":"([^"]+)"')
    if token then
      carts = carts + 1
      tokens[id] = token
      push({ kind = "add", id = id })
      return
    end
  elseif status == 200 and id and tokens[id] then
    holds = holds + 1
    push({ kind = "checkout", id = id })
    return
  end
  failures = failures + 1
  statuses[status] = (statuses[status] or 0) + 1
  if id then
    tokens[id] = nil
    sent[id] = nil
  end
end

function done(summary, latency, requests)
  local all, n = {}, { orders = 0, carts = 0, holds = 0, failures = 0 }
  local codes = {}
  for _, t in ipairs(threads) do
    for k in pairs(n) do
      n[k] = n[k] + (t:get(k) or 0)
    end
    for _, v in ipairs(t:get("lat") or {}) do
      all[#all + 1] = v
    end
    for code, c in pairs(t:get("statuses") or {}) do
      codes[#codes + 1] = code .. "x" .. c
    end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  io.write(string.format(
    "SIDEBYSIDE checkout requests=%d duration_us=%d orders=%d carts=%d holds=%d failures=%d statuses=%s "
      .. "checkout_p50_us=%d checkout_p99_us=%d checkout_max_us=%d all_p99_us=%d\n",
    summary.requests, summary.duration, n.orders, n.carts, n.holds, n.failures,
    #codes > 0 and table.concat(codes, ",") or "none",
    pct(50), pct(99), #all > 0 and all[#all] or 0, latency:percentile(99)))
end
