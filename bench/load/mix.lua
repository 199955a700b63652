-- A bounded wrk load on Clarion's public endpoints: a mix of good and bad requests.
--   wrk -t2 -c32 -d10s --latency -s bench/load/mix.lua http://127.0.0.1:PORT
-- Half the requests subscribe (a new valid endpoint each time); the rest are malformed
-- JSON, SSRF endpoints, off-curve keys, unsubscribes of unknown endpoints, and reads.
-- done() prints the status classes; any 5xx is a failure.
local p256dh = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  statuses = { ["2xx"] = 0, ["4xx"] = 0, ["5xx"] = 0, other = 0 }
end

local function subscription(endpoint, key)
  return string.format('{"endpoint":"%s","expirationTime":null,"keys":{"p256dh":"%s","auth":"AAECAwQFBgcICQoLDA0ODw"}}', endpoint, key)
end

function request()
  counter = counter + 1
  local kind = counter % 8
  local json = { ["Content-Type"] = "application/json" }
  if kind < 4 then
    local endpoint = string.format("https://fcm.googleapis.com/fcm/send/load-%d-%d", id, counter)
    return wrk.format("POST", "/api/v1/subscriptions", json, subscription(endpoint, p256dh))
  elseif kind == 4 then
    return wrk.format("POST", "/api/v1/subscriptions", json, '{"endpoint": ')
  elseif kind == 5 then
    return wrk.format("POST", "/api/v1/subscriptions", json, subscription("http://169.254.169.254/latest", p256dh))
  elseif kind == 6 then
    return wrk.format("DELETE", "/api/v1/subscriptions", json, '{"endpoint":"https://fcm.googleapis.com/fcm/send/nobody"}')
  else
    return wrk.format("GET", "/api/v1/vapid-public-key")
  end
end

function response(status, headers, body)
  local class = math.floor(status / 100)
  if class == 2 then statuses["2xx"] = statuses["2xx"] + 1
  elseif class == 4 then statuses["4xx"] = statuses["4xx"] + 1
  elseif class == 5 then statuses["5xx"] = statuses["5xx"] + 1
  else statuses.other = statuses.other + 1 end
end

function done(summary, latency, requests)
  local total = { ["2xx"] = 0, ["4xx"] = 0, ["5xx"] = 0, other = 0 }
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for k, v in pairs(s) do total[k] = total[k] + v end
  end
  io.write(string.format("statuses: 2xx=%d 4xx=%d 5xx=%d other=%d\n", total["2xx"], total["4xx"], total["5xx"], total.other))
  io.write(string.format("p50=%.2fms p99=%.2fms req/s=%.0f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
