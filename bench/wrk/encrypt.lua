-- POST /v1/transit/encrypt/<BENCH_KEY> with the token from BENCH_TOKEN. The
-- body is one plaintext (BENCH_PLAINTEXT, base64), or with BENCH_BATCH=N a
-- batch_input of N copies of it. The server draws a fresh nonce per item, so
-- repeating the plaintext costs it the same as N different ones.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local report = require("report")

local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local key = os.getenv("BENCH_KEY") or "bench"
local plaintext = os.getenv("BENCH_PLAINTEXT") or error("BENCH_PLAINTEXT is not set")
local batch = tonumber(os.getenv("BENCH_BATCH") or "0")

local body
if batch > 0 then
  local items = {}
  for i = 1, batch do
    items[i] = '{"plaintext":"' .. plaintext .. '"}'
  end
  body = '{"batch_input":[' .. table.concat(items, ",") .. ']}'
else
  body = '{"plaintext":"' .. plaintext .. '"}'
end

wrk.method = "POST"
wrk.path = "/v1/transit/encrypt/" .. key
wrk.headers["X-Vault-Token"] = token
wrk.headers["Content-Type"] = "application/json"
wrk.body = body

done = report.done
