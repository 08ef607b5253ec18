-- wrk script for bench/load.py: every request posts one fresh batch of BATCH_SIZE measurements to
-- POST /api/v1/results, so the collector really stores every one of them (no duplicates).
--
-- Environment (set by bench/load.py):
--   READYNET_LOAD_TOKEN  the enrolled agent's bearer token
--   READYNET_LOAD_SEED   a random integer; each wrk thread seeds its own generator from it
--   READYNET_LOAD_BATCH  measurements per batch (default 100): 9 in 10 ThroughputTest, 1 SnmpPoll
--
-- done() prints one line "READYNET-LOAD-JSON {...}" with the counts bench/load.py reads:
-- completed requests, status counts, wrk's socket errors and timeouts, latency percentiles (us).

local BATCH_SIZE = tonumber(os.getenv("READYNET_LOAD_BATCH") or "100")
local SNMP_EVERY = 10
local INTERFACES_PER_POLL = 4

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("READYNET_LOAD_TOKEN") or "")

-- Main state: one entry per wrk thread, to read their counters back in done().
local threads = {}
local next_thread = 0

function setup(thread)
   next_thread = next_thread + 1
   thread:set("thread_index", next_thread)
   table.insert(threads, thread)
end

-- Per-thread state (globals live in each thread's own Lua state).
statuses = {}
duplicate_answers = 0

function init(args)
   local seed = tonumber(os.getenv("READYNET_LOAD_SEED") or "0")
   -- Distinct per thread, or two threads would post the same "fresh" ids.
   math.randomseed(seed + 104729 * (thread_index or 0) + os.time())
   for _ = 1, 100 do
      math.random()
   end
end

local random = math.random
local format = string.format
local concat = table.concat

local function uuid4()
   return format(
      "%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
      random(0, 0xffff), random(0, 0xffff), random(0, 0xffff), random(0, 0xfff),
      0x8000 + random(0, 0x3fff), random(0, 0xffff), random(0, 0xffff), random(0, 0xffff)
   )
end

local function throughput_test(now)
   return format(
      '{"kind":"throughput","id":"%s","measured_at":"%s","path":"onnet",'
         .. '"server":"http://127.0.0.1:8080","streams":1,"download_bps":%d,"upload_bps":%d,'
         .. '"latency_ms":%.2f,"download_bytes":100000000,"upload_bytes":25000000,'
         .. '"duration_s":%.2f}',
      uuid4(), now, random(50000000, 950000000), random(20000000, 500000000),
      random() * 40, 1 + random() * 10
   )
end

local function snmp_poll(now)
   local interfaces = {}
   for index = 1, INTERFACES_PER_POLL do
      interfaces[index] = format(
         '{"ifindex":%d,"name":"Gi0/0/%d","octets_in":%d,"octets_out":%d,"speed_mbps":1000}',
         index, index, random(0, 2000000000) * 1000, random(0, 2000000000) * 1000
      )
   end
   return format(
      '{"kind":"snmp_poll","id":"%s","measured_at":"%s","device":"core-router",'
         .. '"address":"127.0.0.1","sys_uptime_ticks":%d,"interfaces":[%s]}',
      uuid4(), now, random(0, 2000000000), concat(interfaces, ",")
   )
end

function request()
   local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
   local items = {}
   for index = 1, BATCH_SIZE do
      if index % SNMP_EVERY == 0 then
         items[index] = snmp_poll(now)
      else
         items[index] = throughput_test(now)
      end
   end
   local body = format(
      '{"wire_version":1,"agent_version":"bench-load","sent_at":"%s","measurements":[%s]}',
      now, concat(items, ",")
   )
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   -- A fresh batch is stored whole; an id the collector knew already would mean a broken UUID.
   if status == 200 and not body:find('"duplicates":[]', 1, true) then
      duplicate_answers = duplicate_answers + 1
   end
end

local function json_object(counts)
   local parts = {}
   for key, value in pairs(counts) do
      table.insert(parts, format('"%s":%d', key, value))
   end
   return "{" .. concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local statuses_all = {}
   local duplicates_all = 0
   for _, thread in ipairs(threads) do
      for key, value in pairs(thread:get("statuses")) do
         statuses_all[key] = (statuses_all[key] or 0) + value
      end
      duplicates_all = duplicates_all + thread:get("duplicate_answers")
   end
   local errors = summary.errors
   io.write(format(
      'READYNET-LOAD-JSON {"duration_us":%d,"requests":%d,"statuses":%s,'
         .. '"duplicate_answers":%d,"errors":{"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,'
         .. '"mean":%.1f}}\n',
      summary.duration, summary.requests, json_object(statuses_all), duplicates_all,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean
   ))
end
